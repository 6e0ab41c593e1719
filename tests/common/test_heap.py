"""The collector's settings for a long-running service (``baton_common.heap``)."""

from __future__ import annotations

import gc

import pytest

from baton_audit.settings import AuditSettings
from baton_common.heap import release_heap, settle_heap


def test_start_up_objects_are_frozen_and_young_collections_are_rarer_until_released() -> None:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    try:
        settled = settle_heap(AuditSettings.model_fields["gc_threshold"].default)
        assert gc.get_threshold() == (200_000, 10, 10)
        assert gc.get_freeze_count() > 0
        release_heap(settled)
        assert gc.get_threshold() == (700, 10, 10)
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_zero_keeps_the_thresholds() -> None:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    try:
        settle_heap(0)
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_the_audit_threshold_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_AUDIT_GC_THRESHOLD", "0")
    assert AuditSettings().gc_threshold == 0
    monkeypatch.setenv("BATON_AUDIT_GC_THRESHOLD", "-1")
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        AuditSettings()
