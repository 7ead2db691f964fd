"""The built-in alert rules as plain functions of what the admin read: each subject holding or not,
and a figure the broker could not give this round neither firing nor resolving."""

from __future__ import annotations

import time

import pytest
from hookstream.errors import PermanentError
from hookstream.store.deliveries import DeliveryStatus
from hookstream_services.admin import rules
from hookstream_services.admin.config import AdminSettings


def overview(*queues: dict[str, object]) -> dict[str, object]:
    return {"dead_letters": list(queues), "consumers": [{"name": "crm", "group": "hookstream.crm"}], "endpoints": []}


def test_dead_letters_fire_and_clear_and_an_unknown_count_says_nothing() -> None:
    s = AdminSettings(alert_dead_letters=1)
    waiting = {"consumer": "crm", "topic": "hookstream.crm.dlq", "dead_letters": 3, "not_redriven": 2}
    cleared = {**waiting, "not_redriven": 0}
    unknown = {**waiting, "dead_letters": None, "not_redriven": None}  # the broker could not say this round

    def dead_letter_conditions(q: dict[str, object]) -> list[rules.Condition]:
        return [c for c in rules.from_overview(overview(q), s) if c.rule == "dead_letters"]

    [fired] = dead_letter_conditions(waiting)
    assert (fired.subject, fired.firing, fired.summary) == (
        "crm",
        True,
        "crm: 2 dead letter(s) waiting in hookstream.crm.dlq",
    )
    [clear] = dead_letter_conditions(cleared)
    assert clear.firing is False
    assert dead_letter_conditions(unknown) == []  # not a resolution: a blip must not tell "RESOLVED"


def test_a_given_up_delivery_fires_from_its_event_and_resolves_once_settled() -> None:
    event = (
        b'{"type": "delivery.dead_lettered", "delivery_id": "dlv_1", "endpoint": "erp", "url": "https://erp.example",'
        b' "attempts": 8, "event_id": "e1", "event_type": "order.paid", "order_id": "shopify:1", "reason": "HTTP 503"}'
    )
    now_ms = int(time.time() * 1000)
    fired = rules.from_alert_record(event, now_ms, max_age_s=3600)
    assert fired == rules.Condition(
        rules.DEAD_LETTERED,
        "dlv_1",
        True,
        "delivery dlv_1 to erp (https://erp.example) given up after 8 attempt(s): event e1 (order.paid)"
        " of order shopify:1: HTTP 503",
    )
    assert rules.from_alert_record(event, now_ms - 7_200_000, max_age_s=3600) is None  # stale news
    assert rules.from_alert_record(b'{"type": "endpoint.disabled"}', now_ms, max_age_s=3600) is None
    with pytest.raises(PermanentError, match="not JSON"):
        rules.from_alert_record(b"{", now_ms, max_age_s=3600)
    with pytest.raises(PermanentError, match="without 'reason'"):
        rules.from_alert_record(event.replace(b'"reason"', b'"cause"'), now_ms, max_age_s=3600)
    assert rules.delivery_settled("dlv_1", DeliveryStatus.FAILED) is None
    assert rules.delivery_settled("dlv_1", DeliveryStatus.RETRYING) is None  # redriven, being tried again
    settled = rules.delivery_settled("dlv_1", DeliveryStatus.DELIVERED)
    assert settled is not None
    assert (settled.firing, settled.summary) == (False, "delivery dlv_1: delivered after all")
