"""The per-run hash chain that makes the event log tamper-evident (DESIGN.md rule 8)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

from baton_common.envelope import Envelope, time_text
from baton_common.trusted import assembled

__all__ = [
    "GENESIS",
    "BreakKind",
    "ChainBreak",
    "chain_hash",
    "chained",
    "find_break",
    "plain_json",
    "sealed",
    "verify_chain",
]

GENESIS = "0" * 64

_ATTRIBUTES: Final = tuple(name for name in Envelope.model_fields if name not in ("hash", "data"))
_ENVELOPE_DEFAULTS: Final = {
    name: field.default for name, field in Envelope.model_fields.items() if name != "data"
}


def chain_hash(envelope: Envelope) -> str:
    """SHA-256 over the canonical JSON of the envelope without its own ``hash``.

    ``prevhash`` is inside the hashed content, so each event commits to all before it.
    The canonical JSON is ``json.dumps(envelope.model_dump(mode="json", exclude={"hash"}),
    sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` encoded as UTF-8.
    """
    return hashlib.sha256(_canonical(envelope.__dict__)[0]).hexdigest()


def chained(draft: Envelope) -> tuple[Envelope, bytes | None]:
    """``draft`` with its ``hash`` set to :func:`chain_hash` of it, and ``data``'s canonical
    JSON when the fast path wrote it (None otherwise).

    The envelope is what ``draft.model_copy(update={"hash": chain_hash(draft)})`` gives,
    without the general copy (an envelope has no extra or private attributes). The JSON is
    the record value ``encode_record`` writes for it, so the caller need not dump ``data``
    again.
    """
    return _sealed(draft.__dict__.copy(), draft.model_fields_set | {"hash"})


def sealed(attributes: Mapping[str, object], data: dict[str, Any]) -> tuple[Envelope, bytes | None]:
    """``chained(unchecked_envelope(attributes, data))`` without building the draft: the
    same envelope (values, defaults, fields-set) and JSON, one envelope built instead of
    two. The caller vouches for the attributes as for ``unchecked_envelope``."""
    values = dict(_ENVELOPE_DEFAULTS)
    values.update(attributes)
    values["data"] = data
    given = set(attributes)
    given.update(("data", "hash"))
    return _sealed(values, given)


def _sealed(values: dict[str, Any], fields_set: set[str]) -> tuple[Envelope, bytes | None]:
    """An envelope of ``values`` (every field; taken, not copied) with ``hash`` set."""
    canonical, data_json = _canonical(values)
    values["hash"] = hashlib.sha256(canonical).hexdigest()
    return assembled(Envelope, values, fields_set), data_json


def _canonical(values: dict[str, Any]) -> tuple[bytes, bytes | None]:
    """The canonical JSON bytes :func:`chain_hash` digests for an envelope's ``values``
    (its ``__dict__``), and ``data``'s part of them when orjson wrote them.

    orjson writes the same bytes as the standard library's sorted, compact, non-ASCII
    JSON for strings, integers up to 64 bits, booleans, null, objects with string keys and
    arrays, and for most floats; it writes some floats differently (``1e-05`` as
    ``0.00001``, NaN as ``null``) and refuses larger integers. So ``data`` holding only the
    former goes through orjson, anything else through the reference path.
    ``tests/common/test_chain_hash.py`` checks both give the same bytes.
    """
    data = values["data"]
    if plain_json(data):
        try:
            data_json = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
        except (orjson.JSONEncodeError, TypeError):  # an integer beyond 64 bits, a surrogate
            pass
        else:
            content = {name: values[name] for name in _ATTRIBUTES}
            content["time"] = time_text(values["time"])
            content["data"] = orjson.Fragment(data_json)
            return orjson.dumps(content, option=orjson.OPT_SORT_KEYS), data_json
    envelope = assembled(Envelope, dict(values), set(values))
    content = envelope.model_dump(mode="json", exclude={"hash"})
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return canonical.encode(), None


_PLAIN_LEAVES: Final = frozenset({str, int, bool, type(None)})


def plain_json(data: object) -> bool:
    """Whether ``data`` holds only dicts, lists, strings, integers, booleans, None and
    floats that orjson writes as the standard library does (``float.__repr__``, which
    ``json.dumps`` uses): then orjson's sorted compact output is the standard library's,
    byte for byte (if it accepts the integers), and has no NaN or infinity (orjson writes
    those as ``null``, so they are not such floats)."""
    stack: list[Any] = [data]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
        elif kind is float:
            if orjson.dumps(item) != float.__repr__(item).encode():
                return False
        elif kind not in _PLAIN_LEAVES:
            return False
    return True


def verify_chain(envelopes: list[Envelope]) -> str | None:
    """Check one run's events in log order; return a description of the first break."""
    previous = GENESIS
    for position, envelope in enumerate(envelopes):
        if envelope.prevhash != previous:
            return f"event {position} ({envelope.id}): prevhash does not match the event before"
        if envelope.hash != chain_hash(envelope):
            return f"event {position} ({envelope.id}): content does not match its hash"
        if envelope.seq != position + 1:
            return f"event {position} ({envelope.id}): seq {envelope.seq}, expected {position + 1}"
        previous = envelope.hash
    return None


BreakKind = Literal["edited", "deleted", "reordered", "inserted"]


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first place a run's events stop forming an unbroken chain, and the likely cause."""

    kind: BreakKind
    position: int
    """Index, in the order given, of the event where the break shows."""
    event_id: str
    seq: int | None
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} at position {self.position} (seq {self.seq}, {self.event_id}): " + (
            self.detail
        )


def find_break(envelopes: list[Envelope]) -> ChainBreak | None:
    """Like :func:`verify_chain`, but say what kind of tampering the first break suggests.

    - *edited*: an event's content no longer matches its hash, or an event was re-hashed
      after an edit, so its successor's ``prevhash`` no longer matches it;
    - *deleted*: ``seq`` jumps forward and the missing numbers appear nowhere later;
    - *reordered*: ``seq`` jumps forward but the expected event comes later;
    - *inserted*: an event that does not belong (a repeated or lower ``seq``, or an event the
      chain skips over).

    A deletion at the very end leaves an intact chain: compare the head with another copy
    (the log against the audit store) to catch it.
    """
    previous = GENESIS
    for position, envelope in enumerate(envelopes):
        expected = position + 1
        found = envelope.seq

        def broken(kind: BreakKind, detail: str, at: int = position) -> ChainBreak:
            event = envelopes[at]
            return ChainBreak(kind, at, event.id, event.seq, detail)

        if envelope.hash != chain_hash(envelope):
            return broken("edited", "its content does not match its hash")
        if envelope.prevhash != previous or found != expected:
            later = [e.seq for e in envelopes[position + 1 :]]
            following = envelopes[position + 1] if position + 1 < len(envelopes) else None
            if found is None or found < expected:
                return broken("inserted", f"seq {found} where {expected} was expected")
            if found > expected:
                if expected in later:
                    return broken("reordered", f"seq {found} comes before seq {expected}")
                return broken("deleted", f"seq {expected}..{found - 1} missing")
            if following is not None and following.prevhash == previous:
                return broken("inserted", "the next event links to the one before this")
            if position > 0:
                return broken(
                    "edited",
                    "its hash is not what the next event committed to (re-hashed after an edit)",
                    position - 1,
                )
            return broken("edited", "the first event does not start from the genesis hash")
        previous = envelope.hash
    return None
