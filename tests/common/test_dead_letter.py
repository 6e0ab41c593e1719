"""Dead letters copy a bounded part of the record they stand for (see ``dead_letter``)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from baton_common.envelope import decode_record
from baton_common.kafka import DLQ_COPY_LIMIT, dead_letter
from baton_common.records import DeadLetter
from baton_common.testing import Record


def _letter(value: bytes | None, headers: tuple[tuple[str, bytes], ...] = ()) -> DeadLetter:
    record = Record("baton.ingest", 3, 42, b"k", value, headers)
    out = dead_letter(
        record,
        dlq_topic="baton.dlq",
        consumer="test",
        reason="unparsable",
        time=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert out.topic == "baton.dlq"
    return DeadLetter.model_validate(decode_record(out.value, out.headers).data)


def test_a_small_value_is_copied_whole() -> None:
    letter = _letter(b'{"not": json')
    assert letter.value == '{"not": json'
    assert not letter.value_truncated
    assert letter.value_bytes == 12
    assert letter.value_sha256 == hashlib.sha256(b'{"not": json').hexdigest()


def test_a_value_near_the_broker_limit_is_cut_and_fingerprinted() -> None:
    raw = b"\xff" * (900 * 1024)  # undecodable: each byte escapes to four characters
    letter = _letter(raw, headers=(("big", b"x" * (DLQ_COPY_LIMIT * 2)),))
    assert letter.value_truncated
    assert letter.value_bytes == len(raw)
    assert letter.value_sha256 == hashlib.sha256(raw).hexdigest()
    assert letter.value == "\\xff" * DLQ_COPY_LIMIT
    assert len(letter.headers["big"]) == DLQ_COPY_LIMIT
    assert (letter.topic, letter.partition, letter.offset) == ("baton.ingest", 3, 42)


def test_a_record_without_value_says_so() -> None:
    letter = _letter(None)
    assert letter.value is None
    assert letter.value_bytes is None
    assert letter.value_sha256 is None
    assert not letter.value_truncated
