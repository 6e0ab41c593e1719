from __future__ import annotations

from datetime import UTC, datetime

import pytest

from baton_common.envelope import Envelope, EnvelopeError, decode_record, encode_record
from baton_common.hashing import GENESIS, chain_hash, verify_chain

T = datetime(2026, 11, 25, tzinfo=UTC)


def make(seq: int, prev: str, **data: str) -> Envelope:
    draft = Envelope(
        id=f"e{seq}",
        type="baton.run.started.v1",
        source="test",
        subject="r",
        time=T,
        seq=seq,
        prevhash=prev,
        actor="alice",
        data=dict(data),
    )
    return draft.model_copy(update={"hash": chain_hash(draft)})


def test_binary_mode_round_trip() -> None:
    envelope = make(1, GENESIS, run_id="r")
    value, headers = encode_record(envelope)
    names = dict(headers)
    assert names["ce_type"] == b"baton.run.started.v1"
    assert names["ce_specversion"] == b"1.0"
    assert names["content-type"] == b"application/json"
    assert decode_record(value, headers) == envelope


@pytest.mark.parametrize(
    ("value", "headers", "reason"),
    [
        (b"{}", [], "no ce_type header"),
        (b"not json", [("ce_type", b"t")], "not JSON"),
        (b"[1]", [("ce_type", b"t")], "JSON object"),
        (b"{}", [("ce_type", b"t"), ("ce_id", b"1"), ("ce_source", b"s")], "time"),
        (None, [("ce_type", b"t")], "no value"),
    ],
)
def test_bad_records_say_why(
    value: bytes | None, headers: list[tuple[str, bytes]], reason: str
) -> None:
    with pytest.raises(EnvelopeError, match=reason):
        decode_record(value, headers)


def test_chain_detects_edit_deletion_and_reordering() -> None:
    first = make(1, GENESIS, step="a")
    second = make(2, first.hash or "", step="b")
    third = make(3, second.hash or "", step="c")
    assert verify_chain([first, second, third]) is None
    edited = second.model_copy(update={"data": {"step": "x"}})
    assert "does not match its hash" in (verify_chain([first, edited, third]) or "")
    assert "prevhash" in (verify_chain([first, third]) or "")
    assert verify_chain([second, first, third]) is not None
