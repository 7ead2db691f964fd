"""The flow's vital signs, read from the store: webhooks in per channel, latency, delivery success.

Every figure covers a recent window (``*_s``) and is one indexed range scan: the timeline by
``received_at`` (written by the normalizer) and the delivery attempts by ``attempted_at``. The
admin's overview asks every few seconds, so nothing here scans a whole table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from hookstream.db import Database
from hookstream.store.deliveries import AttemptRecord

BUCKET_S = 10
_SUCCEEDED = "coalesce(a.status_code BETWEEN 200 AND 299, false)"


def _last_failed(column: str) -> str:
    """The column of the newest attempt without a 2xx, in a GROUP BY."""
    return f"(array_agg(a.{column} ORDER BY a.attempted_at DESC) FILTER (WHERE NOT {_SUCCEEDED}))[1]"


_ENDPOINTS = f"""SELECT d.subscription_id, count(*) AS attempts, count(*) FILTER (WHERE {_SUCCEEDED}) AS succeeded,
           max(a.attempted_at) AS last_attempt_at,
           (array_agg(a.status_code ORDER BY a.attempted_at DESC))[1] AS last_status_code,
           (array_agg(a.error ORDER BY a.attempted_at DESC))[1] AS last_error,
           max(a.attempted_at) FILTER (WHERE NOT {_SUCCEEDED}) AS last_failure_at,
           {_last_failed("status_code")} AS f_status, {_last_failed("latency_ms")} AS f_latency,
           {_last_failed("response_excerpt")} AS f_excerpt, {_last_failed("error")} AS f_error
    FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
    WHERE a.attempted_at > now() - make_interval(secs => %(w)s)
    GROUP BY d.subscription_id ORDER BY d.subscription_id"""  # noqa: S608 - fixed text, no input


@dataclass(frozen=True)
class ChannelIntake:
    channel: str
    webhooks: int  # received in the window
    per_s: float
    series: list[float]  # per second, one value per BUCKET_S bucket, oldest first (the last may be partial)


@dataclass(frozen=True)
class Latency:
    samples: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True)
class EndpointHealth:
    subscription_id: str
    attempts: int
    succeeded: int
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    last_failure: AttemptRecord | None  # the newest attempt without a 2xx in the window
    last_failure_at: datetime | None


class Pulse:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def intake(self, *, window_s: int = 300, rate_window_s: int = 60) -> list[ChannelIntake]:
        """Per channel: webhooks received in the window, the rate over its last ``rate_window_s``,
        and a rate per bucket for a sparkline."""
        async with self.db.connection() as conn:
            cur = await conn.execute(
                """SELECT channel, floor(extract(epoch FROM received_at) / %(b)s)::bigint AS bucket,
                          count(*) AS n, count(*) FILTER (WHERE received_at > now() - make_interval(secs => %(r)s))
                          AS recent, floor(extract(epoch FROM now()) / %(b)s)::bigint AS now_bucket
                   FROM order_timeline
                   WHERE received_at > now() - make_interval(secs => %(w)s) AND channel IS NOT NULL
                   GROUP BY channel, bucket""",
                {"b": BUCKET_S, "r": rate_window_s, "w": window_s},
            )
            rows = cast(list[dict[str, Any]], await cur.fetchall())
        buckets = window_s // BUCKET_S
        by_channel: dict[str, dict[str, Any]] = {}
        for row in rows:
            entry = by_channel.setdefault(row["channel"], {"n": 0, "recent": 0, "series": [0.0] * buckets})
            entry["n"] += row["n"]
            entry["recent"] += row["recent"]
            index = buckets - 1 - (row["now_bucket"] - row["bucket"])
            if 0 <= index < buckets:
                entry["series"][index] += row["n"] / BUCKET_S
        return [
            ChannelIntake(channel, e["n"], round(e["recent"] / rate_window_s, 2), [round(v, 2) for v in e["series"]])
            for channel, e in sorted(by_channel.items())
        ]

    async def ingest_latency(self, *, window_s: int = 300) -> Latency:
        """Webhook received by the ingress → its event normalized (recorded on the order's timeline)."""
        return await self._percentiles(
            """SELECT extract(epoch FROM recorded_at - received_at) * 1000 AS ms FROM order_timeline
               WHERE received_at > now() - make_interval(secs => %(w)s)""",
            window_s,
        )

    async def delivery_latency(self, *, window_s: int = 300) -> Latency:
        """Webhook received by the ingress → the partner's 2xx for it: the whole way through, retries included."""
        return await self._percentiles(
            """SELECT extract(epoch FROM a.attempted_at - t.received_at) * 1000 AS ms
               FROM delivery_attempts a
               JOIN deliveries d ON d.id = a.delivery_id
               JOIN order_timeline t ON t.order_id = d.order_id AND t.event_id = d.event_id
               WHERE a.attempted_at > now() - make_interval(secs => %(w)s) AND a.status_code BETWEEN 200 AND 299
                 AND t.received_at IS NOT NULL""",
            window_s,
        )

    async def endpoints(self, *, window_s: int = 900) -> list[EndpointHealth]:
        """Per endpoint with attempts in the window: how many, how many got a 2xx, and the last one."""
        async with self.db.connection() as conn:
            cur = await conn.execute(_ENDPOINTS, {"w": window_s})
            rows = cast(list[dict[str, Any]], await cur.fetchall())
        return [
            EndpointHealth(
                subscription_id=row["subscription_id"],
                attempts=row["attempts"],
                succeeded=row["succeeded"],
                last_attempt_at=row["last_attempt_at"],
                last_status_code=row["last_status_code"],
                last_error=row["last_error"],
                last_failure=None
                if row["last_failure_at"] is None
                else AttemptRecord(row["f_status"], row["f_latency"], row["f_excerpt"], row["f_error"]),
                last_failure_at=row["last_failure_at"],
            )
            for row in rows
        ]

    async def in_flight(self) -> dict[str, int]:
        """Deliveries pending or retrying now (the partial index of unfinished deliveries)."""
        async with self.db.connection() as conn:
            cur = await conn.execute(
                "SELECT status, count(*) AS n FROM deliveries WHERE status IN ('pending', 'retrying') GROUP BY status"
            )
            found = {row["status"]: row["n"] for row in cast(list[dict[str, Any]], await cur.fetchall())}
        return {"pending": found.get("pending", 0), "retrying": found.get("retrying", 0)}

    async def _percentiles(self, sample_sql: str, window_s: int) -> Latency:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                f"""SELECT count(ms) AS samples,
                           percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY ms) AS p
                    FROM ({sample_sql}) s""",  # noqa: S608 - sample_sql is one of this module's constants
                {"w": window_s},
            )
            row = cast(dict[str, Any] | None, await cur.fetchone())
        if row is None or not row["samples"]:
            return Latency(0, None, None, None)
        p50, p95, p99 = (round(float(v), 1) for v in row["p"])
        return Latency(row["samples"], p50, p95, p99)
