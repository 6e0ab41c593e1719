"""Prometheus metrics of the executor."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["ExecutorMetrics"]


class ExecutorMetrics:
    """Counters and histograms, registered in the registry ``main`` passes in."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.attempts = Counter(
            "baton_executor_step_attempts_total",
            "Step attempts run, by action and outcome (succeeded, retryable, permanent)",
            ["action", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "baton_executor_step_duration_seconds",
            "Time an action took, by action",
            ["action"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=registry,
        )
        self.in_flight = Gauge(
            "baton_executor_in_flight",
            "Step attempts running now",
            registry=registry,
        )
        self.duplicates = Counter(
            "baton_executor_redeliveries_skipped_total",
            "Redelivered task records whose attempt this process had already reported",
            registry=registry,
        )
        self.circuit = Gauge(
            "baton_executor_circuit_state",
            "Circuit breaker state per target host: 0 closed, 1 half-open, 2 open",
            ["host"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "baton_executor_dead_letters_total",
            "Task records sent to the dead-letter topic, by reason",
            ["reason"],
            registry=registry,
        )
        self._finished: dict[tuple[str, str], tuple[Histogram, Counter]] = {}

    def finished(self, action: str, outcome: str, seconds: float) -> None:
        """Count one attempt and observe its duration (labelled children looked up once)."""
        children = self._finished.get((action, outcome))
        if children is None:
            children = self._finished[(action, outcome)] = (
                self.duration.labels(action=action),
                self.attempts.labels(action=action, outcome=outcome),
            )
        children[0].observe(seconds)
        children[1].inc()
