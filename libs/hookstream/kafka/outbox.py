"""Transactional outbox: records written in the effect's Postgres transaction reach Kafka exactly once.

``add_to_outbox`` inserts the record in the caller's transaction. ``OutboxRelay`` publishes the
rows in id order inside a Kafka transaction that also writes a marker record naming the ids it
carries and their database (to ``hookstream.<service>.outbox``), then deletes those rows. If the relay dies after the
Kafka commit but before the delete, its successor reads the last committed marker and deletes
those rows first, so nothing is published twice; if it dies before the commit, the transaction is
aborted and read_committed consumers never see it. One relay per service holds a Postgres
advisory lock; the fixed ``transactional.id`` fences a zombie predecessor.

Rows of one key come from transactions that lock the same row in turn, so they commit in id
order and the relay publishes them in that order. A row whose id is below rows already sent (a
slow transaction of another key) is still sent: the relay takes every row left, not "id > last".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
import zlib
from typing import Any

import psycopg
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka import Producer as _RdProducer
from hookstream_schemas.topics import TopicSpec, outbox_spec, outbox_topic

from hookstream.db import Database
from hookstream.errors import HookstreamError
from hookstream.kafka.admin import client_config, watermarks
from hookstream.kafka.headers import HeaderList, decode_headers, encode_headers
from hookstream.lifecycle import Lifecycle, cancel
from hookstream.outage import Outage
from hookstream.sensors import Sensor
from hookstream.settings import Brokers, KafkaConnection

log = logging.getLogger("hookstream.outbox")


def marker_topic(service: str) -> str:
    name: str = outbox_topic(service)
    return name


def notify_channel(service: str) -> str:
    """The Postgres channel a commit with outbox rows notifies (a short identifier whatever the service name)."""
    return f"hookstream_outbox_{zlib.crc32(service.encode()):08x}"


async def add_to_outbox(
    conn: psycopg.AsyncConnection[Any],
    service: str,
    topic: str,
    key: str,
    event_id: str,
    value: bytes,
    headers: HeaderList,
) -> None:
    """Queue one record in the caller's transaction (a second one with the same event id is dropped)."""
    await add_many_to_outbox(conn, service, topic, [(key, event_id, value, headers)])


async def add_many_to_outbox(
    conn: psycopg.AsyncConnection[Any], service: str, topic: str, rows: list[tuple[str, str, bytes, HeaderList]]
) -> None:
    """``add_to_outbox`` for (key, event_id, value, headers) rows, in one statement, ids in list order.

    The same statement notifies the relay's channel; Postgres delivers it at commit, to the relay
    of this service in whichever process leads it."""
    if not rows:
        return
    await conn.execute(
        """WITH added AS (
               INSERT INTO outbox (service, topic, key, event_id, value, headers)
               SELECT %s, %s, r.key, r.event_id, r.value, r.headers
               FROM unnest(%s::text[], %s::text[], %s::bytea[], %s::text[])
                   WITH ORDINALITY AS r(key, event_id, value, headers, n)
               ORDER BY r.n
               ON CONFLICT (service, event_id) DO NOTHING)
           SELECT pg_notify(%s, '')""",
        (
            service,
            topic,
            [k for k, _, _, _ in rows],
            [e for _, e, _, _ in rows],
            [v for _, _, v, _ in rows],
            [encode_headers(h) for _, _, _, h in rows],
            notify_channel(service),
        ),
    )


class OutboxRelay(Lifecycle):
    def __init__(
        self,
        service: str,
        bootstrap_servers: Brokers,
        db: Database,
        database_url: str,
        *,
        batch_size: int = 500,
        idle_poll_ms: int = 5_000,
        transaction_timeout_ms: int = 60_000,
        sensors: Sensor | None = None,
    ) -> None:
        self.service = service
        self.connection = KafkaConnection.of(bootstrap_servers)
        self.bootstrap_servers = self.connection.bootstrap_servers
        self.db = db
        self.database_url = database_url
        self.batch_size = batch_size
        self.idle_poll_s = idle_poll_ms / 1000
        self.transaction_timeout_ms = transaction_timeout_ms
        self.published = 0
        self.sensors = sensors or Sensor()
        self._depth_counted_at = 0.0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._producer: _RdProducer | None = None
        self._lock_conn: psycopg.AsyncConnection[Any] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._database = ""
        self._outage = Outage(f"outbox relay {service}", log, service=service)

    def wake(self) -> None:
        """Rows were just committed in this process: publish them now, without waiting for the notification."""
        self._wake.set()

    def topics(self) -> list[TopicSpec]:
        return [outbox_spec(self.service)]

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"outbox-{self.service}")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel(self._task)
            self._task = None
        await self._release()

    async def _release(self) -> None:
        """Stop listening and close the lock connection (which gives up the advisory lock). Either may
        have failed already (the database went away): that is why we are releasing them."""
        await cancel(self._listener)
        self._listener = None
        self._producer = None  # a successor's init_transactions fences it
        if self._lock_conn is not None:
            with contextlib.suppress(psycopg.Error):
                await self._lock_conn.close()
            self._lock_conn = None

    async def ready(self) -> list[tuple[str, bool, str]]:
        name = f"outbox relay {self.service}"
        if self._task is None or self._task.done():
            return [(name, False, "not running")]
        if self._outage.ongoing:
            return [(name, False, "reconnecting to PostgreSQL or Kafka")]
        return [(name, True, "leading" if self._producer is not None else "standing by for the lock")]

    async def wait(self) -> None:
        """Raise if the relay stopped with an error (a fenced or fatal producer)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def _run(self) -> None:
        while True:
            try:
                await self._lead()
                return
            except asyncio.CancelledError:
                raise
            except (psycopg.OperationalError, KafkaException, HookstreamError) as exc:
                # The database restarted (the lock connection and its LISTEN went with it), or the broker
                # did (init_transactions timing out while the coordinator aborts a dead predecessor's
                # transaction; a commit cut short): start over. Nothing is published twice (see the marker).
                if isinstance(exc, HookstreamError) and not exc.retriable:
                    raise
                self._outage.failed(exc, "outbox relay")
                await self._release()
                await asyncio.sleep(1)

    async def _lead(self) -> None:
        """Wait to be the one relay of this service, then publish until cancelled.

        Idle, it sleeps until a commit notifies it (``notify_channel``; ``wake()`` in the writing
        process), polling only every ``idle_poll_ms`` as a safety net."""
        self._lock_conn = lock_conn = await psycopg.AsyncConnection.connect(self.database_url, autocommit=True)
        lock_id = zlib.crc32(f"hookstream.outbox.{self.service}".encode())
        while True:
            cur = await lock_conn.execute("SELECT pg_try_advisory_lock(%s)", (lock_id,))
            row = await cur.fetchone()
            self._outage.recovered()  # a standby is well once it can ask for the lock
            if row is not None and row[0]:
                break
            await asyncio.sleep(1)
        await lock_conn.execute(f"LISTEN {notify_channel(self.service)}")
        self._listener = listener = asyncio.get_running_loop().create_task(self._listen(lock_conn))
        listener.add_done_callback(lambda _: self._wake.set())
        self._producer = await asyncio.to_thread(self._transactional_producer)
        self._database = await self._database_identity()
        await self._forget_published(await asyncio.to_thread(self._last_marker))
        log.info("outbox relay leading", extra={"service": self.service})
        while True:
            rows = await self._next_rows()
            await self._report_depth(len(rows))
            if not rows:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.idle_poll_s):
                        await self._wake.wait()
                if listener.done():
                    listener.result()  # the lock connection broke: the advisory lock went with it
                    raise _Retry("the outbox relay's lock connection closed")
                continue
            ids = [int(r["id"]) for r in rows]
            await asyncio.to_thread(self._publish, rows, ids)
            await self._forget_published(ids)
            self.published += len(ids)

    async def _listen(self, conn: psycopg.AsyncConnection[Any]) -> None:
        async for _ in conn.notifies():
            self._wake.set()

    def _transactional_producer(self) -> _RdProducer:
        producer = _RdProducer(
            client_config(
                self.connection,
                **{
                    "transactional.id": f"hookstream.{self.service}.outbox",
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": 5,
                    "compression.type": "lz4",
                    "transaction.timeout.ms": self.transaction_timeout_ms,
                },
            )
        )
        producer.init_transactions(30)
        return producer

    async def _database_identity(self) -> str:
        """Which database the outbox ids belong to: the cluster's system identifier and the database's
        oid. A marker written for another database (recreated, or another one using the same broker)
        names ids that mean nothing here, and trusting it would delete rows never published."""
        async with self.db.connection() as conn:
            cur = await conn.execute(
                """SELECT (SELECT system_identifier FROM pg_control_system())::text || ':' || d.oid::text AS identity
                   FROM pg_database d WHERE d.datname = current_database()"""
            )
            row = await cur.fetchone()
        assert row is not None
        return str(row["identity"])

    def _last_marker(self) -> list[int]:
        """The ids named by the last committed marker of this service for this database (empty if none)."""
        topic = marker_topic(self.service)
        consumer = Consumer(
            client_config(
                self.connection,
                **{
                    "group.id": f"hookstream-outbox-reader-{uuid.uuid4().hex}",
                    "enable.auto.commit": False,
                    "isolation.level": "read_committed",
                },
            )
        )
        try:
            low, high = watermarks(consumer, TopicPartition(topic, 0), 10)
            if high <= low:
                return []
            ids: list[int] = []
            # Each transaction adds one marker and one commit control record; look back a little, then all.
            for start in (max(low, high - 50), low):
                consumer.assign([TopicPartition(topic, 0, start)])
                position = start
                while position < high:
                    message = consumer.poll(5)
                    if message is None:
                        break
                    if message.error() is None and message.key() == self.service.encode():
                        ids = self._marker_ids(message.value() or b"[]")
                    position = (message.offset() or position) + 1
                if ids:
                    break
            return ids
        finally:
            consumer.close()

    def _marker_ids(self, value: bytes) -> list[int]:
        marker = json.loads(value)
        # A marker of another database, or one from before markers named theirs, is not trusted: at worst
        # this database's last batch is published once more (consumers dedupe by event id), never lost.
        if not isinstance(marker, dict) or marker.get("database") != self._database:
            return []
        return [int(i) for i in marker.get("ids", [])]

    async def _report_depth(self, fetched: int) -> None:
        """A batch not full is the whole outbox; behind a full one, count (at most every 5 s: it scans the backlog)."""
        if fetched < self.batch_size:
            self.sensors.on_outbox_depth(self.service, fetched)
            return
        if time.monotonic() - self._depth_counted_at < 5:
            return
        self._depth_counted_at = time.monotonic()
        async with self.db.connection() as conn:
            cur = await conn.execute("SELECT count(*) AS n FROM outbox WHERE service = %s", (self.service,))
            row = await cur.fetchone()
        self.sensors.on_outbox_depth(self.service, int(str(row["n"])) if row else 0)

    async def _next_rows(self) -> list[dict[str, Any]]:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                """SELECT id, topic, key, value, headers FROM outbox
                   WHERE service = %s ORDER BY id LIMIT %s""",
                (self.service, self.batch_size),
            )
            return list(await cur.fetchall())

    def _publish(self, rows: list[dict[str, Any]], ids: list[int]) -> None:
        producer = self._producer
        assert producer is not None
        producer.begin_transaction()
        try:
            for row in rows:
                headers: list[tuple[str, str | bytes | None]] = list(decode_headers(row["headers"]))
                producer.produce(row["topic"], bytes(row["value"]), key=row["key"], headers=headers)
                producer.poll(0)
            marker = {"database": self._database, "ids": ids}
            producer.produce(marker_topic(self.service), json.dumps(marker).encode(), key=self.service)
            producer.commit_transaction(self.transaction_timeout_ms / 1000)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.txn_requires_abort():
                producer.abort_transaction(self.transaction_timeout_ms / 1000)
                raise _Retry(f"outbox transaction aborted: {error.str()}") from exc
            if error.retriable() or error.fatal():
                # Fatal is what a fenced producer sees when another relay took over (it held the
                # advisory lock after our connection dropped): step down and wait for the lock again.
                raise _Retry(f"outbox transaction failed: {error.str()}") from exc
            raise HookstreamError(f"outbox producer failed for good: {error.str()}") from exc

    async def _forget_published(self, ids: list[int]) -> None:
        if not ids:
            return
        async with self.db.connection() as conn:
            await conn.execute("DELETE FROM outbox WHERE service = %s AND id = ANY(%s)", (self.service, ids))


class _Retry(HookstreamError):
    retriable = True
