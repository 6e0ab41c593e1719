"""The per-run hash chain that makes the event log tamper-evident (DESIGN.md rule 8)."""

from __future__ import annotations

import hashlib
import json

from baton_common.envelope import Envelope

__all__ = ["GENESIS", "chain_hash", "verify_chain"]

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
