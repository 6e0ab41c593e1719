"""The metric names the dashboard and the alert rules under deploy/observability/ use."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy/observability/grafana-dashboard.json"
ALERTS = ROOT / "deploy/observability/prometheus-alerts.yaml"
_NAME = re.compile(r"\b((?:baton|process|python)_[a-z0-9_]+)\b")
_SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def family(name: str) -> str:
    """A series name without the suffixes prometheus-client adds to its families."""
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _exprs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "query") and isinstance(value, str):
                yield value
            else:
                yield from _exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _exprs(item)


def dashboard_exprs() -> list[str]:
    return list(_exprs(json.loads(DASHBOARD.read_text())))


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def referenced_families() -> set[str]:
    """Metric families (suffixes stripped) that any dashboard or rule expression names."""
    exprs = dashboard_exprs() + [str(rule["expr"]) for rule in alert_rules()]
    return {family(name) for expr in exprs for name in _NAME.findall(expr)}
