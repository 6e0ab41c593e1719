"""Webhook signing keys, referenced by name in stories and resolved at the edge.

A story names a secret (``signature: {secret: EDR_WEBHOOK_SECRET}``); the ingest
service resolves it from ``BATON_SECRET_<NAME>``. The value is never logged.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Final, Protocol

__all__ = ["EnvironmentSecrets", "SecretResolver", "secret_env_var"]

_NOT_ALNUM: Final = re.compile(r"[^A-Z0-9]")


class SecretResolver(Protocol):
    """Resolves a secret by name; None when no such secret is configured."""

    def __call__(self, name: str) -> str | None: ...


@functools.lru_cache(maxsize=1024)  # asked per webhook, for the few names stories use
def secret_env_var(name: str) -> str:
    """The environment variable holding secret ``name``: ``edr-key`` → ``BATON_SECRET_EDR_KEY``."""
    return "BATON_SECRET_" + _NOT_ALNUM.sub("_", name.upper())


class EnvironmentSecrets:
    """Secrets from an environment mapping (``os.environ``, passed in by ``main``)."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def __call__(self, name: str) -> str | None:
        return self._environ.get(secret_env_var(name)) or None
