"""The built-in alert rules: plain functions from what the admin reads (the overview, the intake
against yesterday, the alerts topic, the delivery log) to conditions, each holding or not."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from hookstream.errors import PermanentError
from hookstream.store.deliveries import DeliveryStatus
from hookstream.store.volume import ChannelVolume
from hookstream_services.admin.config import AdminSettings

DEAD_LETTERED = "delivery_dead_lettered"


@dataclass(frozen=True)
class Condition:
    rule: str
    subject: str
    firing: bool
    summary: str


def from_overview(overview: dict[str, Any], s: AdminSettings) -> list[Condition]:
    """Every overview rule on every subject it watches, holding or not (a cleared condition resolves)."""
    found = []
    for q in overview["dead_letters"]:
        waiting = q["not_redriven"]
        if waiting is None:
            continue  # unknown this round: neither fires nor resolves
        found.append(
            Condition(
                "dead_letters",
                q["consumer"],
                waiting >= s.alert_dead_letters,
                f"{q['consumer']}: {waiting} dead letter(s) waiting in {q['topic']}",
            )
        )
    for c in overview["consumers"]:
        lag = c.get("lag") or 0
        found.append(Condition("lag", c["name"], lag >= s.alert_lag, f"{c['name']} is {lag} record(s) behind"))
    for e in overview["endpoints"]:
        name = f"{e['name']} ({e['subscription_id']})"
        reason = e.get("disabled_reason") or "no reason given"
        found.append(
            Condition("endpoint_disabled", e["subscription_id"], not e["enabled"], f"{name} is disabled: {reason}")
        )
        rate = e["success_rate"]
        failing = rate is not None and e["attempts"] >= s.alert_min_attempts and 1 - rate >= s.alert_failure_rate
        explained = e["last_failure"]["explanation"] if e.get("last_failure") else "no failure in the window"
        found.append(
            Condition(
                "delivery_failures",
                e["subscription_id"],
                failing,
                f"{name}: {e['attempts'] - e['succeeded']} of {e['attempts']} attempts failed; last: {explained}",
            )
        )
    return found


def volume_drop(volumes: list[ChannelVolume], s: AdminSettings) -> list[Condition]:
    """A channel whose last hour fell under ``alert_volume_drop`` of the same hour yesterday: a sender
    that stopped, or a signing secret rotated on one side only. Quiet channels are not judged."""
    return [
        Condition(
            "volume_drop",
            v.channel,
            v.yesterday >= s.alert_volume_min and v.recent < s.alert_volume_drop * v.yesterday,
            f"{v.channel}: {v.recent} webhook(s) in the last hour against {v.yesterday} in the same hour yesterday",
        )
        for v in volumes
    ]


def from_alert_record(value: bytes | None, timestamp_ms: int, *, max_age_s: float) -> Condition | None:
    """An event on the alerts topic that fires an alert of its own: a delivery given up. (``endpoint.disabled``
    is told by the endpoint_disabled rule, which also resolves it when the endpoint is enabled again.) One
    older than ``max_age_s`` is stale news (alerting switched on over a backlog): the dead-letters rule
    covers what still waits."""
    try:
        event = json.loads(value or b"")
    except ValueError as exc:
        raise PermanentError(f"an alerts record that is not JSON: {exc}") from exc
    if not isinstance(event, dict) or event.get("type") != "delivery.dead_lettered":
        return None
    if time.time() - timestamp_ms / 1000 > max_age_s:
        return None
    try:
        summary = (
            f"delivery {event['delivery_id']} to {event['endpoint']} ({event['url']}) given up after"
            f" {event['attempts']} attempt(s): event {event['event_id']} ({event['event_type']}) of order"
            f" {event['order_id']}: {event['reason']}"
        )
    except KeyError as exc:
        raise PermanentError(f"a delivery.dead_lettered alert without {exc}") from exc
    return Condition(DEAD_LETTERED, event["delivery_id"], True, summary)


def delivery_settled(delivery_id: str, status: DeliveryStatus | None) -> Condition | None:
    """A given-up delivery's alert resolves once the delivery is settled another way (redriven or
    retried and delivered, skipped, or gone from the log)."""
    if status is DeliveryStatus.DELIVERED:
        how = "delivered after all"
    elif status is DeliveryStatus.SKIPPED:
        how = "skipped: its endpoint was disabled"
    elif status is None:
        how = "no longer in the delivery log"
    else:
        return None  # failed, or being tried again
    return Condition(DEAD_LETTERED, delivery_id, False, f"delivery {delivery_id}: {how}")
