"""Where a scheduler's batch time goes, from its ``/metrics``.

Per stage of a command batch's transaction (``baton_scheduler_batch_stage_seconds``:
decide, produce, snapshot, commit) the count, mean and bucket-bounded p50/p99, and the
scheduler process's CPU time per command. Scrape before and after a phase and print the
difference. Shared by ``bench/scheduler.py`` and ``bench/approvals.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

STAGE_METRIC = "baton_scheduler_batch_stage_seconds"
STAGES = ("decide", "offsets", "produce", "snapshot", "commit")


@dataclass
class Scrape:
    """The counters of one ``/metrics`` answer, keyed by stage (and ``le`` for buckets)."""

    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, float] = field(default_factory=dict)
    buckets: dict[tuple[str, float], float] = field(default_factory=dict)
    cpu_seconds: float = 0.0
    commands: float = 0.0

    def minus(self, earlier: Scrape) -> Scrape:
        return Scrape(
            _grown(self.sums, earlier.sums),
            _grown(self.counts, earlier.counts),
            _grown(self.buckets, earlier.buckets),
            self.cpu_seconds - earlier.cpu_seconds,
            self.commands - earlier.commands,
        )


K = TypeVar("K")


def _grown(later: dict[K, float], earlier: dict[K, float]) -> dict[K, float]:
    """What each counter gained since ``earlier``, keeping only those that grew."""
    return {k: v - earlier.get(k, 0.0) for k, v in later.items() if v > earlier.get(k, 0.0)}


async def scrape(scheduler_url: str) -> Scrape:
    async with httpx.AsyncClient(base_url=scheduler_url, timeout=10) as client:
        text = (await client.get("/metrics")).text
    out = Scrape()
    for family in text_string_to_metric_families(text):
        if family.name == "process_cpu_seconds":
            out.cpu_seconds = family.samples[0].value
        elif family.name == "baton_scheduler_commands":
            out.commands = sum(s.value for s in family.samples if s.name.endswith("_total"))
        elif family.name == STAGE_METRIC:
            for sample in family.samples:
                stage = sample.labels["stage"]
                if sample.name.endswith("_sum"):
                    out.sums[stage] = sample.value
                elif sample.name.endswith("_count"):
                    out.counts[stage] = sample.value
                elif sample.name.endswith("_bucket"):
                    out.buckets[(stage, float(sample.labels["le"]))] = sample.value
    return out


def quantile(scraped: Scrape, stage: str, q: float) -> float:
    """The upper bound of the bucket holding quantile ``q`` of ``stage``."""
    bounds = sorted(le for s, le in scraped.buckets if s == stage)
    for bound in bounds:
        if scraped.buckets[(stage, bound)] >= q * scraped.counts.get(stage, 0.0):
            return bound
    return float("inf")


def print_stages(title: str, scraped: Scrape) -> None:
    print(f"scheduler batch stages, {title} (p50/p99: bucket upper bounds):")
    for stage in STAGES:
        n = scraped.counts.get(stage, 0.0)
        if not n:
            continue
        print(
            f"  {stage:<9} n={n:6.0f}  mean={scraped.sums[stage] / n * 1000:6.1f}ms"
            f"  p50<={quantile(scraped, stage, 0.5) * 1000:4.0f}ms"
            f"  p99<={quantile(scraped, stage, 0.99) * 1000:4.0f}ms"
        )
    if scraped.commands:
        print(
            f"  scheduler process: {scraped.cpu_seconds:.2f} CPU s for "
            f"{scraped.commands:.0f} commands "
            f"({scraped.cpu_seconds / scraped.commands * 1000:.2f} CPU ms per command)"
        )
