"""Counters and timings of one consumer service (exported by the observability work)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


@dataclass
class ConsumerMetrics:
    processed: int = 0
    retried: int = 0
    dead_lettered: int = 0
    parked: int = 0
    released: int = 0
    lag: int = 0
    # The last 10,000 handler latencies in seconds: enough for stable p99 without unbounded memory.
    latencies_s: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))

    def observe(self, seconds: float) -> None:
        self.latencies_s.append(seconds)

    def snapshot(self) -> dict[str, float]:
        values = sorted(self.latencies_s)
        return {
            "processed": self.processed,
            "retried": self.retried,
            "dead_lettered": self.dead_lettered,
            "parked": self.parked,
            "released": self.released,
            "lag": self.lag,
            "latency_p50_ms": percentile(values, 0.50) * 1000,
            "latency_p95_ms": percentile(values, 0.95) * 1000,
            "latency_p99_ms": percentile(values, 0.99) * 1000,
        }
