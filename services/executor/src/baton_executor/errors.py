"""Action errors: whether a retry may help is the error's type, never its message."""

from __future__ import annotations

from typing import ClassVar

from baton_common.commands import ErrorKind

__all__ = ["ActionError", "PermanentError", "RetryableError"]


class ActionError(Exception):
    """A step attempt failed; ``kind``, ``error_type`` and ``message`` go into ``FailStep``.

    Args:
        message: what happened, for people; never parsed.
        error_type: a short, stable name of the failure (``ConnectTimeout``, ``http_503``);
            defaults to the class name.
        http_status: the HTTP status that caused it, if any.
        retry_after_seconds: how long the other side asked us to wait (``Retry-After``).
    """

    kind: ClassVar[ErrorKind]

    def __init__(
        self,
        message: str,
        *,
        error_type: str | None = None,
        http_status: int | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type or type(self).__name__
        self.http_status = http_status
        self.retry_after_seconds = retry_after_seconds


class RetryableError(ActionError):
    """The same attempt might succeed later (timeouts, 5xx, throttling, lost connections)."""

    kind: ClassVar[ErrorKind] = "retryable"


class PermanentError(ActionError):
    """Repeating the attempt cannot help (invalid input, 4xx, unknown action)."""

    kind: ClassVar[ErrorKind] = "permanent"
