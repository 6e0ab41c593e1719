"""Authenticating a webhook request against every story listening on its path.

Statuses: 401 when a credential is missing or malformed (signature, timestamp or bearer
token), 403 when it is present but does not verify (wrong signature, wrong token, stale
timestamp), 409 when a timestamped signature was already accepted (a replay), 500 when the
referenced secret is not configured.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import structlog
from starlette.datastructures import Headers

from baton_common.story import Story
from baton_common.triggers import Bearer, Signature
from baton_ingest.secrets import SecretResolver
from baton_ingest.signature import (
    ReplayCache,
    SignatureCheck,
    TokenCheck,
    verify_bearer,
    verify_signature,
)

__all__ = ["AuthFailure", "Authenticated", "WebhookAuth"]

log = structlog.get_logger(__name__)


class AuthFailure(Exception):
    """A refusal: HTTP status, metric reason and a detail the sender can act on."""

    def __init__(
        self, status: int, reason: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail
        self.headers = headers


@dataclass
class Authenticated:
    """Timestamped signatures to remember once the request is accepted."""

    replay_keys: list[tuple[str, float]] = field(default_factory=list)


_SIGNATURE_STATUS: dict[SignatureCheck, tuple[int, str]] = {
    SignatureCheck.MISSING: (401, "signature_missing"),
    SignatureCheck.WRONG_PREFIX: (401, "signature_malformed"),
    SignatureCheck.TIMESTAMP_MISSING: (401, "timestamp_missing"),
    SignatureCheck.TIMESTAMP_INVALID: (401, "timestamp_malformed"),
    SignatureCheck.MISMATCH: (403, "signature_invalid"),
    SignatureCheck.STALE: (403, "timestamp_stale"),
}


def _signature_detail(outcome: SignatureCheck, spec: Signature) -> str:
    return {
        SignatureCheck.MISSING: f"missing signature header {spec.header}",
        SignatureCheck.WRONG_PREFIX: f"signature header {spec.header} must start with "
        f"{spec.prefix!r}",
        SignatureCheck.TIMESTAMP_MISSING: f"missing timestamp header {spec.timestamp_header}",
        SignatureCheck.TIMESTAMP_INVALID: f"timestamp header {spec.timestamp_header} must be "
        "a Unix time in seconds",
        SignatureCheck.MISMATCH: f"signature in {spec.header} does not match",
        SignatureCheck.STALE: f"timestamp in {spec.timestamp_header} is more than "
        f"{int(spec.tolerance.total_seconds())}s from now",
    }.get(outcome, outcome.value)


class WebhookAuth:
    """Checks signatures and bearer tokens; remembers accepted timestamped signatures."""

    def __init__(self, secrets: SecretResolver, replay: ReplayCache | None = None) -> None:
        self._secrets = secrets
        self._replay = replay if replay is not None else ReplayCache()

    def check(
        self, stories: list[Story], headers: Headers, body: bytes, now: datetime
    ) -> Authenticated:
        """Every distinct requirement among ``stories`` must pass (see ADR 0009).

        Raises:
            AuthFailure: the first requirement that failed.
        """
        result = Authenticated()
        signatures: list[Signature] = []
        bearers: dict[str, Bearer] = {}
        for story in stories:
            webhook = story.trigger.webhook
            if webhook is None:
                continue
            # Frozen models compare by value: one check per distinct requirement, without
            # serialising each story's (ADR 0261: that was a quarter of the check).
            if webhook.signature is not None and webhook.signature not in signatures:
                signatures.append(webhook.signature)
            if webhook.bearer is not None:
                bearers.setdefault(webhook.bearer.secret, webhook.bearer)
        for bearer in bearers.values():
            self._check_bearer(bearer, headers)
        for spec in signatures:
            self._check_signature(spec, headers, body, now, result)
        return result

    def remember(self, accepted: Authenticated, now: datetime) -> None:
        """Record an accepted request's timestamped signatures, so a replay is refused."""
        for key, expires_at in accepted.replay_keys:
            self._replay.remember(key, expires_at, now.timestamp())

    def _key(self, name: str) -> str:
        value = self._secrets(name)
        if value is None:
            log.error(
                "webhook secret is not configured",
                secret=name,
                hint="set the secret's BATON_SECRET_<NAME> environment variable",
            )
            raise AuthFailure(500, "secret_missing", "the webhook's secret is not configured")
        return value

    def _check_bearer(self, bearer: Bearer, headers: Headers) -> None:
        outcome = verify_bearer(headers.get("authorization"), token=self._key(bearer.secret))
        if outcome is TokenCheck.MISSING:
            raise AuthFailure(
                401,
                "token_missing",
                "missing Authorization: Bearer <token>",
                {"WWW-Authenticate": "Bearer"},
            )
        if outcome is TokenCheck.MISMATCH:
            raise AuthFailure(403, "token_invalid", "the bearer token is not valid")

    def _check_signature(
        self,
        spec: Signature,
        headers: Headers,
        body: bytes,
        now: datetime,
        result: Authenticated,
    ) -> None:
        provided = headers.get(spec.header)
        timestamp = headers.get(spec.timestamp_header) if spec.timestamp_header else None
        outcome = verify_signature(
            body,
            provided,
            key=self._key(spec.secret).encode(),
            prefix=spec.prefix,
            timestamp=timestamp,
            spec=spec,
            now=now,
        )
        if outcome is not SignatureCheck.VALID:
            status, reason = _SIGNATURE_STATUS[outcome]
            raise AuthFailure(status, reason, _signature_detail(outcome, spec))
        if spec.timestamp_header is None or provided is None or timestamp is None:
            return
        replay_key = f"{spec.secret}:{provided.strip().lower()}"
        if self._replay.seen(replay_key, now.timestamp()):
            raise AuthFailure(
                409, "replayed", "this signed request was already accepted; not accepted twice"
            )
        expires_at = int(timestamp.strip()) + spec.tolerance.total_seconds()
        result.replay_keys.append((replay_key, expires_at))
