"""The per-run hash chain that makes the event log tamper-evident (DESIGN.md rule 8)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Literal

from baton_common.envelope import Envelope

__all__ = ["GENESIS", "BreakKind", "ChainBreak", "chain_hash", "find_break", "verify_chain"]

GENESIS = "0" * 64


def chain_hash(envelope: Envelope) -> str:
    """SHA-256 over the canonical JSON of the envelope without its own ``hash``.

    ``prevhash`` is inside the hashed content, so each event commits to all before it.
    """
    content = envelope.model_dump(mode="json", exclude={"hash"})
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


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
