"""The envelope codec's fast paths (orjson, attributes-only validation, the one walk over
a record's headers) against the reference behaviour they replace: plain ``json`` and
``Envelope.model_validate``.

Every record either decodes to the same envelope, or is refused with the same reason.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import JsonValue, TypeAdapter, ValidationError

from baton_common.commands import StartRun
from baton_common.envelope import (
    Envelope,
    EnvelopeError,
    Header,
    build_envelope,
    decode_record,
    decode_record_finite,
    encode_record,
    loads_json,
    time_text,
)
from baton_common.kafka import to_envelope

T = datetime(2026, 11, 25, 8, 30, 15, 250_000, tzinfo=UTC)

GOOD: list[Header] = [
    ("content-type", b"application/json"),
    ("ce_id", b"e1"),
    ("ce_type", b"baton.run.started.v1"),
    ("ce_source", b"baton/scheduler"),
    ("ce_subject", b"run-1"),
    ("ce_time", b"2026-11-25T08:30:15.25Z"),
    ("ce_specversion", b"1.0"),
    ("ce_storyversion", b"3"),
    ("ce_seq", b"7"),
    ("ce_actor", "ren\u00e9".encode()),
]


def reference_decode(value: bytes | None, headers: list[Header]) -> Envelope:
    """The decoder before the fast path, verbatim in behaviour."""
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
        data = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EnvelopeError(f"value is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise EnvelopeError("value must be a JSON object")
    try:
        return Envelope.model_validate({**attrs, "data": data})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "record"
        raise EnvelopeError(f"invalid envelope: {where}: {err['msg']}") from exc


def with_header(name: str, value: bytes | None, base: list[Header] | None = None) -> list[Header]:
    headers = [(k, v) for k, v in (GOOD if base is None else base) if k != name]
    return headers if value is None else [*headers, (name, value)]


VALUE = b'{"run_id":"run-1","n":[1,2.5,null,true,{"x":"\\u00e9"}]}'
REQUIRED = {"ce_id", "ce_type", "ce_source", "ce_time"}
# the usual shape (as the services write records): the one walk over the headers builds
# the attributes itself, without validation
USUAL: list[Header] = [
    *with_header("ce_time", b"2026-11-25T08:30:15.250000Z"),
    ("ce_storyid", b"story"),
    ("ce_prevhash", b"0" * 64),
    ("ce_hash", b"f" * 64),
    ("traceparent", b"ignored: not an attribute"),
]


def usual_with(name: str, value: bytes | None) -> list[Header]:
    return with_header(name, value, USUAL)


CASES: list[tuple[str, bytes | None, list[Header]]] = [
    ("good", VALUE, GOOD),
    ("non-ascii value", '{"a":"\u00e9\u4e2d\U0001f600"}'.encode(), GOOD),
    ("NaN, which only the standard library reads", b'{"a":NaN,"b":Infinity}', GOOD),
    ("lone surrogate escape", b'{"a":"\\ud800"}', GOOD),
    ("integer beyond 64 bits", b'{"a":123456789012345678901234567890}', GOOD),
    ("integer just beyond 64 bits", b'{"a":[18446744073709551616]}', GOOD),
    ("negative integer beyond 64 bits", b'{"a":{"b":-99999999999999999999}}', GOOD),
    ("19-digit integer within 64 bits", b'{"a":1234567890123456789,"b":18}', GOOD),
    ("long run of digits in a string", b'{"a":"x12345678901234567890y"}', GOOD),
    ("UTF-8 byte order mark", b'\xef\xbb\xbf{"a":1}', GOOD),
    ("UTF-16 value", '{"a":1}'.encode("utf-16"), GOOD),
    ("duplicate keys", b'{"a":1,"a":2}', GOOD),
    ("not JSON", b"{nope", GOOD),
    ("invalid UTF-8", b'{"a":"\xff"}', GOOD),
    ("array", b"[1]", GOOD),
    ("empty", b"", GOOD),
    ("no value", None, GOOD),
    ("no type", VALUE, with_header("ce_type", None)),
    ("no id", VALUE, with_header("ce_id", None)),
    ("no source", VALUE, with_header("ce_source", None)),
    ("no time", VALUE, with_header("ce_time", None)),
    ("bad time", VALUE, with_header("ce_time", b"yesterday")),
    ("unix time", VALUE, with_header("ce_time", b"1700000000")),
    ("offset time", VALUE, with_header("ce_time", b"2026-11-25T10:30:15+02:00")),
    ("naive time", VALUE, with_header("ce_time", b"2026-11-25T10:30:15")),
    ("bad seq", VALUE, with_header("ce_seq", b"seven")),
    ("fractional version", VALUE, with_header("ce_storyversion", b"1.5")),
    ("padded seq", VALUE, with_header("ce_seq", b" 12 ")),
    ("header not UTF-8", VALUE, with_header("ce_actor", b"\xff")),
    ("unknown attribute", VALUE, with_header("ce_colour", b"blue")),
    # the usual shape and near misses of it, for the one walk over the headers
    ("usual", VALUE, USUAL),
    ("usual, required attributes only", VALUE, [h for h in USUAL if h[0] in REQUIRED]),
    ("usual, whole seconds", VALUE, usual_with("ce_time", b"2026-11-25T08:30:15Z")),
    ("usual, zero microseconds", VALUE, usual_with("ce_time", b"2026-11-25T08:30:15.000000Z")),
    ("usual, duplicate header, last wins", VALUE, [*USUAL, ("ce_actor", b"other")]),
    ("usual, an unusual duplicate last", VALUE, [*USUAL, ("ce_seq", b"x")]),
    ("usual, day out of range", VALUE, usual_with("ce_time", b"2026-02-30T08:30:15Z")),
    ("usual, offset time", VALUE, usual_with("ce_time", b"2026-11-25T10:30:15+02:00")),
    ("usual, bad seq", VALUE, usual_with("ce_seq", b"seven")),
    ("usual, 19-digit seq", VALUE, usual_with("ce_seq", b"1234567890123456789")),
    ("usual, non-ASCII digits", VALUE, usual_with("ce_seq", "\u0663".encode())),
    ("usual, fractional version", VALUE, usual_with("ce_storyversion", b"1.5")),
    ("usual, header not UTF-8", VALUE, usual_with("ce_actor", b"\xff")),
    ("usual, unknown attribute", VALUE, usual_with("ce_colour", b"blue")),
    ("usual, data as a header", VALUE, usual_with("ce_data", b"{}")),
    ("usual, no id", VALUE, usual_with("ce_id", None)),
    ("usual, NaN", b'{"a":NaN}', USUAL),
    ("usual, not JSON", b"{nope", USUAL),
    ("usual, no value", None, USUAL),
]


@pytest.mark.parametrize(("value", "headers"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_decode_matches_the_reference(value: bytes | None, headers: list[Header]) -> None:
    assert_decodes_as_the_reference(value, headers)


def assert_decodes_as_the_reference(value: bytes | None, headers: list[Header]) -> None:
    """Same envelope (values, fields-set, field order, the time's zone object) and finite
    flag, or the same refusal with the same reason."""
    reason: str | None = None
    try:
        expected = reference_decode(value, headers)
    except EnvelopeError as exc:
        reason = str(exc)
    if reason is not None:
        with pytest.raises(EnvelopeError) as refused:
            decode_record_finite(value, headers)
        assert str(refused.value) == reason
        return
    assert value is not None
    got, finite = decode_record_finite(value, headers)
    assert got == expected
    assert got.model_fields_set == expected.model_fields_set
    assert list(got.__dict__) == list(expected.__dict__)  # field order
    assert json.dumps(got.model_dump(mode="json"), sort_keys=True) == json.dumps(
        expected.model_dump(mode="json"), sort_keys=True
    )
    assert type(got.time.tzinfo) is type(expected.time.tzinfo)
    assert finite == loads_json(value)[1]
    assert decode_record(value, headers) == got


HEADER_TEXT = st.one_of(
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
        HEADER_TEXT,
    ),
    st.sampled_from([VALUE, b'{"a":1e999}', b"[]", None]),
)  # fmt: skip
def test_generated_headers_decode_as_the_reference(
    attributes: dict[str, str], value: bytes | None
) -> None:
    headers: list[Header] = [(k, v.encode("utf-8", "surrogatepass")) for k, v in attributes.items()]
    assert_decodes_as_the_reference(value, headers)


def test_the_reference_refuses_some_cases() -> None:
    """The corpus exercises refusals, not only the happy path."""
    refused = 0
    for _, value, headers in CASES:
        try:
            reference_decode(value, headers)
        except EnvelopeError:
            refused += 1
    assert refused >= 12


DATA: list[dict[str, JsonValue]] = [
    {"a": "\u00e9\u4e2d\U0001f600", "b": [1, 2.5, None, True], "c": {"z": 1, "a": 2}},
    {"big": 123456789012345678901234567890, "neg": -(2**70)},
    {"nan": math.nan, "inf": math.inf, "none": None},
    {"surrogate": "\ud800"},
    {"float": 1e16, "tiny": 5e-324, "exact": 0.1},
]


@pytest.mark.parametrize(
    "data", DATA, ids=["unicode", "bigint", "nonfinite", "surrogate", "floats"]
)
def test_encode_round_trips_what_the_standard_library_did(data: dict[str, JsonValue]) -> None:
    envelope = Envelope(id="e", type="t", source="s", time=T, seq=1, data=data)
    value, headers = encode_record(envelope)
    old = json.dumps(data, separators=(",", ":"), sort_keys=True)
    # Same document (compared through the standard library, which reads NaN back).
    assert json.dumps(json.loads(value), sort_keys=True) == json.dumps(
        json.loads(old), sort_keys=True
    )
    assert dict(headers)["ce_time"] == b"2026-11-25T08:30:15.250000Z"
    decoded = decode_record(value, headers)
    assert json.dumps(decoded.data, sort_keys=True) == json.dumps(data, sort_keys=True)


def test_encode_headers_match_the_model_dump() -> None:
    envelope = Envelope(
        id="e", type="t", source="s", subject="r", time=T, storyversion=2, seq=0, actor="x"
    )
    _, headers = encode_record(envelope)
    dumped = envelope.model_dump(mode="json", exclude={"data", "datacontenttype"})
    expected = [("content-type", b"application/json")] + [
        (f"ce_{k}", str(v).encode()) for k, v in dumped.items() if v is not None
    ]
    assert headers == expected


def test_to_envelope_validates_attributes_like_the_model() -> None:
    start = StartRun(run_id="r", story_id="s", story_version=1, trigger={"x": [1, None]})
    built = to_envelope(start, id="c1", source="baton/ingest", time=T, subject="r", seq="4")
    reference = Envelope.model_validate(
        {"id": "c1", "type": start.type, "source": "baton/ingest", "subject": "r", "time": T,
         "seq": "4", "data": start.model_dump(mode="json")}
    )  # fmt: skip
    assert built == reference
    assert built.seq == 4
    with pytest.raises(ValidationError) as fast:
        to_envelope(start, id="c1", source="s", time="yesterday")  # type: ignore[arg-type]
    with pytest.raises(ValidationError) as slow:
        Envelope.model_validate({"id": "c1", "type": "t", "source": "s", "time": "yesterday"})
    assert fast.value.errors()[0]["loc"] == slow.value.errors()[0]["loc"] == ("time",)
    assert fast.value.errors()[0]["msg"] == slow.value.errors()[0]["msg"]
    assert fast.value.title == slow.value.title == "Envelope"


def test_build_envelope_is_a_frozen_envelope() -> None:
    envelope = build_envelope({"id": "e", "type": "t", "source": "s", "time": T}, {"a": 1})
    assert envelope == Envelope(id="e", type="t", source="s", time=T, data={"a": 1})
    with pytest.raises(ValidationError):
        envelope.id = "other"  # type: ignore[misc]
    assert envelope.model_copy(update={"hash": "h"}).hash == "h"


TIMES = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 1), timezones=st.just(UTC)).map(  # noqa: DTZ001
        lambda t: t.isoformat().replace("+00:00", "Z")
    ),
    st.from_regex(r"\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,7})?(Z|[+-]\d\d:\d\d)?\Z"),
    st.text(max_size=30),
)
INTEGER_TEXT = st.one_of(
    st.integers(min_value=0, max_value=10**20).map(str),
    st.from_regex(r"\A[ +-]?[0-9]{0,22}[ _]?[0-9]{0,3}\Z"),
    st.text(max_size=5),
)


@settings(max_examples=400, deadline=None)
@given(
    st.fixed_dictionaries(
        {"id": st.text(max_size=5), "type": st.text(max_size=5), "source": st.just("s")},
        optional={
            "time": TIMES,
            "subject": st.text(max_size=5),
            "storyversion": INTEGER_TEXT,
            "seq": INTEGER_TEXT,
            "actor": st.text(max_size=5),
            "traceparent": st.text(max_size=5),
            "colour": st.just("blue"),
        },
    )
)
def test_header_attributes_build_what_validation_builds(attributes: dict[str, str]) -> None:
    """The usual attributes' quick road and validation give the same envelope, or both
    refuse (generated near misses: other time formats and zones, signs, padding)."""
    data: dict[str, JsonValue] = {"a": 1}
    refused = reason_of(lambda: Envelope.model_validate({**attributes, "data": data}))
    if refused is not None:
        assert reason_of(lambda: build_envelope(attributes, data)) == refused
        return
    expected = Envelope.model_validate({**attributes, "data": data})
    got = build_envelope(attributes, data)
    assert got == expected
    assert got.model_fields_set == expected.model_fields_set
    assert type(got.time.tzinfo) is type(expected.time.tzinfo)
    assert got.model_dump(mode="json") == expected.model_dump(mode="json")


def reason_of(build: Callable[[], Envelope]) -> list[tuple[object, ...]] | None:
    """Each error's location, type and message if ``build`` is refused, else None."""
    try:
        build()
    except ValidationError as exc:
        return [(e["loc"], e["type"], e["msg"]) for e in exc.errors()]
    return None


_USUAL_TIME_HEADERS: list[tuple[str, bytes]] = [
    ("ce_id", b"1"),
    ("ce_type", b"X"),
    ("ce_source", b"s"),
    ("ce_time", b"2026-11-25T08:30:15.000100Z"),
]


@pytest.mark.parametrize(
    "time",
    [
        T,
        T.replace(microsecond=0),
        T.replace(microsecond=7),
        datetime(1, 1, 1, tzinfo=UTC),
        TypeAdapter(datetime).validate_python("2026-11-25T08:30:15.250000Z"),  # pydantic's UTC
        TypeAdapter(datetime).validate_python("2026-11-25T08:30:15Z"),
        TypeAdapter(datetime).validate_python("0001-01-01T00:00:00.000007Z"),
        decode_record(b"{}", _USUAL_TIME_HEADERS).time,  # the one-walk decoder's zone
        datetime(2026, 11, 25, 10, 30, 15, tzinfo=timezone(timedelta(hours=2))),
    ],
    ids=[
        "utc",
        "whole-seconds",
        "microseconds",
        "year-1",
        "pydantic-utc",
        "pydantic-utc-whole-seconds",
        "pydantic-utc-year-1",
        "decoded",
        "offset",
    ],
)
def test_time_text_is_pydantics_json(time: datetime) -> None:
    assert time_text(time) == TypeAdapter(datetime).dump_python(time, mode="json")
