"""Scheduler settings (``BATON_SCHEDULER_*``)."""

from pydantic_settings import SettingsConfigDict

from baton_common.settings import BatonSettings

__all__ = ["SchedulerSettings"]


class SchedulerSettings(BatonSettings):
    model_config = SettingsConfigDict(
        env_prefix="BATON_SCHEDULER_", env_nested_delimiter="__", extra="ignore"
    )

    http_port: int = 8082
    group_id: str = "baton-scheduler"
    transactional_id: str = "baton-scheduler-0"
    story_wait_seconds: float = 5.0
    timer_resend_seconds: float = 30.0
    snapshot_every: int = 5000  # commands per partition between snapshots; 0: never
    max_batch: int = 200  # commands per transaction at most: bounds a busy batch's latency
    linger_ms: int = 0  # the transactional producer sends a whole batch, then waits for it
    fetch_max_wait_ms: int = 20  # bounds seeks and offset lookups queued behind a parked fetch
    # a transaction begun while the coordinator completes the previous one is refused
    # and retried after this wait; aiokafka's default, 100 ms, made the p99 hump (ADR 0120)
    retry_backoff_ms: int = 20
    # bytes of one partition's records per produce request: a 200-command batch writes
    # ~150 KiB to a partition, which aiokafka's 16 KiB split into ~10 sequential requests
    batch_bytes: int = 512 * 1024
