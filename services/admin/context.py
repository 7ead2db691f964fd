"""What every admin handler works with: the stores, a producer, Kafka's group admin and the registry's consumers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from hookstream.db import BoundDatabase, Database
from hookstream.http.outbound.sender import Sender
from hookstream.kafka import Producer
from hookstream.kafka.groups import GroupAdmin
from hookstream.registry import ConsumerGroup
from hookstream.secretbox import Keyring
from hookstream.sensors import Sensor
from hookstream.store import audit
from hookstream.store.deliveries import DeliveryLog
from hookstream.store.orders import OrderStore
from hookstream.store.pulse import Pulse
from hookstream.store.subscriptions import SubscriptionStore
from hookstream.store.tokens import Token, TokenStore
from hookstream_services.admin.auth import Refusals


class Context:
    def __init__(
        self,
        db: Database,
        producer: Producer,
        *,
        deliveries_topic: str,
        groups: GroupAdmin,
        consumers: Callable[[], Mapping[str, ConsumerGroup]],
        sender: Sender,
        keyring: Keyring,
        sensors: Sensor | None = None,
    ) -> None:
        self.db = db
        self.refused = Refusals(sensors or Sensor())
        self.keyring = keyring
        self.producer = producer
        self.deliveries_topic = deliveries_topic
        self.groups = groups
        self._find_consumers = consumers
        self._consumers: Mapping[str, ConsumerGroup] | None = None
        self.sender = sender
        self.tokens = TokenStore(db)
        self.subscriptions = SubscriptionStore(db, keyring)
        self.deliveries = DeliveryLog(db)
        self.orders = OrderStore(db)
        self.pulse = Pulse(db)
        self.cache: dict[str, tuple[float, Any]] = {}  # built answers kept for a few seconds (the overview)

    def consumers(self) -> Mapping[str, ConsumerGroup]:
        """Every registered consumer, resolved on first use (see ``AdminService``)."""
        if self._consumers is None:
            self._consumers = self._find_consumers()
        return self._consumers

    async def audit(self, token: Token, action: str, target: str, before: object, after: object) -> None:
        """Record what was done outside the database (a retry queued on Kafka, a replay, a redrive), once done."""
        async with self.db.connection() as conn:
            await audit.record(conn, token.actor, action, target, before, after)

    @asynccontextmanager
    async def change(self, token: Token) -> AsyncIterator[Change]:
        """A change to the database and its audit entry in one transaction: both or neither."""
        async with self.db.transaction() as conn:
            yield Change(conn, token, self.keyring)


class Change:
    def __init__(self, conn: psycopg.AsyncConnection[dict[str, object]], token: Token, keyring: Keyring) -> None:
        self.conn = conn
        self.token = token
        self.subscriptions = SubscriptionStore(BoundDatabase(conn), keyring)

    async def audit(self, action: str, target: str, before: object, after: object) -> None:
        await audit.record(self.conn, self.token.actor, action, target, before, after)
