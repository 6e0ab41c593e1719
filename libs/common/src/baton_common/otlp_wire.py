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

__all__ = [
    "AttributeValue",
    "encode_request",
    "encode_resource",
    "encode_scope",
    "encode_span",
    "key_values",
]

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
_NAMES: dict[str, bytes] = {}  # Span.name (5) and kind (6) of each span name seen
_TIMES: Final = struct.Struct("<BQBQ")  # start (7) and end (8) time, fixed64 each


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
        if type(value) is str and len(value) < 40 and len(name) < 80:
            # the usual attribute, an id or a name: every length fits in one byte
            text = value.encode()
            n = len(text)
            if n < 40:
                size = bytes((len(name) + n + 4, 0x12, n + 2, 0x0A, n))
                out.append(b"\x4a" + size[:1] + name + size[1:] + text)
                continue
        out.append(_field(b"\x4a", name + _field(b"\x12", _any_value(value))))
    return b"".join(out)


def _key_value(key: str, value: AttributeValue) -> bytes:
    name = _field(b"\x0a", key.encode()) if key else b""
    return name + _field(b"\x12", _any_value(value))


def encode_resource(attributes: Mapping[str, AttributeValue]) -> bytes:
    """A ``Resource`` message: its attributes (1)."""
    return b"".join(_field(b"\x0a", _key_value(k, v)) for k, v in attributes.items())


def encode_scope(name: str) -> bytes:
    """An ``InstrumentationScope`` message with only a name (1)."""
    return _field(b"\x0a", name.encode()) if name else b""


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
    named = _NAMES.get(name)
    if named is None:
        named = _NAMES[name] = (_field(b"\x2a", name.encode()) if name else b"") + _INTERNAL
    # trace_id (1), span_id (2), parent_span_id (4), each with its length, in one go
    ids = bytes.fromhex(f"0a10{trace_id}1208{span_id:016x}2208{parent_id}")
    if start and end:
        times = _TIMES.pack(0x39, start, 0x41, end)
    else:  # proto3 leaves zero out
        times = (b"\x39" + _FIXED64.pack(start) if start else b"") + (
            b"\x41" + _FIXED64.pack(end) if end else b""
        )
    if error is None:
        return ids + named + times + key_values(attributes)
    attributes = {**attributes, "error.type": error}
    # status (15): message (2), code (3)
    status = (_field(b"\x12", error.encode()) if error else b"") + _ERROR_CODE
    return ids + named + times + key_values(attributes) + _field(b"\x7a", status)


def encode_request(resource: bytes, scope: bytes, spans: Iterable[bytes]) -> bytes:
    """An ``ExportTraceServiceRequest`` of one ``ResourceSpans`` holding one ``ScopeSpans``.

    Args:
        resource: the serialized ``Resource`` message.
        scope: the serialized ``InstrumentationScope`` message.
        spans: serialized ``Span`` messages (from :func:`encode_span`).
    """
    framed = []
    for span in spans:
        n = len(span)
        framed.append(b"\x12" + (bytes((n,)) if n < 0x80 else _varint(n)) + span)
    scope_spans = _field(b"\x0a", scope) + b"".join(framed)
    resource_spans = _field(b"\x0a", resource) + _field(b"\x12", scope_spans)
    return _field(b"\x0a", resource_spans)  # resource_spans (1)
