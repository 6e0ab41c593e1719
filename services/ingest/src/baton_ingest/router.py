"""The routing decision: which stories an ingested event starts, and with which run ids.

Pure: no Kafka, no clock, no randomness. Command ids and times are passed in, so the
decision for a given event and catalog is the same every time it is made — a redelivered
``baton.ingest`` record maps to the same run ids, and the scheduler deduplicates it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Final, Literal, TypedDict

from pydantic import JsonValue

from baton_common import ids
from baton_common.commands import StartRun
from baton_common.envelope import Envelope
from baton_common.expressions import ExpressionError, evaluate_condition, render_value
from baton_common.kafka import to_envelope
from baton_common.records import EventReceived
from baton_common.story import Story
from baton_common.telemetry import current_traceparent
from baton_common.trusted import trusted

__all__ = ["Routing", "SkipReason", "Skipped", "dedup_key", "route", "start_run_envelope"]

SkipReason = Literal["when_error", "dedup_key_error"]
_TRIGGER: Final = frozenset({"trigger"})
START_SOURCE: Final = "baton/ingest"
_EVENT_FIELD: Final = re.compile(r"\s*\{\{\s*event\.([A-Za-z][A-Za-z0-9_]*)\s*\}\}\s*")


@dataclass(frozen=True, slots=True)
class Skipped:
    """A story on the event's path that was not started because an expression failed."""

    story_id: str
    reason: SkipReason
    detail: str


@dataclass(frozen=True, slots=True)
class Routing:
    """The runs an event starts, and the stories skipped for a failing expression."""

    starts: tuple[StartRun, ...]
    skipped: tuple[Skipped, ...] = ()

    @property
    def matched(self) -> bool:
        return bool(self.starts)


@lru_cache(maxsize=256)
def event_field(template: str) -> str | None:
    """The top-level event field a key such as ``{{ event.alert_id }}`` reads, else None.

    Only a name that is not also a ``dict`` attribute: for ``event.items`` the sandbox
    would return the dict's method, not the field.
    """
    match = _EVENT_FIELD.fullmatch(template)
    if match is None or hasattr(dict, match.group(1)):
        return None
    return match.group(1)


def dedup_key(template: str, body: dict[str, JsonValue]) -> str:
    """Render a story's dedup key over the event, as text.

    A key that is one top-level field holding non-empty text (the common
    ``{{ event.alert_id }}``) is that text, which is what the renderer returns for it;
    anything else (another template, a missing field, another type) is rendered.

    Raises:
        ExpressionError: if the template fails, or renders to nothing (null or ""), since
            an empty key would fold unrelated events into one run.
    """
    field = event_field(template)
    if field is not None:
        value = body.get(field)
        if type(value) is str and value:
            return value
    value = render_value(template, {"event": body})
    if value is None or value == "":
        raise ExpressionError(f"dedup key {template!r} rendered to an empty value")
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def route(
    event: EventReceived, body: dict[str, JsonValue], ingest_id: str, stories: Iterable[Story]
) -> Routing:
    """Decide which stories ``event`` starts.

    A story matches when its webhook path is the event's path and its ``when`` condition
    (over ``event``) holds. Its run id comes from the dedup key when the trigger has one,
    else from the ingest record id, so that both duplicates and redeliveries land on one run.

    Args:
        event: the ingested event.
        body: ``event.body``, already checked to be a JSON object.
        ingest_id: the id of the ``baton.ingest`` envelope.
        stories: the active version of every story (or those on the event's path).

    ``body`` comes from a JSON parser, so every value is already what ``StartRun`` would
    validate it to (a story's id and version, rendered text): the commands are built
    without validating ``body`` once more per story.
    """
    starts: list[StartRun] = []
    skipped: list[Skipped] = []
    context: dict[str, JsonValue] = {"event": body}
    candidates = sorted(
        (
            s
            for s in stories
            if event.path is not None
            and s.trigger.webhook is not None
            and s.trigger.webhook.path == event.path
        ),
        key=lambda s: s.id,
    )
    for story in candidates:
        trigger = story.trigger
        if trigger.when is not None:
            try:
                if not evaluate_condition(trigger.when, context):
                    continue
            except ExpressionError as exc:
                skipped.append(Skipped(story.id, "when_error", str(exc)))
                continue
        if trigger.dedup is not None:
            try:
                key = dedup_key(trigger.dedup.key, body)
            except ExpressionError as exc:
                skipped.append(Skipped(story.id, "dedup_key_error", str(exc)))
                continue
            start = trusted(
                StartRun,
                run_id=ids.run_id_for(story.id, key),
                story_id=story.id,
                story_version=story.version,
                trigger=body,
                dedup_key=key,
                dedup_window_seconds=int(trigger.dedup.window.total_seconds()),
                ingest_id=ingest_id,
            )
        else:
            start = trusted(
                StartRun,
                run_id=ids.run_id_for(story.id, "ingest:" + ingest_id),
                story_id=story.id,
                story_version=story.version,
                trigger=body,
                ingest_id=ingest_id,
            )
        starts.append(start)
    return Routing(tuple(starts), tuple(skipped))


class Lineage(TypedDict):
    """A StartRun envelope's attributes that come from its story and its ingest record."""

    storyid: str
    storyversion: int | None
    actor: str
    correlationid: str
    causationid: str
    traceparent: str | None


def start_run_lineage(start: StartRun, ingest: Envelope) -> Lineage:
    """Who and what caused ``start``: the ingest record's actor, correlation and trace."""
    return Lineage(
        storyid=start.story_id,
        storyversion=start.story_version,
        actor=ingest.actor or ingest.source,
        correlationid=ingest.correlationid or ingest.id,
        causationid=ingest.id,
        traceparent=current_traceparent(ingest.traceparent),
    )


def start_run_envelope(start: StartRun, ingest: Envelope, *, id: str, time: datetime) -> Envelope:
    """The ``baton.commands`` envelope of a StartRun caused by the ingest record ``ingest``."""
    return to_envelope(
        start,
        as_is=_TRIGGER,  # the event as parsed from JSON: dumping it would copy it unchanged
        id=id,
        source=START_SOURCE,
        time=time,
        subject=start.run_id,
        **start_run_lineage(start, ingest),
    )
