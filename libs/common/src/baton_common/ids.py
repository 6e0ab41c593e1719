"""Deterministic identifiers, so that replays and retries land on the same ids."""

from __future__ import annotations

import hashlib
import os
import uuid
from itertools import count
from typing import Final

from aiokafka.partitioner import murmur2

__all__ = [
    "attempt_id",
    "child_id",
    "fire_command_id",
    "gate_id",
    "generation_run_id",
    "partition_for",
    "run_id_for",
    "timer_id",
    "uuid4_text",
    "uuid5_text",
]

_NAMESPACE: Final = uuid.UUID("6f1e4c1e-2b7a-4d2e-9a59-1c3c0b7a7a10")
_NAMESPACE_BYTES: Final = _NAMESPACE.bytes


def uuid5_text(name: str) -> str:
    """``str(uuid.uuid5(<Baton's namespace>, name))``, without building a ``UUID`` object.

    The router computes one per ingested event, the scheduler several per command;
    ``UUID.__init__`` and ``__str__`` are most of uuid5's cost. Same SHA-1, same version
    and variant bits, same text: the version nibble is ``5`` and the variant nibble's top
    bits ``10``, set on the hex text directly.
    """
    text = hashlib.sha1(_NAMESPACE_BYTES + name.encode(), usedforsecurity=False).hexdigest()
    return f"{text[:8]}-{text[8:12]}-5{text[13:16]}-{_VARIANT[text[16]]}{text[17:20]}-{text[20:32]}"


# the hex digit with its top two bits set to 10 (RFC 4122 variant), by hex digit
_VARIANT: Final = {f"{n:x}": f"{(n & 0x3) | 0x8:x}" for n in range(16)}


def uuid4_text() -> str:
    """``str(uuid.uuid4())``, without building a ``UUID`` object.

    The router gives every command it writes a random id; the same 16 random bytes,
    version and variant bits as ``uuid.uuid4``, and the same text, set on the hex text
    directly as :func:`uuid5_text` does (half the cost of the integer arithmetic).
    """
    text = os.urandom(16).hex()
    return f"{text[:8]}-{text[8:12]}-4{text[13:16]}-{_VARIANT[text[16]]}{text[17:20]}-{text[20:]}"


def run_id_for(story_id: str, key: str) -> str:
    """The run id of a story for a dedup key or intake id (DESIGN.md rule 6)."""
    return uuid5_text(f"run:{story_id}:{key}")


def attempt_id(run_id: str, step: str, attempt: int) -> str:
    """The stable id of one step attempt: the idempotency key handed to outside systems."""
    return uuid5_text(f"attempt:{run_id}:{step}:{attempt}")


def gate_id(run_id: str, step: str) -> str:
    """The id of a run's approval gate at ``step``."""
    return str(uuid.uuid5(_NAMESPACE, f"gate:{run_id}:{step}"))


def child_id(parent_id: str, index: int) -> str:
    """The id of the ``index``-th record caused by ``parent_id`` (events of a command)."""
    return uuid5_text(f"child:{parent_id}:{index}")


def timer_id(run_id: str, kind: str, step: str | None, attempt: int | None) -> str:
    """The id of a run's timer: one per run, kind, step and attempt, so it fires once."""
    return str(uuid.uuid5(_NAMESPACE, f"timer:{run_id}:{kind}:{step or ''}:{attempt or 0}"))


def fire_command_id(timer: str) -> str:
    """The envelope id of the ``FireTimer`` command for ``timer`` (the same on every resend)."""
    return str(uuid.uuid5(_NAMESPACE, f"fire:{timer}"))


def partition_for(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key`` (murmur2, as in Java)."""
    hashed: int = murmur2(key.encode())
    return (hashed & 0x7FFFFFFF) % partitions


def generation_run_id(slot: str, generation: int, partitions: int) -> str:
    """The run id of the ``generation``-th run of a dedup slot (ADR 0100).

    The first candidate id that Kafka's default partitioner puts on the slot's own
    partition, so the new run's commands, events and tasks stay where the slot's
    state lives. About ``partitions`` candidates are tried; the result is deterministic.
    """
    if generation == 0:
        return slot
    target = partition_for(slot, partitions)
    for n in count():
        candidate = str(uuid.uuid5(_NAMESPACE, f"generation:{slot}:{generation}:{n}"))
        if partition_for(candidate, partitions) == target:
            return candidate
    raise AssertionError("unreachable")  # pragma: no cover
