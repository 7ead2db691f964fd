"""The one seam instrumentation plugs into, in the manner of faust-streaming's sensors.

The consumer runtime, the producer, ingress and delivery report what happens to a ``Sensors``
set they are given; every registered ``Sensor`` hears it. The metrics sensor (Prometheus, for
``/metrics``) subscribes now; tracing subscribes through the same methods later. A sensor
overrides only the events it cares about; the base class ignores them all. Sensors run inline
on the hot path: they count and time, they never block or do I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hookstream.consumer.records import Record


class Sensor:
    # the consumer runtime
    def on_record_in(self, service: str, record: Record) -> None:
        """A record was fetched and is queued for its key."""

    def on_record_started(self, service: str, record: Record) -> None:
        """The handler is about to run on the record (in the task that runs it)."""

    def on_record_handled(self, service: str, record: Record, seconds: float) -> None:
        """The handler finished the record."""

    def on_record_retried(self, service: str, record: Record, tier: str, error: BaseException) -> None:
        """The record failed and went to a retry tier (``tier`` is its delay label)."""

    def on_record_dead_lettered(self, service: str, record: Record, error: BaseException) -> None:
        """The record failed for good and went to the dead-letter topic."""

    def on_record_abandoned(self, service: str, record: Record, error: BaseException | None) -> None:
        """The attempt ended without an outcome: cancelled (shutdown, rebalance) or the service stopped."""

    def on_record_parked(self, service: str, record: Record) -> None:
        """The record waits behind an earlier record of its key that is being retried."""

    def on_record_released(self, service: str, record: Record) -> None:
        """A parked record was run after its blocker finished."""

    def on_committed(self, service: str, topic: str, partition: int, offset: int) -> None:
        """The group committed ``offset`` for a partition."""

    def on_lag(self, service: str, topic: str, partition: int, lag: int) -> None:
        """Records behind the high watermark on an input partition."""

    def on_parked_keys(self, service: str, keys: int) -> None:
        """Ordering keys held behind a record in a retry tier, as far as this instance knows (with the lag)."""

    # the producer
    def on_produced(self, topic: str, error: BaseException | None) -> None:
        """The broker acknowledged a record (``error`` None) or the producer gave it up."""

    # HTTP in (ingress) and out (delivery)
    def on_http_request(self, channel: str, status: int, seconds: float) -> None:
        """Ingress answered a webhook."""

    def on_auth_refused(self, service: str, reason: str) -> None:
        """A request's token was missing, unknown, revoked or expired (the admin API)."""

    def on_http_attempt(self, endpoint: str, outcome: str, status: int | None, seconds: float) -> None:
        """Delivery made one request to a partner endpoint (``endpoint`` is its subscription id)."""

    def on_circuit(self, endpoint: str, is_open: bool) -> None:
        """An endpoint's circuit breaker opened (or stayed open after a failed probe), or closed."""

    def on_endpoint_disabled(self, endpoint: str, reason: str) -> None:
        """Delivery disabled an endpoint (410 Gone, or failing longer than the limit)."""

    # the transactional outbox
    def on_outbox_depth(self, service: str, rows: int) -> None:
        """Rows waiting in ``service``'s outbox when its relay last looked."""


class Sensors(Sensor):
    """Every registered sensor, called in order."""

    def __init__(self, sensors: list[Sensor] | None = None) -> None:
        self.sensors: list[Sensor] = list(sensors or [])

    def add(self, sensor: Sensor) -> None:
        self.sensors.append(sensor)

    def with_(self, *extra: Sensor) -> Sensors:
        """A set with these sensors too (a consumer's own counters, for instance)."""
        return Sensors([*self.sensors, *extra])

    def on_record_in(self, service: str, record: Record) -> None:
        for s in self.sensors:
            s.on_record_in(service, record)

    def on_record_started(self, service: str, record: Record) -> None:
        for s in self.sensors:
            s.on_record_started(service, record)

    def on_record_handled(self, service: str, record: Record, seconds: float) -> None:
        for s in self.sensors:
            s.on_record_handled(service, record, seconds)

    def on_record_abandoned(self, service: str, record: Record, error: BaseException | None) -> None:
        for s in self.sensors:
            s.on_record_abandoned(service, record, error)

    def on_record_retried(self, service: str, record: Record, tier: str, error: BaseException) -> None:
        for s in self.sensors:
            s.on_record_retried(service, record, tier, error)

    def on_record_dead_lettered(self, service: str, record: Record, error: BaseException) -> None:
        for s in self.sensors:
            s.on_record_dead_lettered(service, record, error)

    def on_record_parked(self, service: str, record: Record) -> None:
        for s in self.sensors:
            s.on_record_parked(service, record)

    def on_record_released(self, service: str, record: Record) -> None:
        for s in self.sensors:
            s.on_record_released(service, record)

    def on_committed(self, service: str, topic: str, partition: int, offset: int) -> None:
        for s in self.sensors:
            s.on_committed(service, topic, partition, offset)

    def on_lag(self, service: str, topic: str, partition: int, lag: int) -> None:
        for s in self.sensors:
            s.on_lag(service, topic, partition, lag)

    def on_parked_keys(self, service: str, keys: int) -> None:
        for s in self.sensors:
            s.on_parked_keys(service, keys)

    def on_produced(self, topic: str, error: BaseException | None) -> None:
        for s in self.sensors:
            s.on_produced(topic, error)

    def on_http_request(self, channel: str, status: int, seconds: float) -> None:
        for s in self.sensors:
            s.on_http_request(channel, status, seconds)

    def on_auth_refused(self, service: str, reason: str) -> None:
        for s in self.sensors:
            s.on_auth_refused(service, reason)

    def on_http_attempt(self, endpoint: str, outcome: str, status: int | None, seconds: float) -> None:
        for s in self.sensors:
            s.on_http_attempt(endpoint, outcome, status, seconds)

    def on_circuit(self, endpoint: str, is_open: bool) -> None:
        for s in self.sensors:
            s.on_circuit(endpoint, is_open)

    def on_endpoint_disabled(self, endpoint: str, reason: str) -> None:
        for s in self.sensors:
            s.on_endpoint_disabled(endpoint, reason)

    def on_outbox_depth(self, service: str, rows: int) -> None:
        for s in self.sensors:
            s.on_outbox_depth(service, rows)
