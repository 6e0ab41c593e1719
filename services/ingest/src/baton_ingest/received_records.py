"""The ``baton.ingest`` record of an accepted webhook event, built with little work.

What ``outbound(topic, path, to_envelope(EventReceived(path=path, body=body), ...))``
writes, without building and validating an ``Envelope`` (every attribute is text the
endpoint made) and without ``encode_record`` reading it back: byte for byte the same
(``tests/ingest/test_ingest_received_records.py`` compares them), and the general path
for a body orjson would write differently, as in :mod:`baton_ingest.start_records`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

import orjson
from pydantic import JsonValue

from baton_common.envelope import Header, time_text
from baton_common.kafka import OutboundRecord, outbound, to_envelope
from baton_common.records import EventReceived
from baton_common.trusted import json_types_only, trusted
from baton_ingest.start_records import CONTENT_HEADER, DIRECT, time_headers

__all__ = ["received_record"]

EVENT_RECEIVED: Final = EventReceived.model_fields["type"].default
_TYPE: Final = ("ce_type", EVENT_RECEIVED.encode())
_BODY: Final = frozenset({"body"})
_SPECVERSION: Final = time_headers(datetime(2000, 1, 1, tzinfo=UTC))[1]


def received_record(
    topic: str,
    path: str,
    body: dict[str, JsonValue],
    *,
    id: str,
    time: datetime,
    traceparent: str | None,
    checked: bool = False,
) -> OutboundRecord:
    """The record of webhook event ``body`` received on ``path``, with envelope id ``id``.

    ``checked``: the body came from orjson, so it holds JSON types only (no walk to check).
    """
    source = f"baton/ingest/webhook/{path}"
    value: bytes | None = None
    if DIRECT and (checked or json_types_only(body)):
        try:
            value = orjson.dumps(
                {"body": body, "path": path, "type": EVENT_RECEIVED}, option=orjson.OPT_SORT_KEYS
            )
        except (orjson.JSONEncodeError, TypeError):
            value = None
    if value is None:
        envelope = to_envelope(
            trusted(EventReceived, path=path, body=body),
            as_is=_BODY,  # the body as parsed from JSON: dumping it would copy it unchanged
            id=id,
            source=source,
            time=time,
            correlationid=id,
            traceparent=traceparent,
        )
        return outbound(topic, path, envelope)
    encoded_id = id.encode()
    headers: list[Header] = [CONTENT_HEADER, ("ce_id", encoded_id), _TYPE]
    headers.append(("ce_source", source.encode()))
    if time.tzinfo is UTC:  # as the envelope writes it: ISO 8601, Z for UTC
        headers.append(("ce_time", time_text(time).encode()))
        headers.append(_SPECVERSION)
    else:
        headers.extend(time_headers(time))
    headers.append(("ce_correlationid", encoded_id))
    if traceparent is not None:
        headers.append(("ce_traceparent", traceparent.encode()))
    return OutboundRecord(topic, path.encode(), value, headers)
