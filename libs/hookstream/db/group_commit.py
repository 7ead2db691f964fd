"""Group commit: many concurrent callers, one Postgres transaction per batch.

Callers ``await group.submit(item)`` and get their own result. Items that arrive while earlier
batches are being written wait and go together into the next one, so batches grow with the load
and a lone item is not delayed. If a batch fails, its items are retried one by one, so one bad
item only fails its own caller; ``retry_alone=False`` fails every caller of the batch instead, for
work that must not be done twice (a batch that sent mail before its commit failed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    def __init__(
        self,
        process: Callable[[list[Item]], Awaitable[list[Result]]],
        *,
        max_batch: int = 200,
        max_concurrent: int = 3,
        retry_alone: bool = True,
    ) -> None:
        self.process = process
        self.retry_alone = retry_alone
        self.max_batch = max_batch
        self.max_concurrent = max_concurrent
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._running = 0

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._running < self.max_concurrent:
            self._running += 1
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
                await self._run(batch)
        finally:
            self._running -= 1

    async def _run(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self.process([item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1 or not self.retry_alone:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                return
            for single in batch:  # find the one that fails; the others succeed alone
                await self._run([single])
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
