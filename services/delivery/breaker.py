"""The circuit breaker of one endpoint."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class Breaker:
    """Per endpoint: opens when at least ``failure_ratio`` of the last ``window`` calls failed (after
    ``min_calls``); after ``cooldown_s`` one probe goes through; its success closes it."""

    def __init__(
        self,
        *,
        window: int = 20,
        min_calls: int = 5,
        failure_ratio: float = 0.5,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.results: deque[bool] = deque(maxlen=window)
        self.min_calls = min_calls
        self.failure_ratio = failure_ratio
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.opened_at: float | None = None
        self.probing = False

    def wait_s(self) -> float:
        """0: go ahead. Else how long until the next probe may go."""
        if self.opened_at is None:
            return 0.0
        remaining = self.cooldown_s - (self.clock() - self.opened_at)
        if remaining <= 0 and not self.probing:
            self.probing = True
            return 0.0
        return max(remaining, 1.0)

    @property
    def is_open(self) -> bool:
        """Open, or half-open waiting for its probe's answer."""
        return self.opened_at is not None

    def record(self, ok: bool) -> None:
        if self.probing:
            self.probing = False
            self.opened_at = None if ok else self.clock()
            self.results.clear()
            return
        self.results.append(ok)
        failures = self.results.count(False)
        if len(self.results) >= self.min_calls and failures / len(self.results) >= self.failure_ratio:
            self.opened_at = self.clock()
