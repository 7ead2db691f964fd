"""Resumable steps: a finished step of an event is recorded with its result and never run again.

``await steps.run(event_id, "upsert", call)`` runs ``call(idempotency_key)`` unless the step is
already recorded, then records it together with the step's local effects (``effects(conn,
result)``) in one transaction. A retry of the event therefore resumes at the first unfinished
step. The key given to ``call`` is the same on every attempt, so an external system that honours
``Idempotency-Key`` answers a repeated call (after a crash between the call and the record)
without doing it twice.

A handler that runs several steps of one event takes ``steps.of(event_id)``: the event's
recorded steps are read once for all of them, not once per step.

Reads and records are group-committed: the events a consumer works on at once (many keys of many
partitions) share one ``SELECT … = ANY`` for their recorded steps and one transaction for their
step rows and effects, so a busy workflow makes a few round trips per batch instead of three or
four per event. A record whose effects fail is retried alone, so it fails only its own event.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import psycopg
from psycopg.types.json import Jsonb

from hookstream import tracing
from hookstream.consumer.held import HeldCalls
from hookstream.consumer.idempotency import idempotency_key
from hookstream.db import Database
from hookstream.db.group_commit import GroupCommit

StepResult = dict[str, Any]
Effects = Callable[[psycopg.AsyncConnection[Any], StepResult], Awaitable[None]]
Call = Callable[[str], Awaitable[StepResult]]

_RECORD_MANY = """INSERT INTO workflow_steps (service, event_id, step, result)
                  SELECT %s, * FROM unnest(%s::text[], %s::text[], %s::jsonb[])
                  ON CONFLICT DO NOTHING RETURNING event_id, step"""
_FINISHED_OF_MANY = """SELECT event_id, step, result FROM workflow_steps
                       WHERE service = %s AND event_id = ANY(%s)"""


@dataclass(frozen=True)
class _Recording:
    event_id: str
    step: str
    result: StepResult
    effects: Effects | None


class Steps:
    def __init__(self, db: Database, service: str, *, max_batch: int = 200) -> None:
        self.db = db
        self.service = service
        self._reads: GroupCommit[str, dict[str, StepResult]] = GroupCommit(self._read_batch, max_batch=max_batch)
        self._records: GroupCommit[_Recording, None] = GroupCommit(self._record_batch, max_batch=max_batch)
        self.held = HeldCalls(db, service)

    def of(self, event_id: str) -> EventSteps:
        """The steps of one event, for one handling of it."""
        return EventSteps(self, event_id)

    async def finished(self, event_id: str) -> dict[str, StepResult]:
        """The recorded steps of an event and their results."""
        return await self._reads.submit(event_id)

    async def record(self, event_id: str, step: str, result: StepResult, effects: Effects | None = None) -> None:
        """Record a finished step; ``effects`` run in the same transaction unless the step was recorded before."""
        await self._records.submit(_Recording(event_id, step, result, effects))

    async def run(self, event_id: str, step: str, call: Call, *, effects: Effects | None = None) -> StepResult:
        return await self.of(event_id).run(step, call, effects=effects)

    async def run_in_transaction(self, event_id: str, step: str, call: Call) -> StepResult:
        return await self.of(event_id).run_in_transaction(step, call)

    async def _read_batch(self, event_ids: list[str]) -> list[dict[str, StepResult]]:
        found: dict[str, dict[str, StepResult]] = {event_id: {} for event_id in event_ids}
        async with self.db.connection() as conn:
            cur = await conn.execute(_FINISHED_OF_MANY, (self.service, list(found)))
            for row in await cur.fetchall():
                found[str(row["event_id"])][str(row["step"])] = cast(StepResult, row["result"])
        # Each caller gets its own dict: a handler adds to it as its steps finish.
        return [dict(found[event_id]) for event_id in event_ids]

    async def _record_batch(self, items: list[_Recording]) -> list[None]:
        columns = (
            self.service,
            [i.event_id for i in items],
            [i.step for i in items],
            [Jsonb(i.result) for i in items],
        )
        if all(i.effects is None for i in items):
            async with self.db.connection() as conn:  # one statement: its own transaction
                await conn.execute(_RECORD_MANY, columns)
            return [None] * len(items)
        # Pipelined: the effects' statements and the COMMIT go in one round trip after the insert.
        async with self.db.transaction(pipeline=True) as conn:
            cur = await conn.execute(_RECORD_MANY, columns)
            # A row recorded before (a concurrent duplicate) was not inserted: its effects are done already.
            inserted = {(str(row["event_id"]), str(row["step"])) for row in await cur.fetchall()}
            for item in items:
                if item.effects is not None and (item.event_id, item.step) in inserted:
                    inserted.discard((item.event_id, item.step))  # the same step twice in a batch: effects once
                    await item.effects(conn, item.result)
        return [None] * len(items)


class EventSteps:
    def __init__(self, steps: Steps, event_id: str) -> None:
        self.steps = steps
        self.event_id = event_id
        self._done: dict[str, StepResult] | None = None  # read on the first step, then kept current

    async def run(self, step: str, call: Call, *, effects: Effects | None = None) -> StepResult:
        if self._done is None:
            self._done = await self.steps.finished(self.event_id)
        if step in self._done:
            return self._done[step]
        s = self.steps
        with tracing.span(f"step {step}", self._attributes(step)):
            result = await call(idempotency_key(s.service, self.event_id, step))
            json.dumps(result)  # a result that cannot be stored fails here, before anything is written
            await s.record(self.event_id, step, result, effects)
        self._done[step] = result
        return result

    def _attributes(self, step: str) -> dict[str, str | int]:
        return {"hookstream.service": self.steps.service, "hookstream.step": step, "hookstream.event_id": self.event_id}

    async def run_in_transaction(self, step: str, call: Call) -> StepResult:
        """``run`` for a system without idempotency keys (SMTP): the step's row is written before the
        call and committed right after its answer, in one transaction that holds the row during the
        call. A crash then repeats the effect only if it falls between the system's answer and that
        commit, and a concurrent duplicate waits on the row instead of calling too. The calls of the
        events in flight share their transaction (``Steps.run_in_transaction``)."""
        if self._done is not None and step in self._done:
            return self._done[step]
        with tracing.span(f"step {step}", self._attributes(step)):
            result = await self.steps.held.submit((self.event_id, step, call))
        if self._done is not None:
            self._done[step] = result
        return result
