"""Explicit lifecycles, in the manner of aiokafka: ``start()``/``stop()``, or ``async with``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Protocol, Self

from hookstream_schemas.topics import TopicSpec

from hookstream.settings import Brokers

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


async def cancel(task: asyncio.Task[None] | None) -> BaseException | None:
    """Cancel a background task of ours and wait until it has stopped.

    A task that had already failed is stopped all the same: its error is returned, not raised, since
    the caller is done with it (a LISTEN task whose connection broke when the database restarted)."""
    if task is None:
        return None
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        return None
    except Exception as exc:
        return exc
    return None


async def first_failure(*waits: Awaitable[None]) -> None:
    """Wait until one of ``waits`` raises (and raise it here) or all of them return."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    for task in pending:
        task.cancel()
    for task in done:
        task.result()


async def every(interval_s: float, job: Callable[[], Awaitable[object]], what: str, wake: asyncio.Event) -> None:
    """Run ``job`` now and then every ``interval_s`` (or sooner, when ``wake`` is set) until cancelled;
    a failed round waits for the next."""
    while True:
        try:
            await job()
        except Exception as exc:  # housekeeping: the next round tries again
            log.warning(f"{what} failed", extra={"error": str(exc)})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), interval_s)
        wake.clear()


class Part(Protocol):
    """What a service is built from: anything with a lifecycle; ``wait``, ``ready`` and ``topics`` if it has them."""

    async def start(self) -> None: ...

    async def stop(self) -> object: ...


class LifecycleGroup(Lifecycle):
    """Starts its parts in order and stops them in reverse; a part that fails to start stops those before it.

    ``wait()`` returns when every part that can stop on its own has, or raises the first failure.
    ``ready()`` is every part's readiness; ``topics()`` every topic the parts declare."""

    def __init__(
        self,
        name: str,
        parts: list[Part],
        *,
        topics: list[TopicSpec] | None = None,
        create_topics_on: Brokers | None = None,
    ) -> None:
        """``topics``: what the service owns besides its parts' topics (its contract topics).
        ``create_topics_on``: a bootstrap address to create ``topics()`` at before the parts start
        (a service run standalone); None when the entrypoint or a setup Job creates them."""
        self.name = name
        self.parts = parts
        self.declared_topics = list(topics or [])
        self.create_topics_on = create_topics_on
        self._started: list[Part] = []

    async def start(self) -> None:
        if self.create_topics_on is not None:
            from hookstream.kafka import TopicAdmin  # the Kafka adapters build on this module

            await asyncio.to_thread(TopicAdmin(self.create_topics_on).ensure_topics, self.topics())
        try:
            for part in self.parts:
                await part.start()
                self._started.append(part)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        while self._started:
            part = self._started.pop()
            try:
                await part.stop()
            except Exception:
                log.exception("stopping a part failed", extra={"service": self.name, "part": type(part).__name__})

    async def wait(self) -> None:
        waits = [part.wait() for part in self.parts if hasattr(part, "wait")]
        if waits:
            await first_failure(*waits)

    async def ready(self) -> list[tuple[str, bool, str]]:
        """(check, ok, detail) for every part that reports readiness."""
        checks: list[tuple[str, bool, str]] = []
        for part in self.parts:
            if hasattr(part, "ready"):
                checks.extend(await part.ready())
        return checks

    def topics(self) -> list[TopicSpec]:
        owned = [spec for part in self.parts if hasattr(part, "topics") for spec in part.topics()]
        return [*self.declared_topics, *owned]

    def consumer_groups(self) -> list[tuple[str, str, str, str]]:
        """(consumer service, group id, input topic, dead-letter topic) of every consumer among the parts."""
        return [g for part in self.parts if hasattr(part, "consumer_groups") for g in part.consumer_groups()]


class Periodic(Lifecycle):
    """Housekeeping as a part: ``job`` now and then every ``interval_s`` while the service runs."""

    def __init__(self, interval_s: float, job: Callable[[], Awaitable[object]], what: str) -> None:
        self.interval_s = interval_s
        self.job = job
        self.what = what
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Run the job again now rather than at the end of the interval (once, however often woken)."""
        self._wake.set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(every(self.interval_s, self.job, self.what, self._wake))

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None
