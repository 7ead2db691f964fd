"""Resumable steps: a finished step of an event is recorded with its result and never run again.

``await steps.run(event_id, "upsert", call)`` runs ``call(idempotency_key)`` unless the step is
already recorded, then records it together with the step's local effects (``effects(conn,
result)``) in one transaction. A retry of the event therefore resumes at the first unfinished
step. The key given to ``call`` is the same on every attempt, so an external system that honours
``Idempotency-Key`` answers a repeated call (after a crash between the call and the record)
without doing it twice.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from hookstream.consumer.idempotency import idempotency_key
from hookstream.db import Database

StepResult = dict[str, Any]
Effects = Callable[[psycopg.AsyncConnection[Any], StepResult], Awaitable[None]]


class Steps:
    def __init__(self, db: Database, service: str) -> None:
        self.db = db
        self.service = service

    async def finished(self, event_id: str) -> dict[str, StepResult]:
        """The recorded steps of an event and their results."""
        async with self.db.connection() as conn:
            return await self._finished(conn, event_id)

    async def _finished(self, conn: psycopg.AsyncConnection[Any], event_id: str) -> dict[str, StepResult]:
        cur = await conn.execute(
            "SELECT step, result FROM workflow_steps WHERE service = %s AND event_id = %s", (self.service, event_id)
        )
        return {str(row["step"]): dict(row["result"]) for row in await cur.fetchall()}

    async def run(
        self,
        event_id: str,
        step: str,
        call: Callable[[str], Awaitable[StepResult]],
        *,
        effects: Effects | None = None,
    ) -> StepResult:
        done = await self.finished(event_id)
        if step in done:
            return done[step]
        result = await call(idempotency_key(self.service, event_id, step))
        json.dumps(result)  # a result that cannot be stored fails here, before anything is written
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                """INSERT INTO workflow_steps (service, event_id, step, result) VALUES (%s, %s, %s, %s)
                   ON CONFLICT DO NOTHING RETURNING 1""",
                (self.service, event_id, step, Jsonb(result)),
            )
            if await cur.fetchone() is not None and effects is not None:
                await effects(conn, result)
        return result

    async def run_in_transaction(
        self,
        event_id: str,
        step: str,
        call: Callable[[str], Awaitable[StepResult]],
        *,
        effects: Effects | None = None,
    ) -> StepResult:
        """``run`` for a system without idempotency keys (SMTP): the step's row is written before the
        call and committed right after its answer, in one transaction that holds a database connection
        during the call. A crash then repeats the effect only if it falls between the system's answer
        and that commit, instead of anywhere until a connection for the record is free."""
        key = idempotency_key(self.service, event_id, step)
        # Pipelined: the UPDATE after the answer and the COMMIT travel together, one round trip.
        async with self.db.transaction(pipeline=True) as conn:
            cur = await conn.execute(
                """INSERT INTO workflow_steps (service, event_id, step, result) VALUES (%s, %s, %s, '{}')
                   ON CONFLICT DO NOTHING RETURNING 1""",
                (self.service, event_id, step),
            )
            if await cur.fetchone() is None:  # finished before (a concurrent duplicate waited on the row)
                return (await self._finished(conn, event_id)).get(step, {})
            result = await call(key)
            await conn.execute(
                """UPDATE workflow_steps SET result = %s, finished_at = now()
                   WHERE service = %s AND event_id = %s AND step = %s""",
                (Jsonb(result), self.service, event_id, step),
            )
            if effects is not None:
                await effects(conn, result)
        return result
