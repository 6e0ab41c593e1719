"""Architecture rules that code review alone would not keep."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import baton_common

ROOT = Path(__file__).resolve().parents[2]
SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if p.is_dir())


def test_common_exports_are_honest() -> None:
    exported = set(baton_common.__all__)
    public = {n for n in vars(baton_common) if not n.startswith("_")} - {
        m for m in vars(baton_common) if isinstance(getattr(baton_common, m), type(baton_common))
    }
    assert exported == public
    for name in baton_common.__all__:
        assert getattr(baton_common, name) is not None


@pytest.mark.parametrize("service", SERVICES)
def test_no_service_imports_another(service: str) -> None:
    others = {f"baton_{s}" for s in SERVICES if s != service} | {"baton_cli"}
    for path in (ROOT / "services" / service / "src").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in others, f"{path} imports {name}"


def test_common_imports_no_service() -> None:
    forbidden = {f"baton_{s}" for s in SERVICES} | {"baton_cli"}
    for path in (ROOT / "libs/common/src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.module.split(".")[0] not in forbidden, f"{path} imports {node.module}"
