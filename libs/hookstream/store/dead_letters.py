"""Which dead letters were sent back (``dlq_redrives``), so the same one is not redriven twice by accident."""

from __future__ import annotations

from hookstream.db import Database


class RedriveLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def redriven(self, service: str) -> set[tuple[int, int]]:
        """(partition, offset) of every dead letter of ``service`` redriven so far."""
        async with self.db.connection() as conn:
            cur = await conn.execute('SELECT partition, "offset" FROM dlq_redrives WHERE service = %s', (service,))
            return {(int(str(r["partition"])), int(str(r["offset"]))) for r in await cur.fetchall()}

    async def record(self, service: str, partition: int, offset: int) -> None:
        async with self.db.connection() as conn:
            await conn.execute(
                """INSERT INTO dlq_redrives (service, partition, "offset") VALUES (%s, %s, %s)
                   ON CONFLICT (service, partition, "offset") DO UPDATE SET redriven_at = now()""",
                (service, partition, offset),
            )
