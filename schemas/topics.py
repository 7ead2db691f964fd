"""Every topic's name and shape in one place: the contract topics, and the names each service derives.

Contract topics (versioned, keyed by order id) carry Avro values described by ``<name>.avsc``
beside this module. Service topics (retry tiers, dead letters, redrive, outbox markers) are named
after the consumer service that owns them, ``hookstream.<service>.<purpose>``. Services, tools
and the admin read names and specs from here; nothing spells a topic name twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

DAY_MS = 24 * 3600 * 1000
DEFAULT_PARTITIONS = 6


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int  # -1: kept forever (compacted topics)
    replication_factor: int = -1  # -1: the broker's default.replication.factor
    config: dict[str, str] = field(default_factory=dict)

    def renamed(self, name: str) -> TopicSpec:
        """The same shape under another name (tests run private pipelines side by side)."""
        return replace(self, name=name)


RAW = TopicSpec("webhooks.raw.v1", 12, 7 * DAY_MS)  # the upper bound of normalizer replicas
RAW_DLQ = TopicSpec("webhooks.raw.v1.dlq", DEFAULT_PARTITIONS, 30 * DAY_MS)
ORDER_EVENTS = TopicSpec("orders.events.v1", DEFAULT_PARTITIONS, 30 * DAY_MS)
RISK = TopicSpec("orders.risk.v1", DEFAULT_PARTITIONS, 30 * DAY_MS)  # risk verdicts, keyed by order id
FULFILLMENT = TopicSpec("orders.fulfillment.v1", DEFAULT_PARTITIONS, 30 * DAY_MS)  # the fulfillment chain's steps
DELIVERIES = TopicSpec("deliveries.v1", DEFAULT_PARTITIONS, 7 * DAY_MS)
ALERTS = TopicSpec("hookstream.alerts", 1, 28 * DAY_MS)

CONTRACTS = (RAW, RAW_DLQ, ORDER_EVENTS, RISK, FULFILLMENT, DELIVERIES, ALERTS)

# `hookstream dev up` returns once a produce to this topic is acknowledged (tooling only).
DEV_READY = TopicSpec("hookstream.dev.ready", 1, 3_600_000, config={"segment.ms": "3600000"})

RETRY_RETENTION_MS = 7 * DAY_MS
DLQ_RETENTION_MS = 30 * DAY_MS


def group_id(service: str) -> str:
    return f"hookstream.{service}"


def retry_topic(service: str, delay_label: str) -> str:
    return f"hookstream.{service}.retry.{delay_label}"


def dlq_topic(service: str) -> str:
    return f"hookstream.{service}.dlq"


def redrive_topic(service: str) -> str:
    return f"hookstream.{service}.redrive"


def outbox_topic(service: str) -> str:
    """Markers naming the outbox rows each relay transaction carried (compacted, one partition)."""
    return f"hookstream.{service}.outbox"


def outbox_spec(service: str) -> TopicSpec:
    return TopicSpec(outbox_topic(service), 1, -1, config={"cleanup.policy": "compact"})
