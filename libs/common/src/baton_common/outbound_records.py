"""Outbound records encoded without the general codec's checks, for hot paths.

Envelopes built by a service itself carry ``data`` dumped by pydantic in JSON mode (or
values a JSON parser returned) and attributes the service set. When ``data`` is
``hashing.plain_json`` (no NaN or infinity, no float orjson writes otherwise than the
standard library, no integer beyond 64 bits), orjson's sorted output is final
(``encode_record`` would only look for NaN and infinities in it), and records written together (a
scheduler command's events and tasks, an executor's commands) share attribute objects,
whose header text is computed once. The bytes are those of
:func:`baton_common.envelope.encode_record` (``tests/common/test_outbound_records.py``);
anything else goes through it. Used by the scheduler and the executor (ADR 0330).
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import orjson

from baton_common.envelope import CONTENT_TYPE, Envelope, Header, encode_record, time_text
from baton_common.hashing import plain_json
from baton_common.kafka import OutboundRecord

__all__ = ["encoded", "record"]

# Attributes no two records share: encoded directly, past the cache below.
_OWN: Final = frozenset({"id", "type", "seq", "prevhash", "hash"})
_HEADERS: Final = tuple(
    (name, "ce_" + name, name not in _OWN)
    for name in Envelope.model_fields
    if name not in ("data", "datacontenttype")
)
_CONTENT_TYPE: Final = ("content-type", CONTENT_TYPE.encode())


# Per attribute: the last value encoded (held, so its identity cannot be reused) and
# its header. A command's events and tasks share most attribute objects (source, time,
# subject, story, correlation, actor, traceparent), so each is encoded once per command.
_last: dict[str, tuple[object, Header]] = {}


def _header(name: str, header: str, attribute: object) -> Header:
    if isinstance(attribute, datetime):
        text = time_text(attribute).encode()
    else:
        text = str(attribute).encode()
    found = _last[name] = (attribute, (header, text))
    return found[1]


def encoded(envelope: Envelope, value: bytes | None = None) -> tuple[bytes, list[Header]]:
    """``encode_record(envelope)``: the record value and headers, in its order.

    ``value`` is ``data`` as :func:`baton_common.hashing.chained` wrote it, if it did.
    """
    values = envelope.__dict__
    if value is None:
        data = values["data"]
        if not plain_json(data):
            return encode_record(envelope)
        try:
            value = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
        except (orjson.JSONEncodeError, TypeError):  # an integer beyond 64 bits, a surrogate
            return encode_record(envelope)
    headers: list[Header] = [_CONTENT_TYPE]
    last = _last
    for name, header, shared in _HEADERS:
        attribute = values[name]
        if attribute is None:
            continue
        if not shared:
            headers.append((header, str(attribute).encode()))
            continue
        seen = last.get(name)
        if seen is not None and seen[0] is attribute:
            headers.append(seen[1])
        else:
            headers.append(_header(name, header, attribute))
    return value, headers


def record(
    topic: str,
    key: str | None,
    envelope: Envelope,
    *,
    partition: int | None = None,
    value: bytes | None = None,
) -> OutboundRecord:
    """``baton_common.kafka.outbound`` with :func:`encoded`."""
    value, headers = encoded(envelope, value)
    return OutboundRecord(
        topic, key.encode() if key is not None else None, value, headers, partition
    )
