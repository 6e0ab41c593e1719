"""The retry timer honours the executor's ``Retry-After`` and ``http_status``."""

from __future__ import annotations

from datetime import timedelta

from scheduler_log import RUN, T0, Log

from baton_common.commands import FailStep, StartRun
from baton_common.story import RetryPolicy, parse_story
from baton_scheduler.progress import backoff, retry_wait

SECOND = timedelta(seconds=1)


def story(retry: str) -> Log:
    return Log(
        parse_story(
            "id: timed\nversion: 1\ntrigger: {webhook: {path: t}}\n"
            f"steps:\n  a: {{action: http, retry: {retry}}}\n"
        )
    )


def fail(log: Log, **extra: object) -> list[str]:
    fields: dict[str, object] = {"error_type": "http_503", **extra}
    return log.send(
        FailStep(
            run_id=RUN,
            step="a",
            attempt_id=log.attempt("a"),
            error_kind="retryable",
            message="busy",
            **fields,  # type: ignore[arg-type]
        ),
        at=T0,
    )


def only_timer(log: Log) -> timedelta:
    (timer,) = log.run.timers.values()
    return timer.fire_at - T0


def test_retry_after_longer_than_the_backoff_delays_the_retry() -> None:
    log = story("{max_attempts: 3, backoff: 2s, jitter: 0}")
    log.send(StartRun(run_id=RUN, story_id="timed", trigger={}))
    assert fail(log, retry_after_seconds=30, http_status=503) == [
        "step.failed",
        "timer.scheduled",
    ]
    assert only_timer(log) == 30 * SECOND


def test_retry_after_shorter_than_the_backoff_changes_nothing() -> None:
    log = story("{max_attempts: 3, backoff: 20s, jitter: 0}")
    log.send(StartRun(run_id=RUN, story_id="timed", trigger={}))
    fail(log, retry_after_seconds=5)
    assert only_timer(log) == 20 * SECOND


def test_retry_after_is_capped_by_max_backoff() -> None:
    log = story("{max_attempts: 3, backoff: 1s, max_backoff: 1m, jitter: 0}")
    log.send(StartRun(run_id=RUN, story_id="timed", trigger={}))
    fail(log, retry_after_seconds=86_400)
    assert only_timer(log) == 60 * SECOND


def test_retry_after_turns_an_immediate_retry_into_a_timer() -> None:
    log = story("{max_attempts: 3, backoff: 0s}")
    log.send(StartRun(run_id=RUN, story_id="timed", trigger={}))
    assert fail(log) == ["step.failed", "step.dispatched"]
    log2 = story("{max_attempts: 3, backoff: 0s}")
    log2.send(StartRun(run_id=RUN, story_id="timed", trigger={}))
    assert fail(log2, retry_after_seconds=7) == ["step.failed", "timer.scheduled"]
    assert only_timer(log2) == 7 * SECOND


def test_retry_on_matches_the_reported_http_status() -> None:
    log = story("{max_attempts: 3, backoff: 1s, jitter: 0, retry_on: [http_429]}")
    log.send(StartRun(run_id=RUN, story_id="timed", trigger={}))
    # the action names its own error type, but the executor reports the status
    assert fail(log, error_type="RateLimited", http_status=429) == [
        "step.failed",
        "timer.scheduled",
    ]
    log2 = story("{max_attempts: 3, backoff: 1s, jitter: 0, retry_on: [http_429]}")
    log2.send(StartRun(run_id=RUN, story_id="timed", trigger={}))
    assert fail(log2, error_type="RateLimited", http_status=500) == ["step.failed", "run.failed"]


def test_the_failure_event_records_status_and_retry_after() -> None:
    log = story("{max_attempts: 2, backoff: 1s}")
    log.send(StartRun(run_id=RUN, story_id="timed", trigger={}))
    fail(log, retry_after_seconds=4.5, http_status=503)
    failed = next(e for e in log.envelopes if e.type == "baton.step.failed.v1")
    assert isinstance(failed.data, dict)
    assert (failed.data["http_status"], failed.data["retry_after_seconds"]) == (503, 4.5)


def test_retry_wait_without_retry_after_is_the_backoff() -> None:
    policy = RetryPolicy(backoff=SECOND, jitter=0.5)
    assert retry_wait(policy, 2, "x", None) == backoff(policy, 2, "x")
