"""The admin service's settings (``HOOKSTREAM_ADMIN_*``)."""

from __future__ import annotations

from hookstream.secretbox import SecretsSettings
from hookstream.settings import CommaList
from hookstream_schemas import topics
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class AdminSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOOKSTREAM_ADMIN_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8070
    deliveries_topic: str = topics.DELIVERIES.name  # where a retried delivery is queued
    # Targets a test event may go to although private (e.g. loopback for local runs), as for delivery.
    allow_targets: CommaList = []
    # Built-in alerting (for users without Prometheus): rules evaluated every alert_interval_s (0: off),
    # changes told to these notifiers; a firing within alert_cooldown_s of the last one told is not told again.
    alert_interval_s: float = 30
    alert_cooldown_s: float = 600
    alert_slack_url: str | None = None  # a Slack incoming webhook, or anything taking {"text": ...}
    alert_pagerduty_routing_key: str | None = None
    alert_pagerduty_url: str = "https://events.pagerduty.com/v2/enqueue"
    # E-mail: to these addresses, from alert_email_from, through this SMTP server.
    alert_email_to: CommaList = []
    alert_email_from: str = "hookstream alerts <alerts@hookstream.invalid>"
    alert_smtp_host: str = ""
    alert_smtp_port: int = 25
    alert_smtp_username: str | None = None
    alert_smtp_password: str | None = None
    alert_smtp_starttls: bool = False
    alert_dead_letters: int = 1  # dead letters waiting (not redriven) in one consumer's DLQ
    alert_lag: int = 10_000  # records a consumer is behind
    alert_failure_rate: float = 0.25  # share of an endpoint's attempts failing over 15 minutes ...
    alert_min_attempts: int = 20  # ... once it has had this many
    alert_volume_drop: float = 0.2  # a channel's last hour under this share of the same hour yesterday ...
    alert_volume_min: int = 100  # ... when that hour had at least this many webhooks
    # A notifier that failed is tried again after each of these, then given up (the history says so).
    alert_retry_delays: CommaList = ["30s", "2m", "10m", "30m", "1h", "2h", "4h"]
    alert_dispatch_interval_s: float = 5  # how often due retries are looked for
    # Deliveries given up (and other events) arrive on this topic, read by this consumer; change them
    # only to run a second, separate pipeline (tests do).
    alerts_topic: str = topics.ALERTS.name
    alert_feed_name: str = "admin-alerts"
    # HOOKSTREAM_SECRETS_KEYS (or .hookstream/stack.env): the keys partner secrets are sealed with.
    secrets: SecretsSettings = Field(default_factory=SecretsSettings)
