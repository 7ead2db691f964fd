"""Webhooks per channel now against the same time yesterday, for the volume-drop rule (a sender that
stopped). Minutes are counted from the timeline into ``intake_minutes`` once they have settled, so the
comparison reads a few hundred rows, not a day of webhooks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from hookstream.db import Database


@dataclass(frozen=True)
class ChannelVolume:
    channel: str
    recent: int  # webhooks in the window that ended at the last counted minute
    yesterday: int  # in the same window a day before


class Volume:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def count_settled(self, *, settle_s: int = 300, keep_s: int = 26 * 3600) -> None:
        """Count every minute from the last one counted (at first: ``keep_s`` ago) up to ``settle_s`` ago,
        when the normalizer has recorded its webhooks, even behind a backlog; drop minutes older than
        ``keep_s``. Replicas may race: both count the same minutes, and the first row wins."""
        async with self.db.transaction() as conn:
            await conn.execute(
                """WITH span AS (
                       SELECT coalesce((SELECT through FROM intake_rollup),
                                       date_trunc('minute', now() - make_interval(secs => %(k)s))) AS since,
                              date_trunc('minute', now() - make_interval(secs => %(s)s)) AS until),
                   counted AS (
                       INSERT INTO intake_minutes (channel, minute, webhooks)
                       SELECT channel, date_trunc('minute', received_at), count(*) FROM order_timeline, span
                       WHERE received_at >= span.since AND received_at < span.until AND channel IS NOT NULL
                       GROUP BY 1, 2 ON CONFLICT DO NOTHING)
                   INSERT INTO intake_rollup (through) SELECT until FROM span WHERE until > since
                   ON CONFLICT (id) DO UPDATE SET through = greatest(intake_rollup.through, excluded.through)""",
                {"k": keep_s, "s": settle_s},
            )
            await conn.execute("DELETE FROM intake_minutes WHERE minute < now() - make_interval(secs => %s)", (keep_s,))

    async def against_yesterday(self, *, window_s: int = 3600) -> list[ChannelVolume]:
        """Per channel seen in either window: webhooks in the last counted ``window_s`` and a day before."""
        async with self.db.connection() as conn:
            cur = await conn.execute(
                """SELECT m.channel,
                          coalesce(sum(m.webhooks) FILTER (WHERE m.minute >= r.through - w.span), 0) AS recent,
                          coalesce(sum(m.webhooks) FILTER (WHERE m.minute < r.through - interval '1 day'), 0)
                          AS yesterday
                   FROM intake_minutes m, intake_rollup r, (SELECT make_interval(secs => %s) AS span) w
                   WHERE (m.minute >= r.through - w.span)
                      OR (m.minute >= r.through - interval '1 day' - w.span AND m.minute < r.through - interval '1 day')
                   GROUP BY m.channel ORDER BY m.channel""",
                (window_s,),
            )
            rows = cast(list[dict[str, Any]], await cur.fetchall())
        return [ChannelVolume(r["channel"], int(r["recent"]), int(r["yesterday"])) for r in rows]
