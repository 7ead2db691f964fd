"""Kafka adapters: the idempotent producer, topic administration and header names."""

from hookstream_schemas.topics import TopicSpec

from hookstream.kafka.admin import TopicAdmin, wait_for_broker
from hookstream.kafka.producer import Producer

__all__ = ["Producer", "TopicAdmin", "TopicSpec", "wait_for_broker"]
