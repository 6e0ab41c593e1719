"""Routing a ``baton.ingest`` record straight to ``StartRun`` record bytes (ADR 0230).

The general path (:func:`baton_ingest.intake.read_inbound`, :func:`baton_ingest.router.route`,
:func:`baton_ingest.start_records.start_run_record`) builds an ingest ``Envelope``, an
``EventReceived``, a ``StartRun`` per matching story and reads them back into a record.
For the two high-volume formats — raw JSON with a ``source`` header, and Baton's own
``baton.ingest.received.v1`` CloudEvent that the webhook endpoint writes — with the
payload parsed by orjson and tracing off, every value of those models is known, so
:class:`DirectRoutes` writes the same records from the parsed payload and per-story
constants: the same ``when`` and dedup-key evaluation, run ids, header order and JSON bytes
(``tests/ingest/test_ingest_direct_routes.py`` compares both paths record by record).

Anything else answers None and the caller takes the general path, which then decides
everything anew (the decision is deterministic): another format, a header or payload the
general path would refuse or read differently (not UTF-8, not parsed by orjson, not an
object, an attribute validation would change or refuse), an expression that fails, a
payload orjson cannot write.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import orjson
from pydantic import JsonValue, TypeAdapter, ValidationError

from baton_common import ids
from baton_common.catalog import StoryCatalog
from baton_common.commands import StartRun
from baton_common.envelope import Envelope, Header, loads_json
from baton_common.expressions import ExpressionError, evaluate_condition
from baton_common.kafka import ConsumedRecord, OutboundRecord
from baton_common.story import Story
from baton_common.telemetry import tracing_enabled
from baton_common.trusted import trusted
from baton_ingest.intake import EVENT_RECEIVED, STRUCTURED
from baton_ingest.router import dedup_key
from baton_ingest.start_records import (
    DIRECT,
    constant_headers,
    lineage_headers,
    start_headers,
)

__all__ = ["DirectRoutes"]

_RAW_HEADERS: Final = frozenset({"content-type", "source", "traceparent"})
_EVENT_FIELDS: Final = frozenset({"type", "path", "body"})
# Envelope attributes validation would turn into something else than their header text.
_NOT_TEXT: Final = frozenset(
    name
    for name, field in Envelope.model_fields.items()
    if name != "time" and field.annotation not in (str, str | None)
)
_NOT_TEXT_HEADERS: Final = frozenset("ce_" + name for name in _NOT_TEXT)
_TIME: Final = TypeAdapter(datetime)
Decided = tuple[list[OutboundRecord], list[str]]


@dataclass(frozen=True, slots=True)
class _Plan:
    """One story's part of the routing, fixed for a batch."""

    story_id: str
    when: str | None
    dedup: str | None  # the dedup key template
    fields: dict[str, object]  # the StartRun's JSON fields but run_id, trigger, key, ingest id
    headers: tuple[Header, ...]  # time, specversion, storyid and storyversion


def _plan(story: Story, time: datetime) -> _Plan | None:
    """The story's constants, or None if its StartRun does not dump to its ``__dict__``."""
    trigger = story.trigger
    extra: dict[str, object] = {}
    if trigger.dedup is not None:
        extra = {
            "dedup_key": "",
            "dedup_window_seconds": int(trigger.dedup.window.total_seconds()),
        }
    # The StartRun route() builds, with the per-event fields left blank.
    template = trusted(
        StartRun,
        run_id="",
        story_id=story.id,
        story_version=story.version,
        trigger={},
        ingest_id="",
        **extra,
    )
    fields = dict(template.__dict__)
    del fields["trigger"]
    if not all(type(v) is str or type(v) is int or v is None for v in fields.values()):
        return None
    return _Plan(
        story.id,
        trigger.when,
        trigger.dedup.key if trigger.dedup is not None else None,
        fields,
        constant_headers(time, story.id, story.version),
    )


@dataclass(frozen=True, slots=True)
class _Ingested:
    """What routing reads of an ingest record: its envelope's id, lineage and event."""

    id: str
    correlationid: str
    actor: bytes
    traceparent: str | None
    path: str | None
    body: dict[str, JsonValue]


def _json_object(value: bytes | None) -> dict[str, JsonValue] | None:
    """The value parsed by orjson (its output holds no NaN or infinity), if an object."""
    if value is None:
        return None
    try:
        document, by_orjson = loads_json(value)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not by_orjson or type(document) is not dict:
        return None
    parsed: dict[str, JsonValue] = document
    return parsed


def _binary_cloudevent(record: ConsumedRecord) -> bool:
    """Whether any header is named ``ce_type`` (in any case), as ``read_inbound`` tests."""
    for key, _ in record.headers:
        if key == "ce_type" or key.lower() == "ce_type":
            return True
    return False


def _raw(record: ConsumedRecord) -> _Ingested | None:
    """A raw-JSON record (``source`` header), as ``read_inbound`` would read it."""
    found: dict[str, bytes] = {}
    for key, value in record.headers:
        name = key.lower()
        if name in _RAW_HEADERS and name not in found:  # the first of a name wins
            found[name] = value
    source = found.get("source")
    if not source:
        return None
    try:
        content_type = found.get("content-type")
        if content_type is not None and content_type.decode().split(";")[0].strip() == STRUCTURED:
            return None
        traceparent = found.get("traceparent")
        text = traceparent.decode() if traceparent is not None else None
        path = source.decode()
    except UnicodeDecodeError:
        return None
    body = _json_object(record.value)
    if body is None:
        return None
    id = f"kafka:{record.topic}:{record.partition}:{record.offset}"
    return _Ingested(id, id, source, text, path, body)


def _received(record: ConsumedRecord) -> _Ingested | None:
    """A ``baton.ingest.received.v1`` CloudEvent, as ``read_inbound`` would read it.

    Only the plain case: every ``ce_`` header name in lower case and given once, the
    attributes text (validation keeps text as is) and a valid time.
    """
    attributes: dict[str, str] = {}
    try:
        for key, value in record.headers:
            name = key.lower()
            if name.startswith("ce_"):
                if name != key or name in attributes:
                    return None
                attributes[name] = value.decode()
    except UnicodeDecodeError:
        return None
    id, source, time = (
        attributes.get("ce_id"),
        attributes.get("ce_source"),
        attributes.get("ce_time"),
    )
    if (
        attributes.get("ce_type") != EVENT_RECEIVED
        or id is None
        or source is None
        or time is None
        or not _NOT_TEXT_HEADERS.isdisjoint(attributes)
    ):
        return None
    try:
        _TIME.validate_python(time)
    except ValidationError:
        return None
    data = _json_object(record.value)
    if data is None or data.keys() != _EVENT_FIELDS or data["type"] != EVENT_RECEIVED:
        return None
    path, body = data["path"], data["body"]
    if not (path is None or type(path) is str) or type(body) is not dict:
        return None
    return _Ingested(
        id,
        attributes.get("ce_correlationid") or id,
        (attributes.get("ce_actor") or source).encode(),
        attributes.get("ce_traceparent"),
        path,
        body,
    )


class DirectRoutes:
    """The StartRun records of the records it can take, for one batch (one time, one
    catalog state).

    Plans are built per webhook path on first use and kept for the batch. With tracing
    on, every record is left to the general path (which opens a span per event).
    """

    def __init__(
        self, catalog: StoryCatalog, topic: str, time: datetime, new_id: Callable[[], str]
    ) -> None:
        self._catalog = catalog
        self._topic = topic
        self._time = time
        self._new_id = new_id
        self._plans: dict[str, tuple[_Plan, ...] | None] = {}
        # With tracing on, each event gets a span and its commands that span's traceparent.
        self._on = DIRECT and not tracing_enabled()

    def _plans_for(self, path: str) -> tuple[_Plan, ...] | None:
        if path not in self._plans:
            stories = sorted(self._catalog.for_webhook(path), key=lambda s: s.id)
            plans = [_plan(story, self._time) for story in stories]
            self._plans[path] = None if None in plans else tuple(p for p in plans if p)
        return self._plans[path]

    def route(self, record: ConsumedRecord) -> Decided | None:
        """The records to produce and the story ids started, or None for the general path."""
        if not self._on:
            return None
        # read_inbound's test for a CloudEvent in binary mode: any header named ce_type.
        ingested = _received(record) if _binary_cloudevent(record) else _raw(record)
        if ingested is None:
            return None
        if ingested.path is None:
            return [], []
        plans = self._plans_for(ingested.path)
        if plans is None:
            return None
        return self._records(ingested, plans)

    def _records(self, ingested: _Ingested, plans: tuple[_Plan, ...]) -> Decided | None:
        body = ingested.body
        context: dict[str, JsonValue] = {"event": body}
        values: list[tuple[_Plan, str, bytes]] = []
        for plan in plans:
            try:
                if plan.when is not None and not evaluate_condition(plan.when, context):
                    continue
                fields = dict(plan.fields)
                if plan.dedup is not None:
                    key = dedup_key(plan.dedup, body)
                    fields["dedup_key"] = key
                else:
                    key = "ingest:" + ingested.id
                run_id = ids.run_id_for(plan.story_id, key)
                fields["run_id"] = run_id
                fields["trigger"] = body
                fields["ingest_id"] = ingested.id
                value = orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)
            except (ExpressionError, orjson.JSONEncodeError, TypeError):
                return None  # the general path reports the failure (or writes it its way)
            values.append((plan, run_id, value))
        if not values:
            return [], []
        lineage = lineage_headers(
            ingested.id, ingested.correlationid, ingested.actor, ingested.traceparent
        )
        records = []
        for plan, run_id, value in values:
            key_bytes = run_id.encode()
            headers = start_headers(self._new_id(), key_bytes, plan.headers, lineage)
            records.append(OutboundRecord(self._topic, key_bytes, value, headers))
        return records, [plan.story_id for plan, _, _ in values]
