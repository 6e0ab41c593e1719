"""deploy/observability/: the dashboard and alert rules load, and name only metrics Baton has."""

from __future__ import annotations

import re

from observability_assets import (
    ROOT,
    alert_rules,
    dashboard_exprs,
    family,
    referenced_families,
)

_DECLARED = re.compile(r"(?:Counter|Gauge|Histogram|Summary)\(\s*\"((?:baton)_[a-z0-9_]+)\"")
_LAG = re.compile(r"_NAME: Final = \"(baton_[a-z0-9_]+)\"")
# the process and runtime collectors prometheus-client registers by default
_BUILT_IN = {
    "process_cpu_seconds",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_open_fds",
    "process_start_time_seconds",
}


def declared_families() -> set[str]:
    """Every ``baton_*`` metric family declared in the services and libs/common."""
    names: set[str] = set()
    for path in [*ROOT.glob("services/*/src/**/*.py"), *ROOT.glob("libs/common/src/**/*.py")]:
        text = path.read_text()
        names.update(family(n) for n in _DECLARED.findall(text))
        names.update(family(n) for n in _LAG.findall(text))
    return names


def test_the_dashboard_and_rules_load_and_have_expressions() -> None:
    assert len(dashboard_exprs()) >= 15
    rules = alert_rules()
    assert {r["alert"] for r in rules} >= {
        "BatonConsumerLagGrowing",
        "BatonDeadLetters",
        "BatonStepErrorRate",
        "BatonApprovalsPiling",
        "BatonAuditStale",
    }
    for rule in rules:
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}
        assert rule["annotations"]["summary"]
        expr = str(rule["expr"])
        assert expr.count("(") == expr.count(")"), rule["alert"]
        assert expr.count("[") == expr.count("]"), rule["alert"]


def test_every_metric_used_is_declared_in_the_code() -> None:
    declared = declared_families() | _BUILT_IN
    assert "baton_runs_started" in declared  # the scan finds what it should
    missing = referenced_families() - declared
    assert not missing, f"dashboard or rules use metrics no service declares: {sorted(missing)}"


def test_no_metric_is_declared_with_a_run_scoped_label() -> None:
    banned = re.compile(r"\[[^\]]*\"(run_id|attempt_id|gate_id|command_id|event_id)\"[^\]]*\]")
    common = ROOT / "libs/common/src/baton_common"
    for path in [
        *ROOT.glob("services/*/src/**/metrics.py"),
        common / "lag.py",
        common / "kafka.py",
    ]:
        assert not banned.search(path.read_text()), f"{path} labels a metric by a run"
