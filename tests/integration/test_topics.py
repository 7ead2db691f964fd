from __future__ import annotations

from hookstream.kafka import TopicAdmin, TopicSpec


def test_creating_topics_twice_is_a_noop(topic_admin: TopicAdmin, unique_name: str) -> None:
    specs = [
        TopicSpec(f"{unique_name}.a", partitions=4, retention_ms=86_400_000),
        TopicSpec(f"{unique_name}.b", partitions=2, retention_ms=3_600_000, config={"cleanup.policy": "compact"}),
    ]
    assert topic_admin.ensure_topics(specs) == {s.name: True for s in specs}
    assert topic_admin.ensure_topics(specs) == {s.name: False for s in specs}

    assert topic_admin.partition_count(specs[0].name) == 4
    assert topic_admin.partition_count(specs[1].name) == 2
    assert topic_admin.topic_config(specs[0].name)["retention.ms"] == "86400000"
    config_b = topic_admin.topic_config(specs[1].name)
    assert config_b["retention.ms"] == "3600000"
    assert config_b["cleanup.policy"] == "compact"


def test_existing_topic_is_left_as_it_is(topic_admin: TopicAdmin, unique_name: str) -> None:
    topic_admin.ensure_topics([TopicSpec(unique_name, partitions=2, retention_ms=60_000)])
    # A later start with other numbers does not silently repartition (that would break key order).
    assert topic_admin.ensure_topics([TopicSpec(unique_name, partitions=5, retention_ms=120_000)]) == {
        unique_name: False
    }
    assert topic_admin.partition_count(unique_name) == 2
    assert topic_admin.topic_config(unique_name)["retention.ms"] == "60000"
