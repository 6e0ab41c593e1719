"""Hot spans written straight in the protobuf wire format of an OTLP export request.

The protobuf classes build a message object per span, attribute and value (in C, but
with a Python call and keyword parsing each): about 15 µs a span, in the export thread,
holding the GIL against the scheduler's event loop. A hot span has a fixed shape (ids,
name, kind, two times, a few attributes, maybe an error status), so its bytes are written
here directly, field by field in field-number order as the protobuf library writes them
(``tests/common/test_otlp_wire.py`` compares the two byte for byte). Field numbers are
those of ``opentelemetry/proto/trace/v1/trace.proto`` and ``common/v1/common.proto``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from typing import Final

__all__ = ["AttributeValue", "encode_request", "encode_span", "key_values"]

AttributeValue = str | int | float | bool

_FIXED64: Final = struct.Struct("<Q")
_DOUBLE: Final = struct.Struct("<d")
_INTERNAL: Final = b"\x30\x01"  # Span.kind (6, varint) = SPAN_KIND_INTERNAL
_ERROR_CODE: Final = b"\x18\x02"  # Status.code (3, varint) = STATUS_CODE_ERROR


def _varint(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: its tag, the payload's length, the payload."""
    n = len(payload)
    return tag + (bytes((n,)) if n < 0x80 else _varint(n)) + payload


_KEYS: dict[str, bytes] = {}  # KeyValue.key (1) of each attribute name seen


def _any_value(value: AttributeValue) -> bytes:
    """An ``AnyValue``: the oneof member is written even when it is the default."""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"  # bool_value (2)
    if isinstance(value, int):
        return b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)  # int_value (3), two's complement
    if isinstance(value, float):
        return b"\x21" + _DOUBLE.pack(value)  # double_value (4)
    return _field(b"\x0a", str(value).encode())  # string_value (1)


def key_values(attributes: Mapping[str, AttributeValue]) -> bytes:
    """``Span.attributes`` (9): one ``KeyValue`` field per attribute, in the mapping's order."""
    out = []
    for key, value in attributes.items():
        name = _KEYS.get(key)
        if name is None:
            name = _KEYS[key] = _field(b"\x0a", key.encode()) if key else b""
        out.append(_field(b"\x4a", name + _field(b"\x12", _any_value(value))))
    return b"".join(out)


def encode_span(
    trace_id: str,
    span_id: int,
    parent_id: str,
    name: str,
    start: int,
    end: int,
    attributes: Mapping[str, AttributeValue],
    error: str | None,
) -> bytes:
    """One ``Span`` message (not yet framed as ``ScopeSpans.spans``): ids as hex text (the
    span's own as an int), times in Unix nanoseconds; an error type adds the attribute
    ``error.type`` and an error status carrying it."""
    if error is not None:
        attributes = {**attributes, "error.type": error}
    parts = [
        b"\x0a\x10",  # trace_id (1)
        bytes.fromhex(trace_id),
        b"\x12\x08",  # span_id (2)
        span_id.to_bytes(8, "big"),
        b"\x22\x08",  # parent_span_id (4)
        bytes.fromhex(parent_id),
    ]
    if name:
        parts.append(_field(b"\x2a", name.encode()))  # name (5)
    parts.append(_INTERNAL)
    if start:
        parts += (b"\x39", _FIXED64.pack(start))  # start_time_unix_nano (7)
    if end:
        parts += (b"\x41", _FIXED64.pack(end))  # end_time_unix_nano (8)
    parts.append(key_values(attributes))
    if error is not None:
        # status (15): message (2), code (3)
        status = (_field(b"\x12", error.encode()) if error else b"") + _ERROR_CODE
        parts.append(_field(b"\x7a", status))
    return b"".join(parts)


def encode_request(resource: bytes, scope: bytes, spans: Iterable[bytes]) -> bytes:
    """An ``ExportTraceServiceRequest`` of one ``ResourceSpans`` holding one ``ScopeSpans``.

    Args:
        resource: the serialized ``Resource`` message.
        scope: the serialized ``InstrumentationScope`` message.
        spans: serialized ``Span`` messages (from :func:`encode_span`).
    """
    scope_spans = _field(b"\x0a", scope) + b"".join(_field(b"\x12", s) for s in spans)
    resource_spans = _field(b"\x0a", resource) + _field(b"\x12", scope_spans)
    return _field(b"\x0a", resource_spans)  # resource_spans (1)
