"""Error classes that carry their retry policy, in the manner of aiokafka.

``retriable`` tells the consumer runtime (and any caller) whether trying the same
operation again later can succeed. ``HookstreamError`` messages are written for the
person reading them: what went wrong and what to do.
"""

from __future__ import annotations


class HookstreamError(Exception):
    retriable = False


class ConfigurationError(HookstreamError):
    """A setting is missing or wrong; fix the configuration and start again."""


class UnknownService(ConfigurationError):
    """No registered service has that name."""


class BrokerUnavailable(HookstreamError):
    """Kafka did not answer in time."""

    retriable = True


class ProducerQueueFull(HookstreamError):
    """The local producer buffer is full; back off and try again."""

    retriable = True


class DeliveryFailed(HookstreamError):
    """The broker refused or lost a record; ``retriable`` follows librdkafka's verdict."""

    def __init__(self, message: str, *, retriable: bool) -> None:
        super().__init__(message)
        self.retriable = retriable


class DatabaseUnavailable(HookstreamError):
    retriable = True


class MigrationError(HookstreamError):
    """A migration failed, an applied migration was edited afterwards, or the database lacks what the
    code expects (a table, a column): a consumer stops on it rather than fail its records."""


class SchemaError(HookstreamError):
    """An Avro schema is missing, invalid, or a record does not match it."""


class DevStackError(HookstreamError):
    """The local Kafka/PostgreSQL stack could not be prepared or started."""


class RetriableError(HookstreamError):
    """Raised by a handler: the effect failed for a reason that may pass (a partner is down); retry later.

    ``retry_after_ms`` (e.g. from a partner's Retry-After) makes the next attempt wait at least that long."""

    retriable = True

    def __init__(self, message: str, *, retry_after_ms: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms


class PermanentError(HookstreamError):
    """Raised by a handler: this record can never succeed as it is (invalid payload); dead-letter it."""


class SecretsKeysMissing(ConfigurationError):
    """HOOKSTREAM_SECRETS_KEYS is not set where partner secrets are read or written."""


class SecretsKeysInvalid(ConfigurationError):
    """HOOKSTREAM_SECRETS_KEYS is malformed; the message says which part (never the key itself)."""


class UnknownSecretsKey(ConfigurationError):
    """A stored value was sealed with a key id HOOKSTREAM_SECRETS_KEYS does not have; the message names it."""

    def __init__(self, message: str, *, key_id: str) -> None:
        super().__init__(message)
        self.key_id = key_id


class SealedValueUnreadable(ConfigurationError):
    """A stored value does not decrypt: the key under its id is not the one it was sealed with, or the
    value was altered or copied from another row."""
