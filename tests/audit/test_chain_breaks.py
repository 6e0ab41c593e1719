"""``find_break`` names the first break of a copied run log and what caused it."""

from __future__ import annotations

import pytest

from baton_common.envelope import Envelope
from baton_common.hashing import chain_hash, find_break, verify_chain

from .fakes import triage_run


def rehashed(envelope: Envelope, **changes: object) -> Envelope:
    edited = envelope.model_copy(update=changes)
    return edited.model_copy(update={"hash": chain_hash(edited)})


def edited(log: list[Envelope]) -> list[Envelope]:
    return [*log[:3], log[3].model_copy(update={"actor": "mallory"}), *log[4:]]


def edited_and_rehashed(log: list[Envelope]) -> list[Envelope]:
    return [*log[:3], rehashed(log[3], actor="mallory"), *log[4:]]


def deleted(log: list[Envelope]) -> list[Envelope]:
    return [*log[:3], *log[4:]]


def reordered(log: list[Envelope]) -> list[Envelope]:
    return [*log[:3], log[4], log[3], *log[5:]]


def inserted_forgery(log: list[Envelope]) -> list[Envelope]:
    """A forged event with a valid hash, linked to its predecessor and numbered in sequence."""
    forged = rehashed(log[3], id="forged", actor="mallory")
    return [*log[:3], forged, *log[3:]]


def inserted_copy(log: list[Envelope]) -> list[Envelope]:
    return [*log[:4], log[3], *log[4:]]


@pytest.mark.parametrize(
    ("tamper", "kind", "seq"),
    [
        (edited, "edited", 4),
        (edited_and_rehashed, "edited", 4),
        (deleted, "deleted", 5),
        (reordered, "reordered", 5),
        (inserted_forgery, "inserted", 4),
        (inserted_copy, "inserted", 4),
    ],
)
def test_each_kind_of_tampering_is_named(tamper: object, kind: str, seq: int) -> None:
    log = triage_run("t1")
    assert find_break(log) is None
    assert callable(tamper)
    copy = tamper(list(log))

    found = find_break(copy)

    assert found is not None
    assert (found.kind, found.seq) == (kind, seq), str(found)
    assert verify_chain(copy) is not None  # the older check agrees that it is broken


def test_a_deleted_first_event_is_caught() -> None:
    found = find_break(triage_run("t1")[1:])
    assert found is not None
    assert (found.kind, found.position) == ("deleted", 0)
