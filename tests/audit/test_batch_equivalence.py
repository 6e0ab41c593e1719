"""The batch path's shortcuts give what the per-event path gave (ADR 0530).

``fold_run`` (one row per run and batch) against the previous ``next_run``, kept here
verbatim, over every split of a corpus of logs; the envelope rebuilt from the events row
(ADR 0540) against the whole ``model_dump`` document the row used to hold; and the
decoder's "no NaN or infinity" flag against the payloads it is given for.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from pydantic import TypeAdapter

from baton_audit.db import Pool, _decode_jsonb, _encode_jsonb, encode_jsonb
from baton_audit.export import _dumps
from baton_audit.projection import (
    _NO_RUN,
    _TERMINAL,
    RunRow,
    _run_row,
    event_row,
    fold_run,
    parse_event,
    run_status,
)
from baton_audit.store import ENVELOPE, envelope_document
from baton_audit.writer import _EVENT_COLUMNS, _values
from baton_common.envelope import Envelope, decode_record, decode_record_finite
from baton_common.events import (
    CommandRejected,
    RunCancelled,
    RunEvent,
    RunFailed,
    RunStarted,
    StepDispatched,
    StepFailed,
)
from baton_common.kafka import outbound
from baton_common.state import evolve

from .fakes import STORY, T0, approved_run, chain, triage_run

T = TypeVar("T")


def _first(*values: T | None) -> T | None:
    return next((v for v in values if v is not None), None)


def previous_next_run(
    previous: RunRow | None, run_id: str, envelope: Envelope, event: RunEvent | None
) -> RunRow:
    """``projection.next_run`` as it was before ADR 0530 (one row per event), verbatim."""
    state = previous.state if previous is not None else None
    if event is not None:
        try:
            state = evolve(
                state, event, seq=envelope.seq or 0, hash=envelope.hash or "", time=envelope.time
            )
        except ValueError:
            pass  # not RunStarted and no state yet: the run stays unknown
    status = run_status(state)
    before = previous or _NO_RUN
    ended_at = before.ended_at
    if ended_at is None and status in _TERMINAL.values():
        ended_at = envelope.time
    seqs = [s for s in (before.last_seq, envelope.seq) if s is not None]
    story_id: str | None
    story_version: int | None
    if state is not None:
        story_id, story_version = state.story_id, state.story_version
    else:
        story_id = _first(before.story_id, envelope.storyid)
        story_version = _first(before.story_version, envelope.storyversion)
    # Every value is typed already: construct without re-validating (the hot path).
    return _run_row(
        run_id=run_id,
        story_id=story_id,
        story_version=story_version,
        status=status,
        started_at=state.started_at if state is not None else None,
        ended_at=ended_at,
        last_seq=max(seqs) if seqs else None,
        correlation_id=_first(before.correlation_id, envelope.correlationid),
        dedup_key=state.dedup_key if state is not None else None,
        event_count=before.event_count + 1,
        updated_at=envelope.time,
        state=state,
    )


def _unstarted() -> list[Envelope]:
    """Events before any RunStarted, then a start: the row's story comes from envelopes
    (the first that names one) until the state has it."""
    rejected = CommandRejected(run_id="u", command_id="c1", command_type="StartRun", reason="no")
    log = chain("u", [rejected, rejected, rejected])
    bare = log[0].model_copy(update={"storyid": None, "storyversion": None, "correlationid": None})
    later = log[2].model_copy(update={"storyid": "later", "storyversion": 7, "correlationid": "c"})
    started = RunStarted(run_id="u", story_id="other", story_version=9, trigger={})
    return [bare, log[1], later, *chain("u", [started], first_seq=4)]


def _ended_twice() -> list[Envelope]:
    """A run that ends, then gets a late event: the first end time stays."""
    events: list[RunEvent] = [
        RunStarted(run_id="x", story_id=STORY, story_version=4, trigger={"n": 1.5}),
        StepDispatched(
            run_id="x", step="s", attempt=1, attempt_id="a1", action="http", queue="q", input={}
        ),
        RunFailed(run_id="x", reason="boom"),
        StepFailed(
            run_id="x",
            step="s",
            attempt=1,
            attempt_id="a1",
            error_kind="permanent",
            error_type="t",
            message="late",
            will_retry=False,
        ),
        RunCancelled(run_id="x", reason="late", requested_by="op"),
    ]
    log = chain("x", events)
    # Out-of-order and missing sequence numbers: the row keeps the highest seen.
    return [log[0], log[2], log[1].model_copy(update={"seq": None}), log[3], log[4]]


def _other_subject() -> list[Envelope]:
    """An event whose payload names another run: stored, without effect."""
    log = approved_run("o")
    return [log[0], log[1].model_copy(update={"subject": "elsewhere"}), *log[2:]]


CORPUS = {
    "approved": approved_run("r1"),
    "triage": triage_run("t1"),
    "unstarted": _unstarted(),
    "ended twice": _ended_twice(),
    "other subject": _other_subject(),
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_folding_a_batch_gives_the_rows_of_folding_each_event(name: str) -> None:
    log = [(envelope, parse_event(envelope)[0]) for envelope in CORPUS[name]]
    run_id = log[0][0].subject or ""
    # The row after each prefix, one event at a time (the previous path).
    expected: list[RunRow | None] = [None]
    for envelope, event in log:
        expected.append(previous_next_run(expected[-1], run_id, envelope, event))
    # Every batch boundary: the row before the batch, then the batch folded at once.
    for start in range(len(log)):
        for end in range(start + 1, len(log) + 1):
            folded = fold_run(expected[start], run_id, log[start:end])
            assert folded == expected[end], (start, end)
            assert folded.model_fields_set == expected[end].model_fields_set  # type: ignore[union-attr]


def _old_envelope_document(envelope: Envelope) -> dict[str, object]:
    """``projection._envelope_json`` as it was before ADR 0530, verbatim."""
    document: dict[str, object] = dict(envelope.__dict__)
    document["time"] = TypeAdapter(datetime).dump_python(envelope.time, mode="json")
    return document


def _decoded(envelope: Envelope) -> tuple[Envelope, bool]:
    record = outbound("baton.runs", envelope.subject, envelope)
    return decode_record_finite(record.value, record.headers)


ODD_PAYLOADS: list[dict[str, object]] = [
    {"type": "X", "big": 123456789012345678901234567890},  # beyond 64 bits: fallback path
    {"type": "X", "text": "caf\u00e9 \u4e2d \U0001f600", "none": None, "f": [0.1, -0.0, 1e300]},
    {"type": "X", "nested": {"a": [None, True, {"b": None}]}},
]


def _envelopes() -> list[Envelope]:
    out = [e for log in CORPUS.values() for e in log]
    base = out[0]
    for n, data in enumerate(ODD_PAYLOADS):
        out.append(base.model_copy(update={"data": data, "id": f"odd-{n}", "actor": None}))
    return out


async def test_the_envelope_rebuilt_from_its_row_is_the_document_once_stored(pool: Pool) -> None:
    # ADR 0540: the events row keeps each value once; the envelope read back
    # (store.ENVELOPE) must equal the whole document the row used to store.
    rows = []
    documents = []
    for offset, envelope in enumerate(_envelopes()):
        decoded, finite = _decoded(envelope)
        assert decoded == decode_record(*_value_headers(envelope))
        row = event_row(
            decoded,
            run_id=decoded.subject or "",
            topic="t",
            partition=0,
            offset=offset,
            finite=finite,
        )
        if finite:  # orjson's path: the very bytes the codec gives the payload
            assert row.data == _encode_jsonb(decoded.data)
        assert _decode_jsonb(row.data) == decoded.data
        rows.append(_values(row))
        documents.append(_old_envelope_document(decoded))
    async with pool.acquire() as conn:
        await conn.copy_records_to_table("events", records=rows, columns=_EVENT_COLUMNS)
        stored = await conn.fetch(f"select {ENVELOPE} from events e order by kafka_offset")
        for found, document in zip(stored, documents, strict=True):
            # What the whole document's column gave back (jsonb orders keys and normalises
            # numbers): the same value, with its keys in the same order.
            was = await conn.fetchval("select $1::jsonb", document)
            assert isinstance(was, dict)
            rebuilt = envelope_document(found)
            assert rebuilt == was
            assert list(rebuilt) == list(was)
            assert _dumps(rebuilt) == _dumps(was)  # the export's JSONL line


def _value_headers(envelope: Envelope) -> tuple[bytes | None, list[tuple[str, bytes]]]:
    record = outbound("baton.runs", envelope.subject, envelope)
    return record.value, list(record.headers)


@pytest.mark.parametrize(
    ("value", "finite"),
    [
        (b'{"n": 1.5, "x": null}', True),
        (b'{"n": NaN}', False),
        (b'{"n": Infinity}', False),
        (b'{"n": 1e999}', False),
        (b'{"n": 12345678901234567890123}', False),
    ],
)
def test_the_finite_flag_is_set_only_where_orjson_parsed(value: bytes, finite: bool) -> None:
    headers = [
        ("ce_id", b"1"),
        ("ce_type", b"X"),
        ("ce_source", b"s"),
        ("ce_time", b"2026-01-01T00:00:00Z"),
    ]

    envelope, flag = decode_record_finite(value, headers)

    assert flag is finite
    assert envelope == decode_record(value, headers)
    has_non_finite = any(
        isinstance(v, float) and not math.isfinite(v) for v in envelope.data.values()
    )
    assert not (flag and has_non_finite)


def test_a_non_finite_payload_still_reaches_postgresql_as_nan() -> None:
    # Not flagged finite, so the codec's check runs and PostgreSQL refuses it, as before.
    envelope, finite = decode_record_finite(
        b'{"n": NaN}',
        [
            ("ce_id", b"1"),
            ("ce_type", b"X"),
            ("ce_source", b"s"),
            ("ce_time", b"2026-01-01T00:00:00Z"),
        ],
    )
    row = event_row(envelope, run_id="r", topic="t", partition=0, offset=0, finite=finite)
    assert row.data == b'\x01{"n":NaN}'


def test_an_encoded_value_is_written_as_is() -> None:
    value = encode_jsonb({"b": [1, None]})
    assert _encode_jsonb(value) is value


def test_corpus_spans_the_cases() -> None:
    # The corpus covers rows without state, terminal runs and a late event after the end.
    rows = {
        name: fold_run(None, log[0].subject or "", [(e, parse_event(e)[0]) for e in log])
        for name, log in CORPUS.items()
    }
    assert rows["unstarted"].story_id == "other"
    assert rows["ended twice"].ended_at == T0 + timedelta(minutes=3)
    assert rows["ended twice"].last_seq == 5
    assert rows["approved"].ended_at is not None
    assert datetime.min.replace(tzinfo=UTC) < rows["triage"].updated_at
