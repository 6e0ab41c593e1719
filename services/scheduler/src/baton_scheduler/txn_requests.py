"""A transaction's coordinator requests start on the next turn of the event loop and
follow each other from one task (ADR 0160).

aiokafka's sender routine starts one task per transactional request: new work
(offsets to add, partitions to add, a commit) sets a future the routine waits on,
the routine wakes, starts a task, and that task sends the request, three turns of the
event loop after the work appeared; each request that follows another waits for the
finished task to wake the routine again. The scheduler's loop turns only every few
milliseconds while it decides a batch (``engine.YIELD_SECONDS``), so the two offsets
requests a batch's transaction begins with went out ~12 ms and ~22 ms into a 24 ms
decide step (ADR 0160's timeline), and the batch then waited for them.

Here the work starts a *chain* task at once, which sends the transaction's pending
requests back to back: the consumer group (``AddOffsetsToTxn``), then its offsets
(``TxnOffsetCommit``), then new partitions (``AddPartitionsToTxn``), then the end of
the transaction (``EndTxn``), each with aiokafka's own handler (its retries, errors and
state changes unchanged). The sender routine is handed the running chain as its
transactional task, so it still runs one transactional request at a time, and it still
wakes when the chain ends: a chain ends after adding partitions, because only the
routine sends the records that were waiting for them. Offsets go before partitions (the
original order is the reverse): the engine registers its offsets before it produces
anything, and order inside a transaction does not matter to what it commits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from aiokafka.producer import sender as aiokafka_sender
from aiokafka.producer import transaction_manager

__all__ = ["install", "next_request"]

Request = Callable[[], Coroutine[Any, Any, Any]]
_CHAIN = "_baton_chain"


def next_request(sender: Any) -> tuple[Request, bool] | None:
    """The next transactional request ``sender`` has to make, and whether the chain
    must end after it (so the sender routine wakes); ``None`` when there is none."""
    txn = sender._txn_manager
    group = txn.consumer_group_to_add()
    if group is not None:
        return (lambda: sender._do_add_offsets_to_txn(group)), False
    commit_data = txn.offsets_to_commit()
    if commit_data is not None:
        offsets, group_id = commit_data
        return (lambda: sender._do_txn_offset_commit(offsets, group_id)), False
    partitions = txn._pending_txn_partitions
    if partitions:
        return (lambda: sender._do_add_partitions_to_txn(partitions)), True
    result = txn.needs_transaction_commit()
    if result is not None:
        return (lambda: sender._do_txn_commit(result)), True
    return None


async def _chain(sender: Any) -> None:
    while (step := next_request(sender)) is not None:
        request, then_stop = step
        await request()
        if then_stop:
            return


def _kick(sender: Any) -> asyncio.Task[None] | None:
    """The chain running for ``sender``, started if there is work and none runs."""
    chain: asyncio.Task[None] | None = getattr(sender, _CHAIN, None)
    if chain is not None and not chain.done():
        return chain
    if chain is not None and not chain.cancelled() and chain.exception() is not None:
        return chain  # the routine takes its error as from any transactional task
    if next_request(sender) is None:
        return None
    chain = asyncio.get_running_loop().create_task(_chain(sender))
    setattr(sender, _CHAIN, chain)
    return chain


class _Transactions(transaction_manager.TransactionManager):  # type: ignore[misc]
    """aiokafka's transaction state for a producer that uses the chain: new work starts
    it at once."""

    _baton_sender: Any = None

    def notify_task_waiter(self) -> None:
        super().notify_task_waiter()
        sender = self._baton_sender
        if sender is not None and sender._sender_task is not None:
            _kick(sender)


_original_init = aiokafka_sender.Sender.__init__


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    _original_init(self, *args, **kwargs)
    txn = self._txn_manager
    if txn is not None and txn.transactional_id is not None:
        txn.__class__ = _Transactions
        txn._baton_sender = self


def _maybe_do_transactional_request(self: Any) -> asyncio.Task[None] | None:
    return _kick(self)


def install() -> None:
    """Make every transactional producer created after this call use the chain."""
    aiokafka_sender.Sender.__init__ = _init
    aiokafka_sender.Sender._maybe_do_transactional_request = _maybe_do_transactional_request
