"""The notifications workflow as a registered service: ``hookstream run notifications``."""

from __future__ import annotations

from hookstream.registry import ServiceContext, ServiceSpec, build_with
from hookstream_services.notifications.service import NotificationService, NotificationSettings


def banner(context: ServiceContext) -> str:
    s: NotificationSettings = context.settings
    sms = f"SMS via {s.sms_url}" if s.sms_url else "SMS off (no HOOKSTREAM_NOTIFICATIONS_SMS_URL)"
    return f"notifications: {s.input_topic} → email via {s.smtp_host}:{s.smtp_port}, {sms}"


SPEC = ServiceSpec(
    name="notifications",
    description="orders.events.v1 → the customer: confirmation, shipping, cancellation and payment emails; SMS.",
    build=build_with(NotificationService),
    settings=NotificationSettings,
    health_port=9404,
    banner=banner,
)
