"""The notifications workflow: its settings and its parts (mail, SMS, the consumer runtime)."""

from __future__ import annotations

from hookstream.connectors import Endpoint, HttpConnector
from hookstream.connectors.email import Mailer, SmtpEndpoint, Templates
from hookstream.consumer import ConsumerSettings
from hookstream.errors import ConfigurationError
from hookstream.lifecycle import Lifecycle
from hookstream.sensors import Sensors
from hookstream.settings import KafkaSettings
from hookstream.workflow import WorkflowParts, WorkflowService, WorkflowSettings
from hookstream_services.notifications.handler import KINDS, SAMPLE_EVENT, Notify, Senders, message_context
from pydantic_settings import SettingsConfigDict

PREFIX = "HOOKSTREAM_NOTIFICATIONS_"


class NotificationSettings(WorkflowSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore")

    smtp_host: str = ""  # the sandbox's: 127.0.0.1 (port 9525)
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_timeout_ms: int = 10_000
    sender: str = ""  # "Shop <orders@shop.example>"
    senders: dict[str, str] = {}  # per channel, JSON: {"shopify": "Shop <orders@shop.example>"}
    templates_dir: str | None = None  # files here replace the packaged templates of the same name
    sms_url: str = ""  # the SMS provider's base URL; empty: no SMS
    sms_auth_header: str | None = None
    sms_timeout_ms: int = 5_000
    service_name: str = "notifications"


class _Checks(Lifecycle):
    """Settings that are only wrong at run time (``hookstream setup`` builds the service without them)."""

    def __init__(self, settings: NotificationSettings, templates: Templates) -> None:
        self.settings = settings
        self.templates = templates

    async def start(self) -> None:
        if not self.settings.sender:
            raise ConfigurationError(
                f"{PREFIX}SENDER is not set: give the From address, e.g. 'Shop <orders@shop.example>'"
            )
        self.templates.check(message_context(SAMPLE_EVENT))

    async def stop(self) -> None:
        return None


class NotificationService(WorkflowService):
    def __init__(
        self,
        bootstrap_servers: str,
        database_url: str,
        *,
        settings: NotificationSettings,
        consumer: ConsumerSettings | None = None,
        kafka: KafkaSettings | None = None,
        sensors: Sensors | None = None,
        create_topics: bool = True,
    ) -> None:
        s = self.settings = settings
        self.mailer = Mailer(
            SmtpEndpoint(
                s.smtp_host, s.smtp_port, s.smtp_username, s.smtp_password, s.smtp_starttls, s.smtp_timeout_ms, PREFIX
            )
        )
        self.sms = (
            HttpConnector(Endpoint("sms", s.sms_url, s.sms_auth_header, s.sms_timeout_ms, f"{PREFIX}SMS_"))
            if s.sms_url
            else None
        )
        templates = Templates(
            "hookstream_services.notifications", KINDS, override_dir=s.templates_dir, setting=f"{PREFIX}TEMPLATES_DIR"
        )
        senders = Senders(s.sender, s.senders)

        def handler(parts: WorkflowParts) -> Notify:
            return Notify(self.mailer, self.sms, templates, parts.steps, parts.canonical, senders)

        connectors: list[Lifecycle] = [_Checks(s, templates), self.mailer]
        if self.sms is not None:
            connectors.append(self.sms)
        super().__init__(
            bootstrap_servers,
            database_url,
            settings=settings,
            handler=handler,
            connectors=connectors,
            consumer=consumer,
            kafka=kafka,
            sensors=sensors,
            create_topics=create_topics,
        )
