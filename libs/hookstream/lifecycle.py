"""Explicit lifecycles, in the manner of aiokafka: ``start()``/``stop()``, or ``async with``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

log = logging.getLogger("hookstream")


class Lifecycle:
    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> object:  # a producer reports what it could not deliver
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


async def cancel(task: asyncio.Task[None] | None) -> None:
    """Cancel a background task of ours and wait until it has stopped."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def first_failure(*waits: Awaitable[None]) -> None:
    """Wait until one of ``waits`` raises (and raise it here) or all of them return."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    for task in pending:
        task.cancel()
    for task in done:
        task.result()


async def every(interval_s: float, job: Callable[[], Awaitable[object]], what: str) -> None:
    """Run ``job`` now and then every ``interval_s`` until cancelled; a failed round waits for the next."""
    while True:
        try:
            await job()
        except Exception as exc:  # housekeeping: the next round tries again
            log.warning(f"{what} failed", extra={"error": str(exc)})
        await asyncio.sleep(interval_s)
