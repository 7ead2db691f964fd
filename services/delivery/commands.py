"""``hookstream deliveries retry|recover``: send deliveries again, by hand, in their original order."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from hookstream.db import Database
from hookstream.errors import ConfigurationError
from hookstream.kafka import Producer
from hookstream.kafka.headers import decode_headers
from hookstream_services.delivery.deliveries import DeliveryLog
from hookstream_services.delivery.handlers import DELIVERIES_TOPIC, DELIVERY, SUBSCRIPTION


async def resend(
    db: Database,
    producer: Producer,
    *,
    delivery: str | None = None,
    subscription_id: str | None = None,
    since: datetime | None = None,
    topic: str = DELIVERIES_TOPIC,
    on_progress: Callable[[dict[str, Any]], None] = lambda row: None,
) -> int:
    """Mark the deliveries pending and queue them on ``deliveries.v1`` (same key: order kept); return the count."""
    log = DeliveryLog(db)
    rows = await log.for_retry(delivery=delivery, subscription_id=subscription_id, since=since)
    if delivery is not None and not rows:
        raise ConfigurationError(f"no delivery {delivery!r}")
    if delivery is not None and rows[0]["status"] == "delivered":
        raise ConfigurationError(f"{delivery} was delivered already; nothing to retry")
    for row in rows:
        await log.mark(row["id"], "pending")
        headers = [
            *decode_headers(row["headers"]),
            (SUBSCRIPTION, str(row["subscription_id"]).encode()),
            (DELIVERY, str(row["id"]).encode()),
        ]
        await producer.send(
            topic, bytes(row["value"]), key=f"{row['subscription_id']}:{row['order_id']}", headers=headers
        )
        on_progress(row)
    return len(rows)
