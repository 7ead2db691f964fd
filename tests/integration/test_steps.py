"""The workflow steps store against a real PostgreSQL: resumable steps, group-committed."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import pytest
from hookstream.consumer.steps import StepResult, Steps
from hookstream.db import Database
from hookstream.errors import PermanentError

pytestmark = pytest.mark.integration


class CountingDatabase(Database):
    """Counts the pool connections taken: one per read, record or transaction."""

    taken = 0

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[dict[str, object]]]:
        self.taken += 1
        async with super().connection() as conn:
            yield conn


async def _handle(steps: Steps, calls: Counter[str], event_id: str, *, fail_effects: bool = False) -> None:
    """A CRM-like handler: a plain step, then a step with a local effect in its transaction."""
    one = steps.of(event_id)

    async def call(key: str) -> StepResult:
        calls[key] += 1
        await asyncio.sleep(0)
        return {"id": f"{event_id}-{len(calls)}"}

    async def effects(conn: psycopg.AsyncConnection[Any], result: StepResult) -> None:
        if fail_effects:
            raise PermanentError(f"no id in the answer for {event_id}")
        await conn.execute("INSERT INTO effects (event_id, ref) VALUES (%s, %s)", (event_id, result["id"]))

    await one.run("contact", call)
    await one.run("order", call, effects=effects)


@pytest.fixture
async def db(migrated_database_url: str) -> AsyncIterator[CountingDatabase]:
    async with CountingDatabase(migrated_database_url) as db:
        async with db.connection() as conn:
            await conn.execute("CREATE TABLE effects (event_id text, ref text)")
        db.taken = 0
        yield db


async def _effects(db: Database) -> Counter[str]:
    async with db.connection() as conn:
        cur = await conn.execute("SELECT event_id FROM effects")
        return Counter(str(row["event_id"]) for row in await cur.fetchall())


async def test_concurrent_events_share_their_reads_and_records(db: CountingDatabase) -> None:
    steps, calls = Steps(db, "crm"), Counter[str]()
    events = [f"shopify:{i}" for i in range(60)]
    await asyncio.gather(*(_handle(steps, calls, e) for e in events))
    taken = db.taken

    assert len(calls) == 120
    assert set(calls.values()) == {1}
    assert await _effects(db) == Counter(events)
    # One at a time this takes 180 connections (a read and two records per event); batched, a handful.
    assert taken <= 12, taken

    # Handled again (a redelivery): every step is found finished, nothing is called or written again.
    await asyncio.gather(*(_handle(steps, calls, e) for e in events))
    assert len(calls) == 120
    assert set(calls.values()) == {1}
    assert await _effects(db) == Counter(events)


async def test_an_event_whose_effects_fail_fails_alone(db: CountingDatabase) -> None:
    steps, calls = Steps(db, "crm"), Counter[str]()
    events = [f"shopify:{i}" for i in range(20)]
    results = await asyncio.gather(
        *(_handle(steps, calls, e, fail_effects=e == "shopify:7") for e in events), return_exceptions=True
    )

    failed = {e: r for e, r in zip(events, results, strict=True) if r is not None}
    assert list(failed) == ["shopify:7"]
    assert isinstance(failed["shopify:7"], PermanentError)
    assert await _effects(db) == Counter(e for e in events if e != "shopify:7")
    finished = await steps.finished("shopify:7")
    assert set(finished) == {"contact"}  # the failed step is not recorded: a retry runs it again
    assert set(await steps.finished("shopify:8")) == {"contact", "order"}


async def test_a_step_recorded_by_a_concurrent_duplicate_keeps_its_effects_once(db: CountingDatabase) -> None:
    first, second, calls = Steps(db, "crm"), Steps(db, "crm"), Counter[str]()
    # Two instances handle the same event at once (a rebalance overlap): both call, one record wins.
    await asyncio.gather(_handle(first, calls, "shopify:1"), _handle(second, calls, "shopify:1"))
    assert await _effects(db) == Counter({"shopify:1": 1})


class Mail:
    """An SMTP-like system: no idempotency key; counts what it was asked to send."""

    def __init__(self, *, refuse: str | None = None, delay_s: float = 0.0) -> None:
        self.sent: Counter[str] = Counter()
        self.refuse = refuse
        self.delay_s = delay_s

    def call(self, event_id: str) -> Any:
        async def send(key: str) -> StepResult:
            await asyncio.sleep(self.delay_s)
            if event_id == self.refuse:
                raise PermanentError(f"mail server refused the message of {event_id}")
            self.sent[event_id] += 1
            return {"message_id": f"<{key}@test>"}

        return send


async def test_calls_without_idempotency_keys_share_the_transaction_that_records_them(db: CountingDatabase) -> None:
    steps, mail = Steps(db, "notifications"), Mail()
    events = [f"shopify:{i}" for i in range(40)]
    results = await asyncio.gather(*(steps.run_in_transaction(e, "email", mail.call(e)) for e in events))
    taken = db.taken

    assert mail.sent == Counter(events)
    assert all(r["message_id"].startswith("<") for r in results)
    assert taken <= 6, taken  # one held transaction per batch, not one per message
    assert (await steps.finished("shopify:3"))["email"] == results[3]

    # Redelivered: the rows say sent, nothing is sent again.
    again = await asyncio.gather(*(steps.run_in_transaction(e, "email", mail.call(e)) for e in events))
    assert again == results
    assert mail.sent == Counter(events)


async def test_a_refused_call_fails_only_its_event_and_is_called_again_on_retry(db: CountingDatabase) -> None:
    steps, mail = Steps(db, "notifications"), Mail(refuse="shopify:5")
    events = [f"shopify:{i}" for i in range(12)]
    results = await asyncio.gather(
        *(steps.run_in_transaction(e, "email", mail.call(e)) for e in events), return_exceptions=True
    )
    assert [e for e, r in zip(events, results, strict=True) if isinstance(r, BaseException)] == ["shopify:5"]
    assert mail.sent == Counter(e for e in events if e != "shopify:5")
    assert "email" not in await steps.finished("shopify:5")

    mail.refuse = None
    await steps.run_in_transaction("shopify:5", "email", mail.call("shopify:5"))
    assert mail.sent["shopify:5"] == 1


async def test_a_concurrent_duplicate_waits_for_the_held_row_and_does_not_call(db: CountingDatabase) -> None:
    mail = Mail(delay_s=0.3)
    first, second = Steps(db, "notifications"), Steps(db, "notifications")  # two instances
    one = asyncio.create_task(first.run_in_transaction("shopify:1", "email", mail.call("shopify:1")))
    await asyncio.sleep(0.1)  # the first holds the row and is sending
    other = await second.run_in_transaction("shopify:1", "email", mail.call("shopify:1"))
    assert other == await one
    assert mail.sent == Counter({"shopify:1": 1})
