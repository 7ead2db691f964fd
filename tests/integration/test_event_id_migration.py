"""Upgrading to channel-namespaced event ids keeps the dedupe: a webhook the normalizer handled before
migration 0017 is still a duplicate when its channel sends it again afterwards."""

from __future__ import annotations

import psycopg
from hookstream.db import apply_migrations
from hookstream.db.migrations import bundled_migrations


async def test_earlier_markers_are_copied_under_their_namespaced_ids(database_url: str) -> None:
    before = [m for m in bundled_migrations() if m.version < 17]
    await apply_migrations(database_url, before)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(
            """INSERT INTO processed_events (service, event_id) VALUES
                   ('normalizer', 'b54557e4'), ('normalizer', 'evt_9'), ('normalizer', 'never-applied')"""
        )
        await conn.execute(
            """INSERT INTO order_timeline (order_id, event_id, type, occurred_at, outcome, channel) VALUES
                   ('shopify:1', 'b54557e4', 'order.created', now(), 'applied', 'shopify'),
                   ('shopify:1', 'evt_9', 'order.paid', now(), 'applied', NULL)"""
        )
    await apply_migrations(database_url)
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute("SELECT event_id FROM processed_events WHERE service = 'normalizer' ORDER BY 1")
        markers = [row[0] for row in await cur.fetchall()]
    assert markers == ["b54557e4", "evt_9", "never-applied", "shopify:b54557e4", "shopify:evt_9"]
