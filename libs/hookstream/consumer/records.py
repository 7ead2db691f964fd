"""What a handler receives: one Kafka record with the runtime's view of it."""

from __future__ import annotations

from dataclasses import dataclass, field

from hookstream.kafka.headers import ATTEMPT, EVENT_ID, ORIGINAL_OFFSET, ORIGINAL_PARTITION, ORIGINAL_TOPIC, header_str


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    timestamp_ms: int = 0

    def header(self, name: str) -> str | None:
        return header_str(self.headers, name)

    @property
    def event_id(self) -> str:
        """The producer's event id, else the record's first position (stable across retries)."""
        return self.header(EVENT_ID) or ":".join(map(str, self.origin))

    @property
    def attempt(self) -> int:
        """1 on first delivery; n on the (n-1)th retry."""
        return int(self.header(ATTEMPT) or 0) + 1

    @property
    def origin(self) -> tuple[str, int, int]:
        """Topic, partition and offset where the record was first consumed."""
        topic = self.header(ORIGINAL_TOPIC)
        if topic is None:
            return self.topic, self.partition, self.offset
        return topic, int(self.header(ORIGINAL_PARTITION) or 0), int(self.header(ORIGINAL_OFFSET) or 0)

    @property
    def ordering_key(self) -> str:
        return self.key if self.key is not None else f"{self.topic}:{self.partition}:{self.offset}"
