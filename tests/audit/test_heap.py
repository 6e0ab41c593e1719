"""The projection's collector settings (``heap.settle_heap``, ADR 0550)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from baton_audit.heap import settle_heap
from baton_audit.settings import AuditSettings


@pytest.fixture
def restored() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.set_threshold(*threshold)
    gc.unfreeze()


@pytest.mark.usefixtures("restored")
def test_start_up_objects_are_frozen_and_young_collections_are_rarer() -> None:
    gc.set_threshold(700, 10, 10)
    settle_heap(AuditSettings.model_fields["gc_threshold"].default)
    assert gc.get_threshold() == (50_000, 10, 10)
    assert gc.get_freeze_count() > 0


@pytest.mark.usefixtures("restored")
def test_zero_keeps_pythons_threshold() -> None:
    gc.set_threshold(700, 10, 10)
    settle_heap(0)
    assert gc.get_threshold() == (700, 10, 10)


def test_the_threshold_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_AUDIT_GC_THRESHOLD", "0")
    assert AuditSettings().gc_threshold == 0
    monkeypatch.setenv("BATON_AUDIT_GC_THRESHOLD", "-1")
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        AuditSettings()
