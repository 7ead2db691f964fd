"""Consumer groups as an operator sees them: lag per partition, and replay by resetting offsets to a time.

Replay resets a service's group on its **input** topic to the first offset at or after a time
(Kafka's ``offsetsForTimes``); the retry tiers and the redrive topic are left alone. Offsets can only
be changed while the group has no members, so a reset of a running service is refused with what to do
(stop it, reset, start it). ``kafka-consumer-groups --reset-offsets --to-datetime`` does the same on our
groups; idempotent handlers make the reprocessing safe.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from confluent_kafka import Consumer, ConsumerGroupState, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from hookstream.errors import BrokerUnavailable, ConfigurationError
from hookstream.kafka.admin import client_config, watermarks
from hookstream.settings import Brokers, KafkaConnection


class GroupActive(ConfigurationError):
    """The group has live members: its offsets cannot be reset now."""


class UnknownTopic(ConfigurationError):
    """The group's topic does not exist (yet): nothing to measure or replay."""


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None  # None: the group has committed nothing here yet
    start: int  # the low watermark: the oldest record kept
    end: int  # the high watermark

    @property
    def lag(self) -> int:
        """Records the group has still to read (all that are kept, when it has committed nothing)."""
        return self.end - (self.committed if self.committed is not None else self.start)


@dataclass(frozen=True)
class PartitionReset:
    topic: str
    partition: int
    current: int | None
    target: int

    @property
    def reprocessed(self) -> int:
        """How many records the group will read again (negative: it skips ahead)."""
        return (self.current if self.current is not None else self.target) - self.target


class GroupAdmin:
    def __init__(self, bootstrap_servers: Brokers, *, timeout_ms: int = 15_000) -> None:
        self.connection = KafkaConnection.of(bootstrap_servers)
        self.bootstrap_servers = self.connection.bootstrap_servers
        self.timeout_s = timeout_ms / 1000
        self._client: AdminClient | None = None  # made on first use: building a service connects to nothing

    @property
    def _admin(self) -> AdminClient:
        if self._client is None:
            self._client = AdminClient(client_config(self.connection))
        return self._client

    def members(self, group: str) -> int:
        """How many consumers are in the group now (0: empty or unknown)."""
        try:
            description = self._admin.describe_consumer_groups([group], request_timeout=self.timeout_s)[group].result(
                timeout=self.timeout_s
            )
        except KafkaException as exc:
            raise BrokerUnavailable(f"describing group {group!r} failed: {exc.args[0].str()}") from exc
        if description.state in (ConsumerGroupState.EMPTY, ConsumerGroupState.DEAD):
            return 0
        return max(1, len(description.members))

    def committed(self, group: str, topic: str) -> dict[int, int | None]:
        consumer = self._consumer(group)
        try:
            return self._committed(consumer, group, topic)
        finally:
            consumer.close()

    def _committed(self, consumer: Consumer, group: str, topic: str) -> dict[int, int | None]:
        """Read with a consumer of the group that never joins it, not the AdminClient's
        ListConsumerGroupOffsets: librdkafka (2.16 and before) aborts the whole process when a
        coordinator-bound admin request loses its connection (librdkafka issue 4605), which is
        what a broker restart does to the admin's periodic lag reading."""
        partitions = self._partitions(topic)
        try:
            found = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=self.timeout_s)
        except KafkaException as exc:
            raise BrokerUnavailable(f"reading the offsets of {group!r} failed: {exc.args[0].str()}") from exc
        return {tp.partition: (tp.offset if tp.offset >= 0 else None) for tp in found}

    def lag(self, group: str, topic: str) -> list[PartitionLag]:
        consumer = self._consumer(group)
        try:
            committed = self._committed(consumer, group, topic)
            found = []
            for p in sorted(committed):
                low, high = watermarks(consumer, TopicPartition(topic, p), self.timeout_s)
                found.append(PartitionLag(topic, p, committed[p], low, high))
            return found
        finally:
            consumer.close()

    def retained(self, topics: list[str]) -> dict[str, dict[int, tuple[int, int]] | None]:
        """Per topic and partition, the (low, high) watermarks: high - low records are kept. A topic that
        does not exist yet is left out (one consumer for all, so an overview stays cheap); one the broker
        cannot describe right now (its leader being elected) is None: unknown, which is not empty."""
        consumer = self._consumer()
        try:
            metadata = self._admin.list_topics(timeout=self.timeout_s).topics
            found: dict[str, dict[int, tuple[int, int]] | None] = {}
            for topic in topics:
                known = metadata.get(topic)
                if known is None:
                    continue
                if known.error is not None:
                    found[topic] = None
                    continue
                found[topic] = {
                    p: watermarks(consumer, TopicPartition(topic, p), self.timeout_s) for p in sorted(known.partitions)
                }
            return found
        except KafkaException as exc:
            names = ", ".join(topics)
            raise BrokerUnavailable(f"reading the watermarks of {names} failed: {exc.args[0].str()}") from exc
        finally:
            consumer.close()

    def plan(self, group: str, topic: str, to: datetime) -> list[PartitionReset]:
        """Per partition: where the group is and where a reset to ``to`` puts it (nothing changes yet)."""
        if to.tzinfo is None:
            raise ConfigurationError(f"give the time with its zone, e.g. {to.isoformat()}Z")
        if to.timestamp() < 0:
            raise ConfigurationError(f"{to.isoformat()} is before 1970: Kafka keeps no such times")
        committed = self.committed(group, topic)
        at_ms = int(to.timestamp() * 1000)
        consumer = self._consumer()
        try:
            found = consumer.offsets_for_times(
                [TopicPartition(topic, p, at_ms) for p in sorted(committed)], timeout=self.timeout_s
            )
            plan = []
            for tp in found:
                target = tp.offset
                if target < 0:  # nothing at or after that time: the end
                    target = watermarks(consumer, TopicPartition(topic, tp.partition), self.timeout_s)[1]
                plan.append(PartitionReset(topic, tp.partition, committed.get(tp.partition), target))
            return plan
        except KafkaException as exc:
            raise BrokerUnavailable(f"finding offsets by time on {topic!r} failed: {exc.args[0].str()}") from exc
        finally:
            consumer.close()

    def reset(self, group: str, plan: list[PartitionReset], *, service: str) -> None:
        """Move the group to the plan's offsets; refused while the group has members."""
        active = self.members(group)
        if active:
            raise GroupActive(
                f"{service} is running ({active} member(s) in {group}): stop `hookstream run {service}`"
                " (every instance), replay, then start it again"
            )
        request = ConsumerGroupTopicPartitions(group, [TopicPartition(r.topic, r.partition, r.target) for r in plan])
        try:
            self._admin.alter_consumer_group_offsets([request], request_timeout=self.timeout_s)[group].result(
                timeout=self.timeout_s
            )
        except KafkaException as exc:
            error = exc.args[0]
            if "UNKNOWN_MEMBER" in error.name() or "REBALANCE" in error.name() or "NON_EMPTY" in error.name():
                raise GroupActive(f"{service} joined {group} meanwhile; stop it and replay again") from exc
            raise BrokerUnavailable(f"resetting {group!r} failed: {error.str()}") from exc

    def _partitions(self, topic: str) -> list[int]:
        metadata = self._admin.list_topics(topic=topic, timeout=self.timeout_s)
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise UnknownTopic(f"topic {topic!r} does not exist")
        return sorted(found.partitions)

    def _consumer(self, group: str | None = None) -> Consumer:
        """A consumer that subscribes to nothing (so it never joins ``group``: it only reads its offsets)."""
        return Consumer(
            client_config(
                self.connection,
                **{"group.id": group or f"hookstream-admin-{time.time_ns()}", "enable.auto.commit": False},
            )
        )
