"""A transaction's ``AddOffsetsToTxn`` refused ``CONCURRENT_TRANSACTIONS`` is asked again
after 2 ms, not after the producer's retry backoff (ADRs 0150, 0180).

The refusal means the coordinator is still writing the previous commit's markers, which
takes a few milliseconds on a local broker; about one transaction in ten begins in that
window (ADR 0140). Asked again after 2 ms, every refused transaction of a probe was
accepted at the second asking (ADR 0180). aiokafka retries every refused transactional
request after ``retry_backoff_ms`` (20 ms here, ADR 0120), which a short batch then waits
out before it can send its records. Every other error, and every other request, keeps that backoff:
only this one refusal, which clears by itself, is retried sooner. aiokafka does the same
for ``AddPartitionsToTxn`` (KAFKA-5477), at 20 ms.
"""

from __future__ import annotations

from typing import Any, Final

from aiokafka.errors import ConcurrentTransactions, for_code
from aiokafka.producer import sender

__all__ = ["CONCURRENT_RETRY_SECONDS", "install"]

CONCURRENT_RETRY_SECONDS: Final = 0.002


class AddOffsetsRetriedSooner(sender.AddOffsetsToTxnHandler):  # type: ignore[misc]
    def handle_response(self, resp: Any) -> float | None:
        backoff: float | None = super().handle_response(resp)
        if backoff is not None and for_code(resp.error_code) is ConcurrentTransactions:
            return min(backoff, CONCURRENT_RETRY_SECONDS)
        return backoff


def install() -> None:
    """Make every transactional producer of this process use the handler above."""
    sender.AddOffsetsToTxnHandler = AddOffsetsRetriedSooner
