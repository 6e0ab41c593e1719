"""A run log built through the pure decider and journal, as the scheduler builds it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, JsonValue

from baton_common import ids
from baton_common.commands import COMMAND_ADAPTER, Command, FireTimer, StartRun
from baton_common.envelope import Envelope, encode_record
from baton_common.events import RunEvent
from baton_common.hashing import sealed
from baton_common.kafka import to_envelope
from baton_common.policy import Policy
from baton_common.records import GateClosed, GateOpened, GateReminder, StepTask
from baton_common.settings import TopicSettings
from baton_common.state import RunState
from baton_common.story import Story, parse_story
from baton_scheduler.decide import Context, decide
from baton_scheduler.journal import Entry, journal

PARTITIONS = 6
ROOT = Path(__file__).resolve().parents[2]
HELLO = parse_story((ROOT / "examples/stories/hello-approval.yaml").read_text())
T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
RUN = ids.run_id_for("hello-approval", "ingest:evt-1")
TRIGGER: dict[str, JsonValue] = {
    "message": "hi",
    "lookup_url": "http://l/x",
    "notify_url": "http://n/y",
}


class Log:
    """A run's log built through decide + journal, as the scheduler does."""

    def __init__(self, story: Story = HELLO, policies: tuple[Policy, ...] = ()) -> None:
        self.story = story
        self.policies = policies  # in force for every command (ADR 0910)
        self.runs: dict[str, RunState] = {}
        self.envelopes: list[Envelope] = []
        self.count = 0
        self.run_id = RUN

    @property
    def state(self) -> RunState | None:
        return self.runs.get(self.run_id)

    def send(self, command: Command, *, at: datetime = T0) -> list[str]:
        self.count += 1
        # every other command carries an actor, a correlation id and a traceparent, so
        # the journal's records are checked with and without them
        odd = self.count % 2 == 1
        cmd_env = Envelope(
            id=f"cmd-{self.count}",
            type=command.type,
            source="test",
            time=at,
            actor="operator" if odd else None,
            correlationid=f"corr-{self.count}" if odd else None,
            traceparent=f"00-{self.count:032x}-{self.count:016x}-01" if odd else None,
            data=command.model_dump(mode="json"),
        )
        state = self.runs.get(command.run_id)
        current = self.runs.get(state.dedup_current) if state and state.dedup_current else None
        context = Context(at, cmd_env.id, PARTITIONS, current, policies=self.policies)
        decision = decide(state, command, self.story, context)
        known = {s.run_id: s for s in (state, current) if s is not None}
        entry = journal(known, decision.events, cmd_env, at, TopicSettings(), decision.after)
        assert _unchained(entry.states) == _unchained(decision.states)  # they agree
        # the decider's evolved states, stamped, are what evolving every event again gives
        assert_same_entry(entry, journal(known, decision.events, cmd_env, at, TopicSettings()))
        for event in decision.events:  # the decider builds some without validation
            assert_validated(event)
        assert_general_records(entry, decision.events)
        for task in entry.tasks:
            data = task.envelope.data
            if data["type"] == "baton.task.step.v1":
                assert StepTask.model_validate(data).model_dump(mode="json") == data
        self.envelopes.extend(entry.events)
        self.runs.update(entry.states)
        self.last_tasks = entry.tasks
        return [e.type.removeprefix("baton.").removesuffix(".v1") for e in entry.events]

    @property
    def run(self) -> RunState:
        assert self.state is not None
        return self.state

    def of(self, run_id: str) -> list[Envelope]:
        return [e for e in self.envelopes if e.subject == run_id]

    def attempt(self, step: str) -> str:
        attempt_id = self.run.steps[step].attempt_id
        assert attempt_id is not None
        return attempt_id


def assert_validated(model: BaseModel) -> None:
    """``model`` (perhaps built by ``trusted``) is what validating the same values gives."""
    checked = type(model)(**{name: getattr(model, name) for name in model.model_fields_set})
    assert checked == model
    assert checked.__dict__ == model.__dict__
    assert checked.model_fields_set == model.model_fields_set


def assert_same_entry(entry: Entry, reference: Entry) -> None:
    """Byte for byte and field for field, including each state's fields-set."""
    assert entry == reference
    for run_id, state in entry.states.items():
        assert state.__dict__ == reference.states[run_id].__dict__
        assert state.model_fields_set == reference.states[run_id].model_fields_set


def assert_general_records(entry: Entry, events: list[RunEvent]) -> None:
    """The journal's envelopes and records are the general path's (ADR 0170):
    ``hashing.sealed`` of the event's ``model_dump``, ``to_envelope`` for a task, and
    ``encode_record`` of either, byte for byte and field for field."""
    for event, envelope, record in zip(events, entry.events, entry.records, strict=True):
        given = {n: getattr(envelope, n) for n in envelope.model_fields_set - {"data", "hash"}}
        reference, _ = sealed(given, event.model_dump(mode="json"))
        assert_same_envelope(envelope, reference)
        assert record == encode_record(reference)
    for task in entry.tasks:
        env = task.envelope
        payload = _payload(env.data)
        given = {n: getattr(env, n) for n in env.model_fields_set - {"data"}}
        assert_same_envelope(env, to_envelope(payload, **given))
        if task.record is not None:
            assert task.record == encode_record(env)


def _payload(data: dict[str, JsonValue]) -> BaseModel:
    """A task record's or a call command's payload, validated."""
    kinds = (StepTask, GateOpened, GateClosed, GateReminder)
    for kind in kinds:
        if data["type"] == kind.model_fields["type"].default:
            return kind.model_validate(data)
    return COMMAND_ADAPTER.validate_python(data)


def assert_same_envelope(envelope: Envelope, reference: Envelope) -> None:
    assert envelope == reference
    assert envelope.__dict__ == reference.__dict__
    assert envelope.model_fields_set == reference.model_fields_set
    assert envelope.model_dump_json() == reference.model_dump_json()


def _unchained(states: dict[str, RunState]) -> dict[str, RunState]:
    return {k: s.model_copy(update={"seq": 0, "last_hash": ""}) for k, s in states.items()}


def start(log: Log, **extra: object) -> list[str]:
    return log.send(StartRun(run_id=RUN, story_id="hello-approval", trigger=TRIGGER, **extra))  # type: ignore[arg-type]


def fire_due(log: Log, at: datetime, run_id: str | None = None) -> list[str]:
    """Send a FireTimer for every timer of the run due at ``at``, as the timer loop does."""
    run = log.runs[run_id or log.run_id]
    out: list[str] = []
    for timer_id, timer in sorted(run.timers.items(), key=lambda kv: kv[1].fire_at):
        if timer.fire_at <= at:
            out += log.send(
                FireTimer(
                    run_id=run.run_id,
                    timer_id=timer_id,
                    kind=timer.kind,
                    step=timer.step,
                    attempt=timer.attempt,
                    fire_at=timer.fire_at,
                ),
                at=at,
            )
    return out
