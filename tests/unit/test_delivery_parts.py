"""Delivery parts without servers: the circuit breaker, Retry-After, stable ids, attempt batches."""

from __future__ import annotations

from hookstream.http.outbound.sender import Attempt, Verdict, explain
from hookstream.http.retry_after import retry_after_ms
from hookstream.store.deliveries import AttemptRecord, _unique_rounds, delivery_id, webhook_id
from hookstream_services.delivery.breaker import Breaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_on_failures_probes_once_and_closes_on_success() -> None:
    clock = Clock()
    breaker = Breaker(window=10, min_calls=4, failure_ratio=0.5, cooldown_s=30, clock=clock)
    for ok in (True, False, True, False):
        assert breaker.wait_s() == 0
        breaker.record(ok)
    assert breaker.wait_s() == 30  # half of the last four failed: open
    clock.now += 29
    assert breaker.wait_s() == 1.0
    clock.now += 2
    assert breaker.wait_s() == 0  # one probe
    assert breaker.wait_s() > 0  # and only one
    breaker.record(False)  # the probe failed: open again for a full cooldown
    assert breaker.wait_s() == 30
    clock.now += 31
    assert breaker.wait_s() == 0
    breaker.record(True)  # the probe succeeded: closed
    assert breaker.wait_s() == 0


def test_breaker_needs_enough_calls() -> None:
    breaker = Breaker(min_calls=5, failure_ratio=0.5)
    for _ in range(4):
        breaker.record(False)
    assert breaker.wait_s() == 0


def test_retry_after_seconds_or_http_date() -> None:
    assert retry_after_ms("120") == 120_000
    assert retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10_000
    assert retry_after_ms("soon") is None
    assert retry_after_ms(None) is None


def test_ids_are_stable_and_distinct_per_subscription() -> None:
    assert webhook_id("sub_a", "evt_1") == webhook_id("sub_a", "evt_1") != webhook_id("sub_b", "evt_1")
    assert delivery_id("sub_a", "evt_1") != webhook_id("sub_a", "evt_1")


def test_a_delivery_recorded_twice_in_one_batch_goes_in_a_later_round() -> None:
    attempt = Attempt(500, 3, None, "HTTP 500", verdict=Verdict.RETRY)
    items = [("a", attempt, "retrying"), ("b", attempt, "retrying"), ("a", attempt, "delivered")]
    assert [[d for d, _, _ in r] for r in _unique_rounds(items)] == [["a", "b"], ["a"]]


def test_an_attempt_is_explained_in_words_a_partner_can_act_on() -> None:
    def attempt(status: int | None, error: str | None, verdict: Verdict = Verdict.RETRY) -> Attempt:
        return Attempt(status, 12, None, error, verdict=verdict)

    cases = [
        (attempt(200, None, Verdict.DELIVERED), "delivered: the endpoint answered 200"),
        (attempt(None, "no answer within 10000 ms"), "timeout:"),
        (
            attempt(
                None, "ClientConnectorDNSError: Cannot connect to host x:443 ssl:default [Name or service not known]"
            ),
            "DNS:",
        ),
        (attempt(None, "ClientConnectorCertificateError: certificate verify failed"), "TLS:"),
        (
            attempt(
                None,
                "ClientConnectorError: Cannot connect to host 127.0.0.1:9 ssl:default [Connection refused]",
            ),
            "connection refused:",
        ),
        (attempt(503, "HTTP 503"), "503: the endpoint failed or is busy"),
        (attempt(404, "HTTP 404", Verdict.REJECTED), "404: the endpoint refused the request for good"),
        (attempt(410, "HTTP 410", Verdict.GONE), "410 Gone"),
        (attempt(401, "HTTP 401", Verdict.REJECTED), "401: the endpoint refused the request as unauthorized"),
    ]
    for given, words in cases:
        assert explain(given).startswith(words), (given, explain(given))
    stored = AttemptRecord(422, 40, '{"error": "unknown order"}', "HTTP 422")  # as the delivery log keeps it
    assert explain(stored) == (
        '422: the endpoint refused the request for good; check its answer; it answered: {"error": "unknown order"}'
    )
