"""The ``baton.commands`` record of a routed ``StartRun``, built with little work per event.

``outbound(topic, run_id, start_run_envelope(...))`` builds an ``Envelope`` (validating
its attributes), then ``encode_record`` reads the attributes back into headers and
serializes the payload. The router does that for every event, with attributes that are
already valid (they come from a validated ingest envelope and a story), so
:func:`start_run_record` writes the same headers and the same value directly: byte for
byte what the general path writes (``tests/ingest/test_ingest_start_records.py`` compares
them), and it takes the general path for anything unusual — a payload orjson would write
differently (non-finite floats, integers beyond 64 bits, lone surrogates).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Final

import orjson

from baton_common.commands import StartRun
from baton_common.envelope import CONTENT_TYPE, Envelope, Header, time_text
from baton_common.kafka import OutboundRecord, outbound
from baton_common.telemetry import current_traceparent
from baton_common.trusted import json_types_only
from baton_ingest.router import START_SOURCE, start_run_envelope, start_run_lineage

__all__ = [
    "CONTENT_HEADER",
    "DIRECT",
    "TYPE_SOURCE",
    "constant_headers",
    "lineage_headers",
    "start_headers",
    "start_run_record",
    "time_headers",
]

_TYPE: Final = StartRun.model_fields["type"].default
CONTENT_HEADER: Final = ("content-type", CONTENT_TYPE.encode())
# Every envelope attribute in the order encode_record writes them, with its default.
_ATTRIBUTES: Final = {
    name: field.default
    for name, field in Envelope.model_fields.items()
    if name not in ("data", "datacontenttype")
}
_HEADER_NAMES: Final = {name: "ce_" + name for name in _ATTRIBUTES}
_TRIGGER: Final = {"trigger"}


def _plain_fields(start: StartRun) -> dict[str, object] | None:
    """``start.model_dump(mode="json", exclude={"trigger"})``, when that is its ``__dict__``.

    Every other StartRun field is text, an integer or None, which the JSON dump keeps as
    is; anything else (a subclass, another type) returns None for the general path.
    """
    if type(start) is not StartRun:
        return None
    data = dict(start.__dict__)
    del data["trigger"]
    for value in data.values():
        kind = type(value)
        if not (kind is str or kind is int or value is None):
            return None
    return data


@lru_cache(maxsize=16)
def time_headers(time: datetime) -> tuple[tuple[str, bytes], ...]:
    """The headers between subject and storyid: type, source, time and specversion."""
    return (
        ("ce_time", time_text(time).encode()),
        ("ce_specversion", str(_ATTRIBUTES["specversion"]).encode()),
    )


# The order encode_record writes the attributes in, as the direct headers below assume;
# if the envelope changes, the generic header loop is used (and the tests compare both).
DIRECT: Final = tuple(_ATTRIBUTES) == (
    "id",
    "type",
    "source",
    "subject",
    "time",
    "specversion",
    "storyid",
    "storyversion",
    "causationid",
    "correlationid",
    "actor",
    "seq",
    "traceparent",
    "prevhash",
    "hash",
) and all(_ATTRIBUTES[n] is None for n in ("seq", "prevhash", "hash"))
TYPE_SOURCE: Final = (("ce_type", _TYPE.encode()), ("ce_source", START_SOURCE.encode()))


@lru_cache(maxsize=64)
def constant_headers(
    time: datetime, story_id: str, version: int | None
) -> tuple[tuple[str, bytes], ...]:
    """The headers between subject and causationid, the same for a story's whole batch:
    time, specversion, storyid and storyversion."""
    story = [("ce_storyid", story_id.encode())]
    if version is not None:
        story.append(("ce_storyversion", str(version).encode()))
    return time_headers(time) + tuple(story)


def lineage_headers(
    causation: str, correlation: str, actor: bytes, traceparent: str | None
) -> list[Header]:
    """The headers after storyversion: the ingest event's id, correlation, actor, and the
    traceparent passed on (``current_traceparent``), the same for all its commands."""
    headers: list[Header] = [
        ("ce_causationid", causation.encode()),
        ("ce_correlationid", correlation.encode()),
        ("ce_actor", actor),
    ]
    passed = current_traceparent(traceparent)
    if passed is not None:
        headers.append(("ce_traceparent", passed.encode()))
    return headers


def start_headers(
    id: str, subject: bytes, story: tuple[Header, ...], lineage: Sequence[Header]
) -> list[Header]:
    """The headers ``encode_record`` writes for a StartRun envelope, in its order: ``story``
    from :func:`constant_headers`, ``lineage`` from :func:`lineage_headers`."""
    return [
        CONTENT_HEADER,
        ("ce_id", id.encode()),
        *TYPE_SOURCE,
        ("ce_subject", subject),
        *story,
        *lineage,
    ]


def _direct_headers(start: StartRun, ingest: Envelope, id: str, time: datetime) -> list[Header]:
    """The headers ``encode_record`` writes for the StartRun envelope, in its order."""
    return start_headers(
        id,
        start.run_id.encode(),
        constant_headers(time, start.story_id, start.story_version),
        lineage_headers(
            ingest.id,
            ingest.correlationid or ingest.id,
            (ingest.actor or ingest.source).encode(),
            ingest.traceparent,
        ),
    )


def start_run_record(
    topic: str, start: StartRun, ingest: Envelope, *, id: str, time: datetime
) -> OutboundRecord:
    """``outbound(topic, start.run_id, start_run_envelope(start, ingest, id=id, time=time))``."""
    data = _plain_fields(start)
    if data is None:
        data = start.model_dump(mode="json", exclude=_TRIGGER)
    data["trigger"] = start.trigger
    value: bytes | None = None
    if json_types_only(start.trigger):
        try:
            value = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
        except (orjson.JSONEncodeError, TypeError):
            value = None
    if value is None:
        return outbound(topic, start.run_id, start_run_envelope(start, ingest, id=id, time=time))
    if DIRECT:
        return OutboundRecord(
            topic, start.run_id.encode(), value, _direct_headers(start, ingest, id, time)
        )
    attributes = dict(_ATTRIBUTES)
    attributes.update(
        id=id, type=_TYPE, source=START_SOURCE, subject=start.run_id, time=time_text(time)
    )
    attributes.update(start_run_lineage(start, ingest))
    headers = [CONTENT_HEADER]
    headers.extend(
        (_HEADER_NAMES[name], str(attribute).encode())
        for name, attribute in attributes.items()
        if attribute is not None
    )
    return OutboundRecord(topic, start.run_id.encode(), value, headers)
