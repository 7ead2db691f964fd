"""The notifications workflow's parts as one lifecycle group: database, mail, SMS, consumer runtime."""

from __future__ import annotations

from hookstream.avro import SchemaStore
from hookstream.connectors import Endpoint, HttpConnector
from hookstream.connectors.email import Mailer, SmtpEndpoint, Templates
from hookstream.consumer import ConsumerService, ConsumerSettings
from hookstream.consumer.steps import Steps
from hookstream.db import Database
from hookstream.errors import ConfigurationError
from hookstream.lifecycle import Lifecycle, LifecycleGroup
from hookstream.sensors import Sensors
from hookstream.settings import CommaList, KafkaSettings
from hookstream_schemas import topics
from hookstream_services.notifications.handler import KINDS, SAMPLE_EVENT, Notify, Senders, message_context
from pydantic_settings import BaseSettings, SettingsConfigDict

PREFIX = "HOOKSTREAM_NOTIFICATIONS_"


class NotificationSettings(BaseSettings):
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
    retry_delays: CommaList = ["5s", "1m", "10m", "1h"]
    retry_jitter: float = 0.1
    commit_interval_ms: int = 1_000
    # Where it reads; change them only to run a second, separate pipeline (tests do).
    service_name: str = "notifications"
    input_topic: str = topics.ORDER_EVENTS.name


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


class NotificationService(LifecycleGroup):
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
        self.db = Database(database_url)
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
        checks = _Checks(s, templates)
        self.handler = Notify(
            self.mailer,
            self.sms,
            templates,
            Steps(self.db, s.service_name),
            SchemaStore.bundled().serde(topics.ORDER_EVENTS.name),
            Senders(s.sender, s.senders),
        )
        self.consumer = ConsumerService(
            s.service_name,
            s.input_topic,
            self.handler,
            bootstrap_servers=bootstrap_servers,
            db=self.db,
            settings=consumer
            or ConsumerSettings(
                retry_delays=s.retry_delays, retry_jitter=s.retry_jitter, commit_interval_ms=s.commit_interval_ms
            ),
            kafka=kafka,
            sensors=sensors,
            create_topics=False,
        )
        parts: list[Lifecycle] = [checks, self.db, self.mailer]
        if self.sms is not None:
            parts.append(self.sms)
        super().__init__(
            s.service_name,
            [*parts, self.consumer],
            create_topics_on=bootstrap_servers if create_topics else None,
        )
