"""One consumer service's own counters and handler timings: a sensor it always carries.

They are what the service logs when it stops and what tests read; ``/metrics`` comes from the
Prometheus sensor, which hears the same events.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from hookstream.sensors import Sensor

if TYPE_CHECKING:
    from hookstream.consumer.records import Record


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


class ConsumerMetrics(Sensor):
    def __init__(self) -> None:
        self.processed = 0
        self.retried = 0
        self.dead_lettered = 0
        self.parked = 0
        self.released = 0
        self.lag = 0
        # The last 10,000 handler latencies in seconds: enough for stable p99 without unbounded memory.
        self.latencies_s: deque[float] = deque(maxlen=10_000)

    def on_record_handled(self, service: str, record: Record, seconds: float) -> None:
        self.processed += 1
        self.latencies_s.append(seconds)

    def on_record_retried(self, service: str, record: Record, tier: str, error: BaseException) -> None:
        self.retried += 1

    def on_record_dead_lettered(self, service: str, record: Record, error: BaseException) -> None:
        self.dead_lettered += 1

    def on_record_parked(self, service: str, record: Record) -> None:
        self.parked += 1

    def on_record_released(self, service: str, record: Record) -> None:
        self.released += 1

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
