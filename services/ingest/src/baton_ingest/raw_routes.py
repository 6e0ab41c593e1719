"""Routing a raw-JSON ``baton.ingest`` record straight to ``StartRun`` record bytes.

The general path (:func:`baton_ingest.intake.read_inbound`, :func:`baton_ingest.router.route`,
:func:`baton_ingest.start_records.start_run_record`) builds an ingest ``Envelope``, an
``EventReceived``, a ``StartRun`` per matching story and reads them back into a record.
For the common high-volume format — raw JSON with a ``source`` header, the body parsed by
orjson, tracing off — every value of those models is known, so :class:`RawRoutes` writes
the same records from the parsed body and per-story constants: the same ``when`` and
dedup-key evaluation, run ids, header order and JSON bytes
(``tests/ingest/test_ingest_raw_routes.py`` compares both paths record by record).

Anything else answers None and the caller takes the general path, which then decides
everything anew (the decision is deterministic): another format, a header or body the
general path would refuse or read differently (not UTF-8, not parsed by orjson, not an
object), an expression that fails, a payload orjson cannot write.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import orjson
from pydantic import JsonValue

from baton_common import ids
from baton_common.catalog import StoryCatalog
from baton_common.commands import StartRun
from baton_common.envelope import Header, loads_json
from baton_common.expressions import ExpressionError, evaluate_condition
from baton_common.kafka import ConsumedRecord, OutboundRecord
from baton_common.story import Story
from baton_common.telemetry import current_traceparent, tracing_enabled
from baton_common.trusted import trusted
from baton_ingest.intake import STRUCTURED
from baton_ingest.router import dedup_key
from baton_ingest.start_records import CONTENT_HEADER, DIRECT, TYPE_SOURCE, constant_headers

__all__ = ["RawRoutes"]

_HEADERS: Final = frozenset({"ce_type", "content-type", "source", "traceparent"})


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


def _headers(record: ConsumedRecord) -> dict[str, bytes]:
    """The headers routing reads, by lower-case name; the first of a repeated name wins."""
    found: dict[str, bytes] = {}
    for key, value in record.headers:
        name = key.lower()
        if name in _HEADERS and name not in found:
            found[name] = value
    return found


class RawRoutes:
    """The StartRun records of raw-JSON records, for one batch (one time, one catalog state).

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

    def route(self, record: ConsumedRecord) -> tuple[list[OutboundRecord], list[str]] | None:
        """The records to produce and the story ids started, or None for the general path."""
        if not self._on:
            return None
        headers = _headers(record)
        source_bytes = headers.get("source")
        if "ce_type" in headers or not source_bytes or record.value is None:
            return None
        try:
            source = source_bytes.decode()
            content_type = headers.get("content-type")
            if content_type is not None and (
                content_type.decode().split(";")[0].strip() == STRUCTURED
            ):
                return None
            traceparent_bytes = headers.get("traceparent")
            traceparent = traceparent_bytes.decode() if traceparent_bytes is not None else None
            body, by_orjson = loads_json(record.value)
        except (UnicodeDecodeError, ValueError, RecursionError):
            return None
        if not by_orjson or type(body) is not dict:
            return None  # orjson's output holds no NaN or infinity: the direct writer's case
        plans = self._plans_for(source)
        if plans is None:
            return None
        return self._records(record, source_bytes, traceparent, body, plans)

    def _records(
        self,
        record: ConsumedRecord,
        source_bytes: bytes,
        traceparent: str | None,
        body: dict[str, JsonValue],
        plans: tuple[_Plan, ...],
    ) -> tuple[list[OutboundRecord], list[str]] | None:
        ingest_id = f"kafka:{record.topic}:{record.partition}:{record.offset}"
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
                    key = "ingest:" + ingest_id
                run_id = ids.run_id_for(plan.story_id, key)
                fields["run_id"] = run_id
                fields["trigger"] = body
                fields["ingest_id"] = ingest_id
                value = orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)
            except (ExpressionError, orjson.JSONEncodeError, TypeError):
                return None  # the general path reports the failure (or writes it its way)
            values.append((plan, run_id, value))
        if not values:
            return [], []
        ingest = ingest_id.encode()
        lineage: list[Header] = [
            ("ce_causationid", ingest),
            ("ce_correlationid", ingest),
            ("ce_actor", source_bytes),
        ]
        passed = current_traceparent(traceparent) if traceparent is not None else None
        if passed is not None:
            lineage.append(("ce_traceparent", passed.encode()))
        records = []
        for plan, run_id, value in values:
            key_bytes = run_id.encode()
            headers: list[Header] = [
                CONTENT_HEADER,
                ("ce_id", self._new_id().encode()),
                *TYPE_SOURCE,
                ("ce_subject", key_bytes),
                *plan.headers,
                *lineage,
            ]
            records.append(OutboundRecord(self._topic, key_bytes, value, headers))
        return records, [plan.story_id for plan, _, _ in values]
