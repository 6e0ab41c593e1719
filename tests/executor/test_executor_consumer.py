"""The executor loop on an in-memory consumer and publisher."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import structlog
import structlog.testing
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry
from pydantic import JsonValue

from baton_common.commands import CompleteStep, FailStep
from baton_common.kafka import to_envelope
from baton_common.records import DeadLetter, GateOpened, StepTask
from baton_common.settings import TopicSettings
from baton_common.testing import Record, eventually
from baton_executor.actions import Action
from baton_executor.consumer import Executor
from baton_executor.errors import RetryableError
from baton_executor.metrics import ExecutorMetrics

from .fakes import FakeConsumer, FakePublisher, record_of
from .tasks import step_task

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
P0 = TopicPartition("baton.tasks.default", 0)
P1 = TopicPartition("baton.tasks.default", 1)


class Gated:
    """An action whose attempts wait until the test releases them, by step name."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}

    def release(self, step: str) -> None:
        self.gates.setdefault(step, asyncio.Event()).set()

    async def __call__(self, task: StepTask) -> JsonValue:
        self.started.append(task.step)
        await self.gates.setdefault(task.step, asyncio.Event()).wait()
        if task.step.startswith("flaky"):
            raise RetryableError("busy", error_type="http_503")
        return {"step": task.step}


class Harness:
    def __init__(self, *, concurrency: int = 4, failures: int = 0) -> None:
        self.consumer = FakeConsumer()
        self.publisher = FakePublisher(failures)
        self.registry = CollectorRegistry()
        self.action = Gated()
        actions: dict[str, Action] = {"http": self.action}
        self.executor = Executor(
            consumer=self.consumer,
            publisher=self.publisher,
            actions=actions,
            topics=TopicSettings(),
            metrics=ExecutorMetrics(self.registry),
            concurrency=concurrency,
            poll_timeout_ms=10,
            error_backoff_seconds=0,
            revoke_grace_seconds=1,
            clock=lambda: NOW,
        )

    def task(self, tp: TopicPartition, offset: int, step: str) -> Record:
        task = step_task(step=step)
        envelope = to_envelope(
            task, id=f"task-{step}", source="baton/scheduler", time=NOW, subject=task.run_id
        )
        return record_of(envelope, tp, offset)

    def commands(self) -> list[CompleteStep | FailStep]:
        result: list[CompleteStep | FailStep] = []
        for envelope in self.publisher.envelopes("baton.commands"):
            model = CompleteStep if envelope.type == "baton.step.complete.v1" else FailStep
            result.append(model.model_validate(envelope.data))
        return result

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


@contextlib.asynccontextmanager
async def running(h: Harness) -> AsyncIterator[None]:
    loop = asyncio.create_task(h.executor.run())
    try:
        yield
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
        await h.executor.drain(0)


async def until(what: str, probe: object) -> None:
    async def check() -> bool:
        return bool(probe() if callable(probe) else probe)

    await eventually(check, within=5, interval=0.01, what=what)


async def test_a_task_is_run_reported_and_then_committed() -> None:
    h = Harness()
    h.consumer.append(h.task(P0, 0, "lookup"))
    h.action.release("lookup")

    async with running(h):
        await until("a commit", lambda: h.consumer.committed(P0) == 1)

    [command] = h.commands()
    assert isinstance(command, CompleteStep)
    assert command.output == {"step": "lookup"}
    [record] = h.publisher.published
    assert record.key == command.run_id.encode()
    [envelope] = h.publisher.envelopes()
    assert envelope.causationid == "task-lookup"
    assert h.metric("baton_executor_step_attempts_total", action="http", outcome="succeeded") == 1


async def test_a_failed_attempt_is_reported_as_fail_step() -> None:
    h = Harness()
    h.consumer.append(h.task(P0, 0, "flaky"))
    h.action.release("flaky")

    async with running(h):
        await until("a commit", lambda: h.consumer.committed(P0) == 1)

    [command] = h.commands()
    assert isinstance(command, FailStep)
    assert (command.error_kind, command.error_type) == ("retryable", "http_503")
    assert h.metric("baton_executor_step_attempts_total", action="http", outcome="retryable") == 1


async def test_no_more_than_the_concurrency_limit_runs_at_once() -> None:
    h = Harness(concurrency=2)
    h.consumer.append(h.task(P0, 0, "a"), h.task(P0, 1, "b"), h.task(P1, 0, "c"))

    async with running(h):
        await until("two attempts", lambda: len(h.action.started) == 2)
        await asyncio.sleep(0.05)
        assert h.action.started == ["a", "b"]
        assert h.executor.running == 2
        assert h.metric("baton_executor_in_flight") == 2

        h.action.release("a")
        await until("the third attempt", lambda: "c" in h.action.started)
        h.action.release("b")
        h.action.release("c")
        await until("all commits", lambda: h.consumer.committed(P0) == 2)
        await until("P1 commit", lambda: h.consumer.committed(P1) == 1)
        assert h.metric("baton_executor_in_flight") == 0
    assert all(m is None or m <= 2 for m in h.consumer.max_records_seen)


async def test_offsets_never_pass_an_unfinished_attempt() -> None:
    h = Harness()
    h.consumer.append(h.task(P0, 0, "slow"), h.task(P0, 1, "fast"))

    async with running(h):
        h.action.release("fast")
        await until("the fast report", lambda: len(h.publisher.published) == 1)
        await asyncio.sleep(0.05)
        assert h.consumer.committed(P0) is None

        h.action.release("slow")
        await until("the commit", lambda: h.consumer.committed(P0) == 2)


async def test_a_report_is_retried_until_kafka_acknowledges_it_before_committing() -> None:
    h = Harness(failures=3)
    h.consumer.append(h.task(P0, 0, "lookup"))
    h.action.release("lookup")

    async with running(h):
        await until("the commit", lambda: h.consumer.committed(P0) == 1)

    assert h.publisher.calls == 4
    assert len(h.commands()) == 1
    assert h.action.started == ["lookup"], "the action ran again"


@pytest.mark.parametrize(
    ("value", "headers", "reason", "fragment"),
    [
        (b"\x00garbage", (), "not_cloudevent", "ce_type"),
        (None, (("ce_type", b"x"),), "not_cloudevent", "no value"),
    ],
)
async def test_undecodable_records_are_dead_lettered_and_committed(
    value: bytes | None, headers: tuple[tuple[str, bytes], ...], reason: str, fragment: str
) -> None:
    h = Harness()
    h.consumer.append(Record(P0.topic, 0, 0, b"k", value, headers))

    async with running(h):
        await until("the commit", lambda: h.consumer.committed(P0) == 1)

    [record] = h.publisher.published
    assert record.topic == "baton.dlq"
    letter = DeadLetter.model_validate(h.publisher.envelopes()[0].data)
    assert (letter.consumer, letter.offset) == ("executor", 0)
    assert fragment in letter.reason
    assert h.metric("baton_executor_dead_letters_total", reason=reason) == 1


async def test_records_that_are_not_step_tasks_are_dead_lettered() -> None:
    h = Harness()
    gate = GateOpened(
        run_id="r", story_id="s", story_version=1, step="review", gate_id="g", approvers=["bob"]
    )
    h.consumer.append(record_of(to_envelope(gate, id="g1", source="t", time=NOW), P0, 0))

    async with running(h):
        await until("the commit", lambda: h.consumer.committed(P0) == 1)

    letter = DeadLetter.model_validate(h.publisher.envelopes("baton.dlq")[0].data)
    assert letter.reason == "type 'baton.task.gate-opened.v1' is not baton.task.step.v1"
    assert h.action.started == []


async def test_an_invalid_step_task_is_dead_lettered_with_the_fields_at_fault() -> None:
    h = Harness()
    envelope = to_envelope(step_task(), id="t1", source="t", time=NOW)
    broken = envelope.model_copy(update={"data": {**envelope.data, "attempt_id": None}})
    h.consumer.append(record_of(broken, P0, 0))

    async with running(h):
        await until("the commit", lambda: h.consumer.committed(P0) == 1)

    letter = DeadLetter.model_validate(h.publisher.envelopes("baton.dlq")[0].data)
    assert letter.reason.startswith("invalid StepTask: attempt_id: ")
    assert h.action.started == []


async def test_revocation_waits_for_running_attempts_and_commits_them() -> None:
    h = Harness()
    h.consumer.append(h.task(P0, 0, "lookup"))

    async with running(h):
        await until("the attempt", lambda: h.action.started == ["lookup"])
        revoking = asyncio.create_task(h.executor.partitions_revoked({P0}))
        await asyncio.sleep(0.05)
        assert not revoking.done()

        h.action.release("lookup")
        await revoking

        assert h.consumer.committed(P0) == 1
        assert len(h.commands()) == 1


async def test_shutdown_cancels_unfinished_attempts_without_committing_them() -> None:
    h = Harness()
    h.consumer.append(h.task(P0, 0, "done"), h.task(P0, 1, "stuck"))
    h.action.release("done")
    loop = asyncio.create_task(h.executor.run())
    await until("both attempts", lambda: len(h.action.started) == 2)
    await until("the first report", lambda: len(h.publisher.published) == 1)
    loop.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await loop

    await h.executor.drain(0.05)

    assert h.executor.running == 0
    assert h.consumer.committed(P0) == 1
    assert len(h.commands()) == 1


async def test_a_redelivered_reported_attempt_is_not_run_again() -> None:
    h = Harness()
    h.action.release("lookup")
    h.consumer.append(h.task(P0, 0, "lookup"))

    async with running(h):
        await until("a commit", lambda: h.consumer.committed(P0) == 1)
        h.consumer.append(h.task(P0, 1, "lookup"))  # the same attempt, delivered again
        await until("the redelivery committed", lambda: h.consumer.committed(P0) == 2)

    assert h.action.started == ["lookup"]
    assert len(h.commands()) == 1
    assert h.metric("baton_executor_redeliveries_skipped_total") == 1


async def test_a_redelivery_of_a_running_attempt_waits_for_it() -> None:
    h = Harness()
    h.consumer.append(h.task(P0, 0, "lookup"), h.task(P1, 0, "lookup"))

    async with running(h):
        await until("the first run", lambda: h.action.started == ["lookup"])
        await asyncio.sleep(0.05)
        assert h.action.started == ["lookup"]
        assert h.consumer.committed(P1) is None  # not acknowledged before the run reports
        h.action.release("lookup")
        await until("both committed", lambda: h.consumer.committed(P1) == 1)

    assert h.action.started == ["lookup"]
    assert len(h.commands()) == 1


async def test_an_attempt_logs_with_its_ids_and_leaves_the_log_context_as_it_was() -> None:
    h = Harness()
    h.action.release("lookup")
    record = h.task(P0, 0, "lookup")
    structlog.contextvars.bind_contextvars(step="outer")
    try:
        merge = [structlog.contextvars.merge_contextvars]
        with structlog.testing.capture_logs(processors=merge) as logs:
            await h.executor.handle(record)

        assert structlog.contextvars.get_contextvars() == {"step": "outer"}
    finally:
        structlog.contextvars.clear_contextvars()
    [line] = [line for line in logs if line["event"] == "step attempt succeeded"]
    [command] = h.commands()
    assert (line["run_id"], line["step"], line["attempt_id"]) == (
        command.run_id,
        "lookup",
        command.attempt_id,
    )
