"""The scheduler's outbound records, encoded without the general codec's checks.

Every envelope the scheduler writes carries ``data`` dumped by pydantic in JSON mode and
attributes it set itself. When ``data`` holds no float and no integer beyond 64 bits,
orjson's sorted output is final (``encode_record`` would only look for NaN and infinities
in it), and all events and tasks of a command share one ``time``, whose text is
computed once. The bytes are those of :func:`baton_common.envelope.encode_record`
(``tests/scheduler/test_records.py``); anything else goes through it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import orjson
from pydantic import TypeAdapter

from baton_common.envelope import CONTENT_TYPE, Envelope, Header, encode_record
from baton_common.hashing import plain_json
from baton_common.kafka import OutboundRecord

__all__ = ["encoded", "record"]

_HEADERS: Final = tuple(
    (name, "ce_" + name)
    for name in Envelope.model_fields
    if name not in ("data", "datacontenttype")
)
_CONTENT_TYPE: Final = ("content-type", CONTENT_TYPE.encode())
_TIME: Final = TypeAdapter(datetime)


class _TimeText:
    """The header text of the last ``time`` encoded (a command's records share it)."""

    def __init__(self) -> None:
        self._last: tuple[datetime, bytes] | None = None

    def __call__(self, value: datetime) -> bytes:
        last = self._last
        if last is None or last[0] is not value:
            last = self._last = (value, _TIME.dump_python(value, mode="json").encode())
        return last[1]


_time_text = _TimeText()


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
    for name, header in _HEADERS:
        attribute = values[name]
        if attribute is None:
            continue
        if name == "time":
            headers.append((header, _time_text(attribute)))
        else:
            headers.append((header, str(attribute).encode()))
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
