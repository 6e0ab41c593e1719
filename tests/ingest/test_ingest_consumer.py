"""The ingest router loop on an in-memory consumer and publisher."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

import pytest
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry
from pydantic import JsonValue

from baton_common import ids
from baton_common.commands import StartRun
from baton_common.envelope import Envelope
from baton_common.kafka import to_envelope
from baton_common.records import DeadLetter, EventReceived
from baton_common.settings import TopicSettings
from baton_common.testing import Record, eventually
from baton_ingest.consumer import IngestRouter
from baton_ingest.metrics import IngestMetrics

from .fakes import FakeConsumer, FakePublisher, record_of
from .stories import AUDIT_ALL, TRIAGE, catalog_of, story

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TP = TopicPartition("baton.ingest", 3)


class Harness:
    def __init__(self, *, ready: bool = True) -> None:
        self.consumer = FakeConsumer()
        self.publisher = FakePublisher()
        self.registry = CollectorRegistry()
        self.ready = asyncio.Event()
        if ready:
            self.ready.set()
        ids_ = iter(f"cmd-{n}" for n in range(1000))
        self.router = IngestRouter(
            consumer=self.consumer,
            publisher=self.publisher,
            catalog=catalog_of(story(TRIAGE), story(AUDIT_ALL)),
            catalog_ready=self.ready,
            topics=TopicSettings(),
            metrics=IngestMetrics(self.registry),
            error_backoff_seconds=0,
            clock=lambda: NOW,
            new_id=lambda: next(ids_),
        )

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


def ingest_envelope(body: JsonValue, path: str | None = "edr-alerts", id: str = "in-1") -> Envelope:
    return to_envelope(
        EventReceived(path=path, body=body),
        id=id,
        source=f"baton/ingest/webhook/{path}",
        time=NOW,
        correlationid=id,
    )


async def test_a_matching_event_becomes_start_run_commands_then_is_committed() -> None:
    h = Harness()
    body: dict[str, JsonValue] = {"severity": "high", "alert_id": "a-9"}

    await h.router.process({TP: [record_of(ingest_envelope(body), offset=41)]})

    commands = h.publisher.envelopes("baton.commands")
    starts = {e.storyid: StartRun.model_validate(e.data) for e in commands}
    assert set(starts) == {"phishing-triage", "audit-all"}
    triage = starts["phishing-triage"]
    assert triage.run_id == ids.run_id_for("phishing-triage", "a-9")
    assert triage.ingest_id == "in-1"
    for envelope in commands:
        assert envelope.subject == envelope.data["run_id"]
        assert envelope.causationid == "in-1"
        assert envelope.correlationid == "in-1"
    keys = {r.key for r in h.publisher.published}
    assert keys == {s.run_id.encode() for s in starts.values()}
    assert h.consumer.commits == [{TP: 42}]
    assert h.metric("baton_ingest_routed_total", story="phishing-triage") == 1


async def test_an_unmatched_event_is_counted_and_committed() -> None:
    h = Harness()

    await h.router.process({TP: [record_of(ingest_envelope({"a": 1}, path="other"), offset=7)]})

    assert h.publisher.published == []
    assert h.consumer.commits == [{TP: 8}]
    assert h.metric("baton_ingest_unmatched_total") == 1


async def test_a_failing_condition_is_counted_with_its_reason() -> None:
    h = Harness()

    await h.router.process({TP: [record_of(ingest_envelope({"alert_id": "x"}))]})

    assert [e.storyid for e in h.publisher.envelopes()] == ["audit-all"]
    assert h.metric(
        "baton_ingest_trigger_errors_total", story="phishing-triage", reason="when_error"
    )


@pytest.mark.parametrize(
    ("record", "reason", "fragment"),
    [
        (Record("baton.ingest", 3, 5, b"k", b"garbage", ()), "no_source", "`source` header"),
        (
            record_of(
                to_envelope(EventReceived(body={}), id="x", source="t", time=NOW).model_copy(
                    update={"data": {"type": "baton.ingest.received.v1"}}
                ),
                partition=3,
                offset=5,
            ),
            "not_event_received",
            "body: Field required",
        ),
        (
            record_of(
                to_envelope(
                    StartRun(run_id="r", story_id="s", trigger={}), id="x", source="t", time=NOW
                ),
                partition=3,
                offset=5,
            ),
            "not_event_received",
            "'baton.run.start.v1' is not baton.ingest.received.v1",
        ),
        (record_of(ingest_envelope([1, 2]), partition=3, offset=5), "body_not_object", "object"),
    ],
)
async def test_unusable_records_go_to_the_dead_letter_topic(
    record: Record, reason: str, fragment: str
) -> None:
    h = Harness()

    await h.router.process({TP: [record]})

    [published] = h.publisher.published
    assert published.topic == "baton.dlq"
    letter = DeadLetter.model_validate(h.publisher.envelopes()[0].data)
    assert (letter.topic, letter.partition, letter.offset) == ("baton.ingest", 3, 5)
    assert fragment in letter.reason
    assert h.consumer.commits == [{TP: 6}]
    assert h.metric("baton_ingest_dead_letters_total", reason=reason) == 1


async def test_nothing_is_committed_when_a_command_is_not_acknowledged() -> None:
    h = Harness()
    h.publisher.error = RuntimeError("not enough replicas")
    batch = {TP: [record_of(ingest_envelope({"severity": "low"}), offset=10)]}

    with pytest.raises(RuntimeError):
        await h.router.process(batch)

    assert h.consumer.commits == []
    assert h.metric("baton_ingest_routed_total", story="audit-all") == 0


async def test_the_loop_waits_for_the_catalog_then_rewinds_and_retries_a_failed_batch() -> None:
    h = Harness(ready=False)
    h.publisher.error = RuntimeError("broker down")
    records = [
        record_of(ingest_envelope({"severity": "low"}, id="in-1"), offset=10),
        record_of(ingest_envelope({"severity": "low"}, id="in-2"), offset=11),
    ]
    h.consumer.append(TP, *records)
    loop = asyncio.create_task(h.router.run())
    try:
        await asyncio.sleep(0.05)
        assert h.consumer.polls == 0, "routed before the catalog was ready"

        h.ready.set()

        async def rewound() -> bool:
            return bool(h.consumer.seeks)

        await eventually(rewound, within=5, what="a rewind")
        assert h.consumer.seeks[0] == (TP, 10)
        assert h.consumer.commits == []
        h.publisher.error = None

        async def committed() -> bool:
            return bool(h.consumer.commits)

        await eventually(committed, within=5, what="a commit")
        await asyncio.sleep(0.05)
        assert h.consumer.commits == [{TP: 12}], "committed more than once"
        run_ids = [e.subject for e in h.publisher.envelopes()]
        assert run_ids == [
            ids.run_id_for("audit-all", "ingest:in-1"),
            ids.run_id_for("audit-all", "ingest:in-2"),
        ]
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop


async def test_the_next_batch_is_routed_while_acks_wait_and_a_failure_rewinds_both() -> None:
    h = Harness()
    h.publisher.gate = asyncio.Event()  # acks held back
    low: JsonValue = {"severity": "low"}  # audit-all only: one command per event
    h.consumer.append(TP, record_of(ingest_envelope(low, id="in-1"), offset=10))
    loop = asyncio.create_task(h.router.run())
    try:

        async def first_sent() -> bool:
            return h.publisher.calls == 1

        await eventually(first_sent, within=5, what="the first batch handed over")
        h.consumer.append(TP, record_of(ingest_envelope(low, id="in-2"), offset=11))

        async def second_sent() -> bool:
            return h.publisher.calls == 2

        await eventually(second_sent, within=5, what="the second batch routed meanwhile")
        assert h.consumer.commits == [], "committed before the acks"

        h.publisher.error = RuntimeError("not enough replicas")
        h.publisher.gate.set()

        async def rewound() -> bool:
            return bool(h.consumer.seeks)

        await eventually(rewound, within=5, what="a rewind")
        assert set(h.consumer.seeks) == {(TP, 10)}, "not rewound to the oldest uncommitted batch"
        assert h.consumer.commits == []
        h.publisher.error = None

        async def committed() -> bool:
            return bool(h.consumer.commits) and h.consumer.commits[-1] == {TP: 12}

        await eventually(committed, within=5, what="both batches committed")
        assert all(c[TP] <= 12 for c in h.consumer.commits)
        assert h.metric("baton_ingest_routed_total", story="audit-all") == 2
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
