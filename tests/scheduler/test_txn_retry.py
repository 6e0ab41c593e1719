"""A refused AddOffsetsToTxn is asked again sooner only when the refusal clears by itself."""

from __future__ import annotations

from types import SimpleNamespace

from aiokafka.errors import ConcurrentTransactions, CoordinatorLoadInProgressError
from aiokafka.producer import sender

from baton_scheduler.txn_retry import CONCURRENT_RETRY_SECONDS, AddOffsetsRetriedSooner, install


def handler() -> AddOffsetsRetriedSooner:
    manager = SimpleNamespace(consumer_group_added=lambda group: None, transactional_id="t")
    owner = SimpleNamespace(_retry_backoff=0.02, _txn_manager=manager)
    return AddOffsetsRetriedSooner(owner, "group")


def test_concurrent_transactions_is_retried_after_five_ms() -> None:
    refused = SimpleNamespace(error_code=ConcurrentTransactions.errno)
    assert handler().handle_response(refused) == CONCURRENT_RETRY_SECONDS == 0.002


def test_other_refusals_keep_the_producer_backoff_and_success_is_success() -> None:
    loading = SimpleNamespace(error_code=CoordinatorLoadInProgressError.errno)
    assert handler().handle_response(loading) == 0.02
    assert handler().handle_response(SimpleNamespace(error_code=0)) is None


def test_install_puts_the_handler_where_the_sender_builds_it() -> None:
    install()
    assert sender.AddOffsetsToTxnHandler is AddOffsetsRetriedSooner
