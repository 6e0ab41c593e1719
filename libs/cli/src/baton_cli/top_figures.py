"""What `baton top` shows, computed from two scrapes of the services' ``/metrics``.

Pure: a :class:`Scrape` is the parsed text of every service (``None`` for one that did not
answer) and when it was taken; :func:`figures` turns the previous and the current scrape
into a :class:`Frame`. Rates are counter deltas over the time between the two scrapes; a
counter that went down (its service restarted) counts from zero. A figure whose service is
down, or a rate without a previous scrape, is ``None``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["SERVICES", "Frame", "Samples", "Scrape", "figures", "parse_metrics"]

SERVICES = ("ingest", "scheduler", "executor", "approvals", "audit")

# sample name -> [(labels, value)]
Samples = dict[str, list[tuple[dict[str, str], float]]]


def parse_metrics(text: str) -> Samples:
    """Every sample of a Prometheus text exposition, by sample name.

    Raises:
        ValueError: the text is not the Prometheus exposition format.
    """
    samples: Samples = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name].append((dict(sample.labels), sample.value))
    return dict(samples)


@dataclass(frozen=True)
class Scrape:
    """Every service's samples (``None`` when it did not answer) at one moment."""

    at: float  # monotonic seconds
    services: Mapping[str, Samples | None]

    def total(self, service: str, name: str, **labels: str) -> float | None:
        """The sum of a series' samples whose labels include ``labels``; None when down."""
        samples = self.services.get(service)
        if samples is None:
            return None
        want = labels.items()
        return sum(v for have, v in samples.get(name, ()) if want <= have.items())

    def everywhere(self, name: str) -> float | None:
        """The sum of a series over every service that answered; None when none did."""
        found = [self.total(s, name) for s in self.services]
        up = [v for v in found if v is not None]
        return sum(up) if up else None


@dataclass(frozen=True)
class Frame:
    """One screen of `baton top`. Rates are per second; None is "unknown" (or down)."""

    up: dict[str, bool]
    interval: float | None
    webhooks_per_s: float | None
    webhooks_rejected_per_s: float | None
    routed_per_s: float | None
    commands_per_s: float | None
    commands_rejected_per_s: float | None
    runs_started_per_s: float | None
    runs_finished_per_s: float | None
    runs_failed_per_s: float | None
    runs_in_flight: float | None
    approvals_pending: float | None
    step_attempts_per_s: float | None
    step_errors_per_s: float | None
    steps_running: float | None
    dlq_records: float | None
    dlq_per_s: float | None
    lag: dict[str, float] = field(default_factory=dict)  # consumer -> records behind


def _rate(before: float | None, after: float | None, seconds: float | None) -> float | None:
    if before is None or after is None or not seconds:
        return None
    grown = after - before if after >= before else after  # a reset counts from zero
    return grown / seconds


def _difference(plus: float | None, minus: float | None) -> float | None:
    return None if plus is None or minus is None else max(plus - minus, 0.0)


def _lag(scrape: Scrape) -> dict[str, float]:
    behind: dict[str, float] = defaultdict(float)
    for samples in scrape.services.values():
        for labels, value in (samples or {}).get("baton_consumer_lag_records", ()):
            behind[labels.get("consumer", "?")] += value
    return dict(sorted(behind.items()))


def _step_errors(scrape: Scrape) -> float | None:
    attempts = scrape.total("executor", "baton_executor_step_attempts_total")
    succeeded = scrape.total("executor", "baton_executor_step_attempts_total", outcome="succeeded")
    return _difference(attempts, succeeded)


def figures(previous: Scrape | None, current: Scrape) -> Frame:
    """The frame `baton top` shows for ``current``, with rates since ``previous``."""
    seconds = current.at - previous.at if previous is not None else None

    def rate(service: str, name: str, **labels: str) -> float | None:
        if previous is None:
            return None
        return _rate(
            previous.total(service, name, **labels), current.total(service, name, **labels), seconds
        )

    def total(service: str, name: str, **labels: str) -> float | None:
        return current.total(service, name, **labels)

    return Frame(
        up={s: current.services.get(s) is not None for s in current.services},
        interval=seconds,
        webhooks_per_s=rate("ingest", "baton_ingest_webhooks_accepted_total"),
        webhooks_rejected_per_s=rate("ingest", "baton_ingest_webhooks_rejected_total"),
        routed_per_s=rate("ingest", "baton_ingest_routed_total"),
        commands_per_s=rate("scheduler", "baton_scheduler_commands_total"),
        commands_rejected_per_s=rate(
            "scheduler", "baton_scheduler_commands_total", outcome="rejected"
        ),
        runs_started_per_s=rate("scheduler", "baton_runs_started_total"),
        runs_finished_per_s=rate("scheduler", "baton_runs_finished_total"),
        runs_failed_per_s=rate("scheduler", "baton_runs_finished_total", outcome="failed"),
        runs_in_flight=_difference(
            total("scheduler", "baton_runs_started_total"),
            total("scheduler", "baton_runs_finished_total"),
        ),
        approvals_pending=_difference(
            total("scheduler", "baton_approvals_requested_total"),
            total("scheduler", "baton_approvals_decided_total"),
        ),
        step_attempts_per_s=rate("executor", "baton_executor_step_attempts_total"),
        step_errors_per_s=(
            _rate(_step_errors(previous), _step_errors(current), seconds) if previous else None
        ),
        steps_running=total("executor", "baton_executor_in_flight"),
        dlq_records=current.everywhere("baton_dlq_records_total"),
        dlq_per_s=(
            _rate(
                previous.everywhere("baton_dlq_records_total"),
                current.everywhere("baton_dlq_records_total"),
                seconds,
            )
            if previous
            else None
        ),
        lag=_lag(current),
    )
