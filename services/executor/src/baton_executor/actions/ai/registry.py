"""The configured model providers, by name, with their API keys from the secret store."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from baton_executor.actions.ai.providers import ChatProvider, ProviderSettings, build_provider
from baton_executor.errors import PermanentError
from baton_executor.guard import OutboundGuard
from baton_executor.secrets import Redactor, SecretStore

__all__ = ["Providers"]


class Providers:
    """Builds the provider a step asks for (or the default one) on demand.

    Args:
        settings: provider name → settings.
        default: the provider of steps that name none.
        secrets: where API keys are looked up (``api_key_secret``).
    """

    def __init__(
        self,
        settings: Mapping[str, ProviderSettings],
        *,
        default: str,
        client: httpx.AsyncClient,
        guard: OutboundGuard | None,
        secrets: SecretStore,
    ) -> None:
        self._settings = dict(settings)
        self._default = default
        self._client = client
        self._guard = guard
        self._secrets = secrets

    def get(self, name: str | None) -> tuple[ChatProvider, Redactor]:
        """The provider called ``name`` (None: the default), and a redactor of its key.

        Raises:
            PermanentError: ``UnknownProvider`` if no such provider is configured.
        """
        chosen = name or self._default
        settings = self._settings.get(chosen)
        if settings is None:
            known = ", ".join(sorted(self._settings)) or "none"
            raise PermanentError(
                f"no AI provider {chosen!r} is configured on this executor (configured: {known})",
                error_type="UnknownProvider",
            )
        key = self._secrets.get(settings.api_key_secret) if settings.api_key_secret else None
        provider = build_provider(chosen, settings, self._client, self._guard, key)
        return provider, Redactor([key] if key else [])
