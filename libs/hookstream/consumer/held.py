"""Calls held inside the transaction that records them, for systems without idempotency keys (SMTP).

The calls of the events in flight share one transaction: their step rows are inserted (a row
already there is a step finished before, or one a concurrent duplicate holds: the insert waits for
it and the call is not made again), the calls run concurrently, and the rows of the calls that
answered are updated with their results and committed together, one round trip each way for the
batch instead of per call. A call that fails takes its row out again, so only its own event fails
and a retry calls again. A crash repeats a call only if it falls between its answer and the commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, cast

from psycopg.types.json import Jsonb

from hookstream.consumer.idempotency import idempotency_key
from hookstream.db import Database
from hookstream.db.group_commit import GroupCommit

Result = dict[str, Any]
Held = tuple[str, str, Callable[[str], Awaitable[Result]]]  # event id, step, call(idempotency key)

_CLAIM = """INSERT INTO workflow_steps (service, event_id, step, result)
            SELECT %s, e, s, '{}'::jsonb FROM unnest(%s::text[], %s::text[]) AS t(e, s)
            ON CONFLICT DO NOTHING RETURNING event_id, step"""
_FINISHED = """SELECT event_id, step, result FROM workflow_steps
               WHERE service = %s AND (event_id, step) IN (SELECT * FROM unnest(%s::text[], %s::text[]))"""
_ANSWERED = """UPDATE workflow_steps w SET result = a.result, finished_at = now()
               FROM unnest(%s::text[], %s::text[], %s::jsonb[]) AS a(event_id, step, result)
               WHERE w.service = %s AND w.event_id = a.event_id AND w.step = a.step"""
_FAILED = """DELETE FROM workflow_steps
             WHERE service = %s AND (event_id, step) IN (SELECT * FROM unnest(%s::text[], %s::text[]))"""


class HeldCalls:
    def __init__(self, db: Database, service: str, *, max_batch: int = 32) -> None:
        """``max_batch`` bounds the calls in one transaction (and so the connections the mailer opens)."""
        self.db = db
        self.service = service
        self._batches: GroupCommit[Held, Result | BaseException] = GroupCommit(
            self._batch, max_batch=max_batch, retry_alone=False
        )

    async def submit(self, held: Held) -> Result:
        outcome = await self._batches.submit(held)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def _batch(self, items: list[Held]) -> list[Result | BaseException]:
        service = self.service
        keys = ([e for e, _, _ in items], [s for _, s, _ in items])
        outcomes: dict[tuple[str, str], Result | BaseException] = {}
        async with self.db.transaction(pipeline=True) as conn:
            cur = await conn.execute(_CLAIM, (service, *keys))
            claimed = {(str(r["event_id"]), str(r["step"])) for r in await cur.fetchall()}
            before = [(e, s) for e, s, _ in items if (e, s) not in claimed]
            if before:
                cur = await conn.execute(_FINISHED, (service, [e for e, _ in before], [s for _, s in before]))
                outcomes |= {
                    (str(r["event_id"]), str(r["step"])): cast(Result, r["result"]) for r in await cur.fetchall()
                }
            mine = list({(e, s): (e, s, call) for e, s, call in reversed(items) if (e, s) in claimed}.values())
            answers = await asyncio.gather(
                *(call(idempotency_key(service, e, s)) for e, s, call in mine), return_exceptions=True
            )
            answered = [
                (e, s, a) for (e, s, _), a in zip(mine, answers, strict=True) if not isinstance(a, BaseException)
            ]
            failed = [(e, s) for (e, s, _), a in zip(mine, answers, strict=True) if isinstance(a, BaseException)]
            if answered:
                await conn.execute(
                    _ANSWERED,
                    (
                        [e for e, _, _ in answered],
                        [s for _, s, _ in answered],
                        [Jsonb(a) for *_, a in answered],
                        service,
                    ),
                )
            if failed:
                await conn.execute(_FAILED, (service, [e for e, _ in failed], [s for _, s in failed]))
            outcomes |= {(e, s): a for (e, s, _), a in zip(mine, answers, strict=True)}
        return [outcomes.get((e, s), {}) for e, s, _ in items]
