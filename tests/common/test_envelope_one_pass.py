"""``decode_record_finite`` walks a record's headers once, building the attributes as
validation gives them while they have the usual shape; it gives what the decoder did
before (two walks: the text of every ``ce_`` header, then ``build_envelope``).

Same envelope (values, fields-set, field order, the time's zone object), same finite flag,
or the same refusal with the same message, over records of the usual shape and near
misses of it.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from baton_common.envelope import (
    Envelope,
    EnvelopeError,
    Header,
    build_envelope,
    decode_record_finite,
    loads_json,
)


def two_walks(value: bytes | None, headers: list[Header]) -> tuple[Envelope, bool]:
    """The decoder before the one-pass walk, verbatim in behaviour."""
    attrs: dict[str, object] = {}
    for key, raw in headers:
        if key.startswith("ce_"):
            try:
                attrs[key[3:]] = raw.decode()
            except UnicodeDecodeError as exc:
                raise EnvelopeError(f"header {key} is not UTF-8") from exc
    if "type" not in attrs:
        raise EnvelopeError("record has no ce_type header: not a CloudEvent in binary mode")
    if value is None:
        raise EnvelopeError("record has no value")
    try:
        data, strict = loads_json(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EnvelopeError(f"value is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise EnvelopeError("value must be a JSON object")
    try:
        if strict:
            return build_envelope(attrs, data), True
        return Envelope.model_validate({**attrs, "data": data}), False
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "record"
        raise EnvelopeError(f"invalid envelope: {where}: {err['msg']}") from exc


GOOD: list[Header] = [
    ("content-type", b"application/json"),
    ("ce_id", b"e-1"),
    ("ce_type", b"baton.run.started.v1"),
    ("ce_source", b"baton/scheduler"),
    ("ce_subject", b"run-1"),
    ("ce_time", b"2026-11-25T08:30:15.250000Z"),
    ("ce_specversion", b"1.0"),
    ("ce_storyid", b"story"),
    ("ce_storyversion", b"3"),
    ("ce_actor", b"scheduler"),
    ("ce_seq", b"12"),
    ("ce_prevhash", b"0" * 64),
    ("ce_hash", b"f" * 64),
    ("traceparent", b"ignored: not an attribute"),
]
REQUIRED = {"ce_id", "ce_type", "ce_source", "ce_time"}
VALUE = b'{"run_id":"run-1","n":[1,2.5,null,true,{"x":"\\u00e9"}]}'


def replaced(name: str, value: bytes | None) -> list[Header]:
    headers = [(k, v) for k, v in GOOD if k != name]
    return headers if value is None else [*headers, (name, value)]


CASES: list[tuple[str, bytes | None, list[Header]]] = [
    ("good", VALUE, GOOD),
    ("required attributes only", VALUE, [h for h in GOOD if h[0] in REQUIRED]),
    ("whole seconds", VALUE, replaced("ce_time", b"2026-11-25T08:30:15Z")),
    ("zero microseconds", VALUE, replaced("ce_time", b"2026-11-25T08:30:15.000000Z")),
    ("duplicate header, last wins", VALUE, [*GOOD, ("ce_actor", b"other")]),
    ("NaN", b'{"a":NaN}', GOOD),
    ("integer beyond 64 bits", b'{"a":123456789012345678901234567890}', GOOD),
    ("lone surrogate", b'{"a":"\\ud800"}', GOOD),
    ("not JSON", b"{nope", GOOD),
    ("invalid UTF-8 value", b'{"a":"\xff"}', GOOD),
    ("array", b"[1]", GOOD),
    ("empty", b"", GOOD),
    ("no value", None, GOOD),
    ("no type", VALUE, replaced("ce_type", None)),
    ("no id", VALUE, replaced("ce_id", None)),
    ("no time", VALUE, replaced("ce_time", None)),
    ("bad time", VALUE, replaced("ce_time", b"yesterday")),
    ("day out of range", VALUE, replaced("ce_time", b"2026-02-30T08:30:15Z")),
    ("offset time", VALUE, replaced("ce_time", b"2026-11-25T10:30:15+02:00")),
    ("naive time", VALUE, replaced("ce_time", b"2026-11-25T10:30:15")),
    ("bad seq", VALUE, replaced("ce_seq", b"seven")),
    ("padded seq", VALUE, replaced("ce_seq", b" 12 ")),
    ("19-digit seq", VALUE, replaced("ce_seq", b"1234567890123456789")),
    ("non-ASCII digits", VALUE, replaced("ce_seq", "\u0663".encode())),
    ("fractional version", VALUE, replaced("ce_storyversion", b"1.5")),
    ("header not UTF-8", VALUE, replaced("ce_actor", b"\xff")),
    ("unknown attribute", VALUE, replaced("ce_colour", b"blue")),
    ("data as a header", VALUE, replaced("ce_data", b"{}")),
]


def outcome(decode: object, value: bytes | None, headers: list[Header]) -> object:
    assert callable(decode)
    try:
        envelope, finite = decode(value, headers)
    except EnvelopeError as exc:
        return ("refused", str(exc))
    assert isinstance(envelope, Envelope)
    return (
        envelope,
        envelope.model_fields_set,
        list(envelope.__dict__),
        type(envelope.time.tzinfo),
        finite,
    )


@pytest.mark.parametrize(("value", "headers"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_decodes_as_two_walks(value: bytes | None, headers: list[Header]) -> None:
    assert outcome(decode_record_finite, value, headers) == outcome(two_walks, value, headers)


TEXT = st.one_of(
    st.text(max_size=8),
    st.from_regex(r"\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,7})?(Z|[+-]\d\d:\d\d)?\Z"),
    st.from_regex(r"\A[ +-]?[0-9]{0,20}\Z"),
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            ["ce_id", "ce_type", "ce_source", "ce_time", "ce_seq", "ce_storyversion",
             "ce_subject", "ce_actor", "ce_colour", "content-type"]
        ),
        TEXT,
    ),
    st.sampled_from([VALUE, b'{"a":1e999}', b"[]", None]),
)  # fmt: skip
def test_generated_headers_decode_as_two_walks(
    attributes: dict[str, str], value: bytes | None
) -> None:
    headers: list[Header] = [(k, v.encode("utf-8", "surrogatepass")) for k, v in attributes.items()]
    assert outcome(decode_record_finite, value, headers) == outcome(two_walks, value, headers)
