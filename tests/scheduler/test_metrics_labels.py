"""Counting through cached label children shows in the exposition as ``labels`` did."""

from __future__ import annotations

from prometheus_client import REGISTRY

from baton_common.metrics import labelled
from baton_scheduler import metrics


def test_labelled_counts_reach_the_registry() -> None:
    labels = {"type": "baton.test.labelled.v1", "outcome": "accepted"}
    before = REGISTRY.get_sample_value("baton_scheduler_commands_total", labels) or 0.0
    labelled(metrics.COMMANDS, "baton.test.labelled.v1", "accepted").inc()
    labelled(metrics.COMMANDS, "baton.test.labelled.v1", "accepted").inc()
    after = REGISTRY.get_sample_value("baton_scheduler_commands_total", labels)
    assert after == before + 2
    child = labelled(metrics.COMMANDS, "baton.test.labelled.v1", "accepted")
    assert child is metrics.COMMANDS.labels("baton.test.labelled.v1", "accepted")
