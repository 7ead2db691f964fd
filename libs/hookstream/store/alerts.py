"""Alert state, history and the notifications outbox (``alerts``, ``alert_history``,
``alert_notifications``), for the admin's built-in alerting."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from hookstream.db import Database


@dataclass(frozen=True)
class Change:
    """A condition that started or stopped holding, and whether the cooldown let it be told."""

    rule: str
    subject: str
    firing: bool
    summary: str
    notify: bool


@dataclass(frozen=True)
class Notification:
    """One change to tell one notifier; ``attempts`` counts this one."""

    id: int
    notifier: str
    attempts: int
    rule: str
    subject: str
    firing: bool
    summary: str


@dataclass(frozen=True)
class AlertEvent:
    id: int
    at: datetime
    rule: str
    subject: str
    kind: str
    summary: str
    notified: list[str]  # told
    undelivered: list[dict[str, Any]]  # still being tried, or given up: notifier, state, attempts, last_error


class AlertStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def change(
        self, rule: str, subject: str, firing: bool, summary: str, *, cooldown_s: float, notifiers: list[str]
    ) -> Change | None:
        """Record that the condition holds (or not) now. A change from the stored state is returned once,
        to the one caller whose statement made it (replicas race on the row, not on the notification),
        with its history entry and a notification per notifier queued in the same transaction; no change
        → None. A first row that is not firing is no change. A firing is told unless one was told within
        ``cooldown_s`` (a flapping condition); a resolution is told when its firing was."""
        async with self.db.transaction() as conn:
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
            change = Change(rule, subject, firing, summary, notify=bool(row["may_notify"]) and bool(notifiers))
            cur = await conn.execute(
                "INSERT INTO alert_history (rule, subject, kind, summary) VALUES (%s, %s, %s, %s) RETURNING id",
                (rule, subject, "fired" if firing else "resolved", summary),
            )
            history_id = cast(dict[str, Any], await cur.fetchone())["id"]
            if change.notify:
                await conn.execute(
                    """INSERT INTO alert_notifications (history_id, notifier)
                       SELECT %s, unnest(%s::text[])""",
                    (history_id, notifiers),
                )
            told = change.notify and firing
            await conn.execute(
                """UPDATE alerts SET told = %s, notified_at = CASE WHEN %s THEN now() ELSE notified_at END
                   WHERE rule = %s AND subject = %s""",
                (told, told, rule, subject),
            )
        return change

    async def claim(self, *, limit: int = 20, lease_s: float = 60) -> list[Notification]:
        """Notifications due now, each handed to one caller for ``lease_s`` (then due again, should the
        caller die before saying how it went)."""
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                """WITH due AS (SELECT id FROM alert_notifications WHERE state = 'pending' AND due_at <= now()
                                ORDER BY id LIMIT %(n)s FOR UPDATE SKIP LOCKED),
                        claimed AS (UPDATE alert_notifications n SET attempts = n.attempts + 1,
                                        due_at = now() + make_interval(secs => %(l)s)
                                    FROM due WHERE n.id = due.id
                                    RETURNING n.id, n.history_id, n.notifier, n.attempts)
                   SELECT c.id, c.notifier, c.attempts, h.rule, h.subject, h.kind = 'fired' AS firing, h.summary
                   FROM claimed c JOIN alert_history h ON h.id = c.history_id ORDER BY c.id""",
                {"n": limit, "l": lease_s},
            )
            return [Notification(**r) for r in cast(list[dict[str, Any]], await cur.fetchall())]

    async def sent(self, n: Notification) -> None:
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                """UPDATE alert_notifications SET state = 'sent', sent_at = now(), last_error = NULL
                   WHERE id = %s AND state = 'pending' RETURNING history_id""",
                (n.id,),
            )
            row = cast(dict[str, Any] | None, await cur.fetchone())
            if row is not None:
                await conn.execute(
                    "UPDATE alert_history SET notified = array_append(notified, %s) WHERE id = %s",
                    (n.notifier, row["history_id"]),
                )

    async def failed(self, n: Notification, error: str, *, retry_in_s: float | None) -> None:
        """The notifier refused or could not be reached: try again in ``retry_in_s``, or give up (None)."""
        async with self.db.connection() as conn:
            await conn.execute(
                """UPDATE alert_notifications SET last_error = %(e)s,
                       state = CASE WHEN %(r)s::float8 IS NULL THEN 'failed' ELSE 'pending' END,
                       due_at = CASE WHEN %(r)s::float8 IS NULL THEN due_at
                                     ELSE now() + make_interval(secs => %(r)s::float8) END
                   WHERE id = %(i)s AND state = 'pending'""",
                {"e": error[:500], "r": retry_in_s, "i": n.id},
            )

    async def history(self, limit: int = 100) -> list[AlertEvent]:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                """SELECT h.id, h.at, h.rule, h.subject, h.kind, h.summary, h.notified,
                          coalesce((SELECT json_agg(json_build_object('notifier', n.notifier, 'state', n.state,
                                        'attempts', n.attempts, 'last_error', n.last_error) ORDER BY n.id)
                                    FROM alert_notifications n WHERE n.history_id = h.id AND n.state <> 'sent'),
                                   '[]') AS undelivered
                   FROM alert_history h ORDER BY h.id DESC LIMIT %s""",
                (limit,),
            )
            return [AlertEvent(**r) for r in cast(list[dict[str, Any]], await cur.fetchall())]

    async def firing(self, rule: str | None = None) -> list[dict[str, Any]]:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                """SELECT rule, subject, summary, changed_at FROM alerts
                   WHERE firing AND (%(r)s::text IS NULL OR rule = %(r)s) ORDER BY changed_at DESC""",
                {"r": rule},
            )
            return cast(list[dict[str, Any]], await cur.fetchall())
