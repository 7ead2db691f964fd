"""Which offset of a partition may be committed: never past unfinished work."""

from __future__ import annotations

import heapq


class PartitionOffsets:
    """Offsets are added in fetch order and finish in any order; ``committable`` is the
    lowest unfinished offset, or one past the last offset seen when everything is done."""

    def __init__(self) -> None:
        self._pending: list[int] = []  # min-heap of unfinished offsets
        self._finished: set[int] = set()
        self._next = -1

    def add(self, offset: int) -> None:
        heapq.heappush(self._pending, offset)
        self._next = max(self._next, offset + 1)

    def done(self, offset: int) -> None:
        self._finished.add(offset)
        while self._pending and self._pending[0] in self._finished:
            self._finished.discard(heapq.heappop(self._pending))

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def committable(self) -> int | None:
        """The offset to commit (Kafka's convention: the next record to read), or None if nothing was seen."""
        if self._pending:
            return self._pending[0]
        return self._next if self._next >= 0 else None
