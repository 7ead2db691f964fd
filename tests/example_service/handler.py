"""Records its input once per event; a value of ``fail`` is a permanent error (the dead-letter path)."""

from __future__ import annotations

from hookstream.consumer import Record, first_time
from hookstream.db import Database
from hookstream.errors import PermanentError


class Remember:
    def __init__(self, service: str, db: Database) -> None:
        self.service = service
        self.db = db

    async def __call__(self, record: Record) -> None:
        if record.value == b"fail":
            raise PermanentError("the example refuses 'fail'")
        async with self.db.transaction() as conn:
            if await first_time(conn, self.service, record.event_id):
                await conn.execute(
                    "INSERT INTO example_events (service, event_id, key) VALUES (%s, %s, %s)",
                    (self.service, record.event_id, record.key),
                )
