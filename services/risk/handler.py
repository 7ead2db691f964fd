"""order.created → a risk score, a verdict on ``orders.risk.v1`` and, when held, a flag to the risk platform.

The assessment, its row in ``order_risk`` and the verdict (queued on the outbox) are one
transaction, keyed by the order: a redelivered order.created finds it and only finishes what is
left (the flag, a resumable step). Fulfillment waits for ``cleared`` or, after an operator's
``hookstream orders release``, ``released``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from hookstream.avro import AvroSerde
from hookstream.connectors import SystemApi
from hookstream.consumer import Record
from hookstream.consumer.steps import Steps
from hookstream.db import Database
from hookstream.store.risk import Assessment, VerdictTopic, queue_verdict
from hookstream_services.risk.rules import History, Rules, score, total_of
from psycopg.types.json import Jsonb


class Assess:
    def __init__(
        self,
        db: Database,
        api: SystemApi,
        steps: Steps,
        canonical: AvroSerde,
        rules: Rules,
        where: VerdictTopic,
        on_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self.db = db
        self.api = api
        self.steps = steps
        self.canonical = canonical
        self.rules = rules
        self.where = where
        self.on_queued = on_queued

    async def __call__(self, record: Record) -> None:
        event = self.canonical.decode(record.value or b"", record.headers)  # SchemaError: permanent → DLQ
        if event["type"] != "order.created":
            return
        assessment = await self._assess(event)
        if assessment.verdict == "held":
            body = {
                "order_id": assessment.order_id,
                "email": assessment.email,
                "score": assessment.score,
                "reasons": assessment.reasons,
            }
            await self.steps.run(
                event["event_id"], "flag", lambda key: self.api.call("POST", "/flags", body, idempotency_key=key)
            )

    async def _assess(self, event: dict[str, Any]) -> Assessment:
        order_id = event["order_id"]
        email = ((event.get("customer") or {}).get("email") or "").lower() or None
        occurred_at: datetime = event["occurred_at"]
        window = timedelta(hours=self.rules.velocity_window_hours)
        # Pipelined: the lock and both reads go in one round trip, the writes and the COMMIT in a second.
        async with self.db.transaction(pipeline=True) as conn:
            if email:
                # One customer's orders are assessed one at a time (they may sit in different partitions):
                # a burst of orders from one email, the very thing velocity looks for, must see itself.
                await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"risk:{email}",))
            before = await conn.execute(
                "SELECT order_id, email, score, reasons, verdict, decided_by, decided_at FROM order_risk"
                " WHERE order_id = %s",
                (order_id,),
            )
            counts = await conn.execute(
                """SELECT count(*) FILTER (WHERE occurred_at BETWEEN %s AND %s) AS recent, count(*) AS earlier
                   FROM order_risk WHERE email = %s AND order_id <> %s""",
                (occurred_at - window, occurred_at + window, email, order_id),
            )
            row = await before.fetchone()
            if row is not None:  # assessed before: a redelivery
                return Assessment(**row)  # type: ignore[arg-type]
            found = await counts.fetchone()
            assert found is not None
            history = History(int(found["recent"]), int(found["earlier"])) if email else History(0, 0)  # type: ignore[call-overload]
            points, reasons = score(event, history, self.rules)
            verdict = "held" if points >= self.rules.hold_at else "cleared"
            assessment = Assessment(order_id, email, points, reasons, verdict, "risk", datetime.now(UTC))
            await conn.execute(
                """INSERT INTO order_risk (order_id, email, total, occurred_at, score, reasons, verdict, decided_by,
                                          decided_at)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                (
                    order_id,
                    email,
                    total_of(event),
                    occurred_at,
                    points,
                    Jsonb(reasons),
                    verdict,
                    "risk",
                    assessment.decided_at,
                ),
            )
            await queue_verdict(conn, self.where, assessment, f"{event['event_id']}:{verdict}")
        self.on_queued()
        return assessment
