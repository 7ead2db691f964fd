"""Alert state and history (``alerts``, ``alert_history``), for the admin's built-in alerting."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from hookstream.db import Database


@dataclass(frozen=True)
class Change:
    """A condition that started or stopped holding, and whether the cooldown lets it be told."""

    rule: str
    subject: str
    firing: bool
    summary: str
    notify: bool


@dataclass(frozen=True)
class AlertEvent:
    id: int
    at: datetime
    rule: str
    subject: str
    kind: str
    summary: str
    notified: list[str]


class AlertStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def transition(
        self, rule: str, subject: str, firing: bool, summary: str, *, cooldown_s: float
    ) -> Change | None:
        """Record that the condition holds (or not) now. A change from the stored state is returned once,
        to the one caller whose statement made it (replicas race on the row, not on the notification);
        no change → None. A first row that is not firing is no change. A firing is told unless one was
        told within ``cooldown_s`` (a flapping condition); a resolution is told when its firing was."""
        async with self.db.connection() as conn:
            cur = await conn.execute(
                """INSERT INTO alerts AS a (rule, subject, firing, summary) VALUES (%(r)s, %(s)s, %(f)s, %(m)s)
                   ON CONFLICT (rule, subject) DO UPDATE SET firing = excluded.firing, summary = excluded.summary,
                       changed_at = now()
                   WHERE a.firing IS DISTINCT FROM excluded.firing
                   RETURNING (xmax = 0) AS inserted, CASE WHEN a.firing
                       THEN notified_at IS NULL OR notified_at < now() - make_interval(secs => %(c)s)
                       ELSE told END AS may_notify""",
                {"r": rule, "s": subject, "f": firing, "m": summary, "c": cooldown_s},
            )
            row = cast(dict[str, Any] | None, await cur.fetchone())
        if row is None or (row["inserted"] and not firing):
            return None
        return Change(rule, subject, firing, summary, notify=bool(row["may_notify"]))

    async def record(self, change: Change, notified: list[str]) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO alert_history (rule, subject, kind, summary, notified) VALUES (%s, %s, %s, %s, %s)",
                (change.rule, change.subject, "fired" if change.firing else "resolved", change.summary, notified),
            )
            told = bool(notified) and change.firing
            await conn.execute(
                """UPDATE alerts SET told = %s, notified_at = CASE WHEN %s THEN now() ELSE notified_at END
                   WHERE rule = %s AND subject = %s""",
                (told, told, change.rule, change.subject),
            )

    async def history(self, limit: int = 100) -> list[AlertEvent]:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                "SELECT id, at, rule, subject, kind, summary, notified FROM alert_history ORDER BY id DESC LIMIT %s",
                (limit,),
            )
            return [AlertEvent(**r) for r in cast(list[dict[str, Any]], await cur.fetchall())]

    async def firing(self) -> list[dict[str, Any]]:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                "SELECT rule, subject, summary, changed_at FROM alerts WHERE firing ORDER BY changed_at DESC"
            )
            return cast(list[dict[str, Any]], await cur.fetchall())
