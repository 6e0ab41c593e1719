"""Baton's uuid5 text is the standard library's uuid5, character for character."""

from __future__ import annotations

import random
import uuid

import pytest

from baton_common import ids


def test_uuid5_text_is_uuid5() -> None:
    rng = random.Random(5)
    names = ["", "run:s:k", "run:story:ü☃", "run:a:" + "k" * 500]
    names += [
        "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randrange(40)))
        for _ in range(2000)
    ]
    namespace = uuid.UUID("6f1e4c1e-2b7a-4d2e-9a59-1c3c0b7a7a10")
    for name in names:
        assert ids.uuid5_text(name) == str(uuid.uuid5(namespace, name))
    assert ids.run_id_for("s", "k") == str(uuid.uuid5(namespace, "run:s:k"))


def test_a_lone_surrogate_is_refused_as_by_uuid5() -> None:
    with pytest.raises(UnicodeEncodeError):
        ids.uuid5_text("\ud800")


def test_uuid4_text_is_a_random_version_4_uuid_in_uuids_own_text() -> None:
    texts = [ids.uuid4_text() for _ in range(2000)]
    for text in texts:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
    assert len(set(texts)) == len(texts)
    # every random bit varies: no position outside the version and variant bits is fixed
    values = [uuid.UUID(t).int for t in texts]
    fixed = (0xF000 << 64) | (0xC000 << 48)
    varying = 0
    for value in values:
        varying |= value ^ values[0]
    assert varying | fixed == (1 << 128) - 1
