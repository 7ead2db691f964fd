"""Topic administration on confluent-kafka's AdminClient.

Topics are created by the services at start, idempotently, with explicit partition
counts and retention. ``wait_for_broker`` turns "nobody answers at that address"
into a timeout error that names the address instead of a silent hang, and a refused
login or an untrusted certificate into a configuration error naming the setting.

Every confluent-kafka client is configured by ``client_config``: the address and its
security (``KafkaConnection``; a bare bootstrap string is PLAINTEXT).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource
from confluent_kafka.cimpl import NewTopic
from hookstream_schemas.topics import TopicSpec

from hookstream.errors import BrokerUnavailable, ConfigurationError
from hookstream.kafka.security import librdkafka_config, librdkafka_refusal
from hookstream.settings import Brokers, KafkaConnection

log = logging.getLogger(__name__)

# librdkafka reports every failed connection attempt on its own; the timeout error says it once.
_quiet = logging.getLogger("hookstream.kafka.librdkafka")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


def new_topic(spec: TopicSpec) -> NewTopic:
    config = {"retention.ms": str(spec.retention_ms), **spec.config}
    return NewTopic(
        spec.name, num_partitions=spec.partitions, replication_factor=spec.replication_factor, config=config
    )


ClientConfig = dict[str, Any]


def client_config(bootstrap_servers: Brokers, **extra: Any) -> ClientConfig:
    """A librdkafka client's configuration: the address, its security, then ``extra``."""
    kafka = KafkaConnection.of(bootstrap_servers)
    return {
        "bootstrap.servers": kafka.bootstrap_servers,
        "logger": _quiet,
        **librdkafka_config(kafka.security),
        **extra,
    }


def wait_for_broker(bootstrap_servers: Brokers, *, timeout_ms: int = 10_000) -> int:
    """Block until the cluster answers a metadata request; return its broker count.

    Credentials the broker refuses, or a certificate the client does not trust, end the wait at
    once with a ``ConfigurationError`` naming the setting: waiting would not change them."""
    kafka = KafkaConnection.of(bootstrap_servers)
    reported: list[KafkaError] = []
    admin = AdminClient(client_config(kafka, error_cb=reported.append))
    deadline = time.monotonic() + timeout_ms / 1000
    last_error: object = None
    while time.monotonic() < deadline:
        remaining = max(0.1, deadline - time.monotonic())
        try:
            # Short requests: librdkafka reports a refused login (error_cb, served by poll) long before
            # a metadata request gives up.
            metadata = admin.list_topics(timeout=min(remaining, 1.0))
            return len(metadata.brokers)
        except KafkaException as exc:
            last_error = exc
        admin.poll(0)
        for error in reported:
            refused = librdkafka_refusal(kafka, error)
            if refused is not None:
                raise refused
        said = [e.str() for e in reported if e.code() != KafkaError._ALL_BROKERS_DOWN]
        last_error = said[-1] if said else last_error  # "Connection refused" says more than "transport failure"
        reported.clear()
    raise BrokerUnavailable(
        f"Kafka at {kafka.bootstrap_servers!r} did not answer within {timeout_ms} ms"
        f" (last error: {last_error}); check KAFKA_BOOTSTRAP_SERVERS and KAFKA_SECURITY_PROTOCOL"
        f" (now {kafka.security.protocol}) or start the local stack with `hookstream dev up`"
    )


class TopicAdmin:
    def __init__(self, bootstrap_servers: Brokers, *, request_timeout_ms: int = 30_000) -> None:
        self.connection = KafkaConnection.of(bootstrap_servers)
        self.bootstrap_servers = self.connection.bootstrap_servers
        self.request_timeout_ms = request_timeout_ms
        self._admin = AdminClient(client_config(self.connection))

    def ensure_topics(self, specs: list[TopicSpec]) -> dict[str, bool]:
        """Create the topics that do not exist yet; return ``{name: created}``.

        A topic that already exists is left as it is (a second call is a no-op), but
        a partition count below the spec is reported, since keyed ordering depends on it.
        """
        specs = list({s.name: s for s in specs}.values())  # two parts may declare the same contract topic
        if not specs:
            return {}
        timeout_s = self.request_timeout_ms / 1000
        futures = self._admin.create_topics(
            [new_topic(s) for s in specs], request_timeout=timeout_s, operation_timeout=timeout_s
        )
        created: dict[str, bool] = {}
        for spec in specs:
            try:
                futures[spec.name].result(timeout=timeout_s)
                created[spec.name] = True
                log.info("topic created", extra={"topic": spec.name, "partitions": spec.partitions})
            except KafkaException as exc:
                error = exc.args[0]
                if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    created[spec.name] = False
                    self._check_partitions(spec)
                elif error.code() in (KafkaError.INVALID_REPLICATION_FACTOR, KafkaError.INVALID_CONFIG):
                    raise ConfigurationError(f"topic {spec.name!r}: {error.str()}") from exc
                else:
                    raise BrokerUnavailable(
                        f"creating topic {spec.name!r} on {self.bootstrap_servers!r} failed: {error.str()}"
                    ) from exc
        self._await_leaders([s.name for s in specs])
        return created

    def _await_leaders(self, names: list[str]) -> None:
        """Return once every partition of these topics (new, or just made by another service) has a leader.

        A client that subscribes or produces in the moment after creation otherwise logs "topic not
        found in cluster metadata" or fails with an unknown partition, once per topic and service."""
        deadline = time.monotonic() + self.request_timeout_ms / 1000
        pending = set(names)
        while pending and time.monotonic() < deadline:
            metadata = self._admin.list_topics(timeout=max(0.1, deadline - time.monotonic()))
            for name in list(pending):
                if _has_leaders(metadata.topics.get(name)):
                    pending.discard(name)
            if pending:
                time.sleep(0.05)

    def _check_partitions(self, spec: TopicSpec) -> None:
        existing = self.partition_count(spec.name)
        if existing < spec.partitions:
            log.warning(
                "topic has fewer partitions than configured",
                extra={"topic": spec.name, "partitions": existing, "configured": spec.partitions},
            )

    def partition_count(self, topic: str) -> int:
        metadata = self._admin.list_topics(topic=topic, timeout=self.request_timeout_ms / 1000)
        return len(metadata.topics[topic].partitions)

    def topic_config(self, topic: str) -> dict[str, str]:
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
        futures = self._admin.describe_configs([resource], request_timeout=self.request_timeout_ms / 1000)
        entries = futures[resource].result(timeout=self.request_timeout_ms / 1000)
        return {name: entry.value for name, entry in entries.items()}

    def delete_topics(self, names: list[str]) -> None:
        if not names:
            return
        timeout_s = self.request_timeout_ms / 1000
        for future in self._admin.delete_topics(names, operation_timeout=timeout_s).values():
            try:
                future.result(timeout=timeout_s)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise


def _has_leaders(topic: Any) -> bool:
    if topic is None or topic.error is not None or not topic.partitions:
        return False
    return all(p.leader >= 0 and p.error is None for p in topic.partitions.values())


def watermarks(consumer: Consumer, tp: TopicPartition, timeout_s: float) -> tuple[int, int]:
    """A partition's low and high watermarks, retried while a new topic's partition has no leader yet.

    librdkafka does not mark NOT_LEADER_FOR_PARTITION retriable here, though a just-created topic
    answers it for a moment (the DLQ reader and the outbox relay's marker read both meet it)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=timeout_s)
            return int(low), int(high)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            transient = error.retriable() or error.code() in _NO_LEADER_YET
            if not transient or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


_NO_LEADER_YET = frozenset(
    {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE, KafkaError._UNKNOWN_PARTITION}
)
