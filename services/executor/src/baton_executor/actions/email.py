"""The ``notify.email`` action: one message over SMTP.

Input: ``to`` (one address or a list), optional ``cc``, ``subject``, ``text`` and optional
``html`` (sent as the alternative part). The server, sender and credentials are settings
of the executor, never of the story. The ``Message-ID`` is derived from the attempt id,
so a repeated attempt sends a message a mail system can recognise as the same one.

Output: ``{"message_id": "<…>", "accepted": [...]}``. Temporary SMTP failures (4xx codes,
connection errors, timeouts) are retryable; refused recipients, 5xx codes and failed
authentication are permanent.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    field_validator,
)

from baton_common.records import StepTask
from baton_executor.actions.http import describe
from baton_executor.errors import PermanentError, RetryableError
from baton_executor.secrets import Redactor, SecretStore

__all__ = ["EmailAction", "EmailInput", "SmtpSettings"]


class SmtpSettings(BaseModel):
    """Where mail goes (``BATON_EXECUTOR_SMTP__*``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "localhost"
    port: int = 587
    starttls: bool = True
    use_tls: bool = Field(False, description="implicit TLS (port 465)")
    username: str | None = None
    password_secret: str | None = Field(None, description="name of the secret with the password")
    sender: str = "baton@localhost"
    timeout_seconds: float = Field(30.0, gt=0)


# One address without a display name; header injection needs CR/LF, ',' or '<', all refused.
Address = Annotated[
    str, Field(pattern=r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+$", max_length=254)
]


class EmailInput(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    to: Annotated[list[Address], Field(min_length=1, max_length=100)]
    cc: list[Address] = Field(default_factory=list)
    subject: Annotated[str, Field(min_length=1, max_length=998)]
    text: str
    html: str | None = None

    @field_validator("to", "cc", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("subject")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if "\n" in value or "\r" in value:
            raise ValueError("must be one line")
        return value


class EmailAction:
    """Sends with ``smtplib`` in a worker thread (the event loop never blocks)."""

    def __init__(self, settings: SmtpSettings, secrets: SecretStore) -> None:
        self._settings = settings
        self._secrets = secrets

    async def __call__(self, task: StepTask) -> JsonValue:
        try:
            spec = EmailInput.model_validate(task.input)
        except ValidationError as exc:
            raise PermanentError(
                f"invalid input: {describe(exc)}", error_type="InvalidInput"
            ) from None
        password = (
            self._secrets.get(self._settings.password_secret)
            if self._settings.password_secret
            else None
        )
        redactor = Redactor([password] if password else [])
        message = EmailMessage()
        message["From"] = self._settings.sender
        message["To"] = ", ".join(spec.to)
        if spec.cc:
            message["Cc"] = ", ".join(spec.cc)
        message["Subject"] = spec.subject
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = f"<{task.attempt_id}@baton>"
        message.set_content(spec.text)
        if spec.html is not None:
            message.add_alternative(spec.html, subtype="html")
        try:
            refused = await asyncio.to_thread(self._send, message, password)
        except (RetryableError, PermanentError) as exc:
            exc.message = redactor.text(exc.message)
            raise
        accepted = [a for a in [*spec.to, *spec.cc] if a not in refused]
        return {"message_id": message["Message-ID"], "accepted": list(accepted)}

    def _send(self, message: EmailMessage, password: str | None) -> dict[str, tuple[int, bytes]]:
        s = self._settings
        where = f"SMTP {s.host}:{s.port}"
        try:
            smtp: smtplib.SMTP = (
                smtplib.SMTP_SSL(
                    s.host, s.port, timeout=s.timeout_seconds, context=ssl.create_default_context()
                )
                if s.use_tls
                else smtplib.SMTP(s.host, s.port, timeout=s.timeout_seconds)
            )
            with smtp:
                if s.starttls and not s.use_tls:
                    smtp.starttls(context=ssl.create_default_context())
                if s.username is not None and password is not None:
                    smtp.login(s.username, password)
                return smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise PermanentError(
                f"{where} refused every recipient: {', '.join(exc.recipients)}",
                error_type="SmtpRecipientsRefused",
            ) from None
        except smtplib.SMTPAuthenticationError as exc:
            raise PermanentError(
                f"{where}: authentication failed ({exc.smtp_code})", error_type="SmtpAuth"
            ) from None
        except smtplib.SMTPResponseException as exc:
            cls = RetryableError if 400 <= exc.smtp_code < 500 else PermanentError
            detail = (
                exc.smtp_error.decode(errors="replace")
                if isinstance(exc.smtp_error, bytes)
                else str(exc.smtp_error)
            )
            raise cls(
                f"{where} answered {exc.smtp_code}: {detail}", error_type=f"smtp_{exc.smtp_code}"
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise RetryableError(
                f"{where}: {type(exc).__name__}: {exc}", error_type=type(exc).__name__
            ) from None
