"""Risk assessments and operators' decisions on held orders.

The risk service records one assessment per order and queues its verdict (``cleared`` or
``held``) on ``orders.risk.v1`` through its outbox, in one transaction. An operator's ``release``
or ``cancel`` of a held order changes the verdict and queues the new one the same way; the risk
service's outbox relay publishes both, exactly once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from hookstream_schemas import topics

from hookstream.avro import AvroSerde, SchemaStore
from hookstream.db import Database
from hookstream.errors import ConfigurationError
from hookstream.kafka.headers import EVENT_ID
from hookstream.kafka.outbox import add_many_to_outbox

DECISIONS = ("released", "cancelled")


class NotHeld(ConfigurationError):
    """The order is unknown to risk, or not held: there is nothing to release or cancel."""


@dataclass(frozen=True)
class Assessment:
    order_id: str
    email: str | None
    score: int
    reasons: list[str]
    verdict: str
    decided_by: str
    decided_at: datetime


@dataclass(frozen=True)
class VerdictTopic:
    """Where verdicts go: the risk service's outbox, ``orders.risk.v1`` (tests give each run its own)."""

    service: str = "risk"
    topic: str = topics.RISK.name


def _serde() -> AvroSerde:
    return SchemaStore.bundled().serde(topics.RISK.name)


async def queue_verdict(
    conn: psycopg.AsyncConnection[Any], where: VerdictTopic, assessment: Assessment, event_id: str
) -> None:
    """Queue the verdict on the risk outbox inside the caller's transaction."""
    serde = _serde()
    value = serde.encode(
        {
            "event_id": event_id,
            "order_id": assessment.order_id,
            "verdict": assessment.verdict,
            "score": assessment.score,
            "reasons": assessment.reasons,
            "decided_by": assessment.decided_by,
            "decided_at": assessment.decided_at,
        }
    )
    headers = [*serde.headers, (EVENT_ID, event_id.encode())]
    await add_many_to_outbox(conn, where.service, where.topic, [(assessment.order_id, event_id, value, headers)])


_COLUMNS = "order_id, email, score, reasons, verdict, decided_by, decided_at"


class RiskStore:
    def __init__(self, db: Database, where: VerdictTopic | None = None) -> None:
        self.db = db
        self.where = where or VerdictTopic()

    async def get(self, order_id: str) -> Assessment | None:
        async with self.db.connection() as conn:
            cur = await conn.execute(f"SELECT {_COLUMNS} FROM order_risk WHERE order_id = %s", (order_id,))  # noqa: S608 - fixed columns
            row = await cur.fetchone()
        return Assessment(**row) if row else None  # type: ignore[arg-type]

    async def held(self) -> list[Assessment]:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM order_risk WHERE verdict = 'held' ORDER BY decided_at"  # noqa: S608
            )
            return [Assessment(**row) for row in await cur.fetchall()]  # type: ignore[arg-type]

    async def decide(self, order_id: str, verdict: str, by: str) -> Assessment:
        """Release or cancel a held order; the new verdict is queued for ``orders.risk.v1``."""
        if verdict not in DECISIONS:
            raise ValueError(f"verdict must be one of {DECISIONS}")
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM order_risk WHERE order_id = %s FOR UPDATE",  # noqa: S608
                (order_id,),
            )
            row = await cur.fetchone()
            if row is None:
                raise NotHeld(f"order {order_id} has no risk assessment (is the risk service running, the id right?)")
            if row["verdict"] != "held":
                raise NotHeld(f"order {order_id} is not held: its verdict is {row['verdict']} by {row['decided_by']}")
            now = datetime.now(UTC)
            await conn.execute(
                "UPDATE order_risk SET verdict = %s, decided_by = %s, decided_at = %s WHERE order_id = %s",
                (verdict, by, now, order_id),
            )
            decided = Assessment(**{**row, "verdict": verdict, "decided_by": by, "decided_at": now})  # type: ignore[arg-type]
            await queue_verdict(conn, self.where, decided, f"{order_id}:{verdict}:{uuid.uuid4().hex[:12]}")
        return decided
