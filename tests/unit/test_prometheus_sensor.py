"""The metrics sensor: end-to-end latency from the ingress's received time, circuit, disabled, outbox depth."""

from __future__ import annotations

import time

from hookstream.consumer.records import Record
from hookstream.kafka.headers import RECEIVED_AT
from hookstream.sensors import Sensors
from hookstream.sensors.prometheus import PrometheusSensor
from prometheus_client.parser import text_string_to_metric_families


def _samples(sensor: PrometheusSensor) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(sensor.exposition().decode()):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def test_end_to_end_latency_is_measured_from_the_webhooks_received_time() -> None:
    sensor = PrometheusSensor()
    sensors = Sensors([sensor])
    received = int((time.time() - 2.0) * 1000)  # the ingress took it two seconds ago
    record = Record("orders.events.v1", 0, 7, "shopify:1", b"", [(RECEIVED_AT, str(received).encode())])
    sensors.on_record_handled("crm", record, 0.01)
    sensors.on_record_handled("crm", Record("orders.events.v1", 0, 8, "shopify:1", b""), 0.01)  # no header: no sample
    found = _samples(sensor)
    assert found[("hookstream_end_to_end_seconds_count", (("service", "crm"),))] == 1
    total = found[("hookstream_end_to_end_seconds_sum", (("service", "crm"),))]
    assert 2.0 <= total < 60  # at least the two seconds since it was received
    assert found[("hookstream_end_to_end_seconds_bucket", (("le", "1.0"), ("service", "crm")))] == 0
    assert found[("hookstream_records_handled_total", (("service", "crm"),))] == 2


def test_circuit_disabled_endpoints_and_outbox_depth() -> None:
    sensor = PrometheusSensor()
    sensors = Sensors([sensor])
    sensors.on_circuit("sub_1", True)
    sensors.on_circuit("sub_2", True)
    sensors.on_circuit("sub_2", False)
    sensors.on_endpoint_disabled("sub_1", "410 Gone")
    sensors.on_outbox_depth("normalizer", 42)
    found = _samples(sensor)
    assert found[("hookstream_circuit_open", (("endpoint", "sub_1"),))] == 1
    assert found[("hookstream_circuit_open", (("endpoint", "sub_2"),))] == 0
    assert found[("hookstream_endpoints_disabled_total", (("endpoint", "sub_1"),))] == 1
    assert found[("hookstream_outbox_depth", (("service", "normalizer"),))] == 42
