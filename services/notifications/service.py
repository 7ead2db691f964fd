"""The notifications workflow: its settings and its parts (mail, SMS, the consumer runtime)."""

from __future__ import annotations

from hookstream.connectors import Endpoint, HttpConnector
from hookstream.connectors.email import MailChecks, MailSettings
from hookstream.consumer import ConsumerSettings
from hookstream.lifecycle import Lifecycle
from hookstream.sensors import Sensors
from hookstream.settings import Brokers, KafkaSettings
from hookstream.workflow import WorkflowParts, WorkflowService, WorkflowSettings
from hookstream_services.notifications.handler import EVENT_TYPES, KINDS, SAMPLE_EVENT, Notify, Senders, message_context
from pydantic_settings import SettingsConfigDict

PREFIX = "HOOKSTREAM_NOTIFICATIONS_"


class NotificationSettings(WorkflowSettings, MailSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore")

    senders: dict[str, str] = {}  # per channel, JSON: {"shopify": "Shop <orders@shop.example>"}
    sms_url: str = ""  # the SMS provider's base URL; empty: no SMS
    sms_auth_header: str | None = None
    sms_timeout_ms: int = 5_000
    service_name: str = "notifications"


class NotificationService(WorkflowService):
    def __init__(
        self,
        bootstrap_servers: Brokers,
        database_url: str,
        *,
        settings: NotificationSettings,
        consumer: ConsumerSettings | None = None,
        kafka: KafkaSettings | None = None,
        sensors: Sensors | None = None,
        create_topics: bool = True,
    ) -> None:
        s = self.settings = settings
        self.mailer = s.mailer()
        self.sms = (
            HttpConnector(Endpoint("sms", s.sms_url, s.sms_auth_header, s.sms_timeout_ms, f"{PREFIX}SMS_"))
            if s.sms_url
            else None
        )
        templates = s.templates("hookstream_services.notifications", KINDS)
        senders = Senders(s.sender, s.senders)

        def handler(parts: WorkflowParts) -> Notify:
            return Notify(self.mailer, self.sms, templates, parts.steps, parts.canonical, senders)

        connectors: list[Lifecycle] = [MailChecks(s, templates, message_context(SAMPLE_EVENT)), self.mailer]
        if self.sms is not None:
            connectors.append(self.sms)
        super().__init__(
            bootstrap_servers,
            database_url,
            settings=settings,
            handler=handler,
            event_types=EVENT_TYPES,
            connectors=connectors,
            consumer=consumer,
            kafka=kafka,
            sensors=sensors,
            create_topics=create_topics,
        )
