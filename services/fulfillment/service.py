"""The fulfillment workflow's parts: database, warehouse connector, mail, the chain's event relay,
and two consumers: order events (``fulfillment``) and risk verdicts (``fulfillment-risk``)."""

from __future__ import annotations

from decimal import Decimal

from hookstream.avro import SchemaStore
from hookstream.connectors import HttpConnector
from hookstream.connectors.email import Mailer, SmtpEndpoint, Templates
from hookstream.consumer import ConsumerService, ConsumerSettings, Handler
from hookstream.consumer.steps import Steps
from hookstream.db import Database
from hookstream.errors import ConfigurationError
from hookstream.kafka.outbox import OutboxRelay
from hookstream.lifecycle import Lifecycle, LifecycleGroup
from hookstream.sensors import Sensors
from hookstream.settings import KafkaSettings
from hookstream.store.risk import RiskStore, VerdictTopic
from hookstream.workflow import SystemSettings
from hookstream_schemas import topics
from hookstream_schemas.topics import TopicSpec
from hookstream_services.fulfillment.chain import Chain, Policy, Topics
from hookstream_services.fulfillment.documents import Seller
from pydantic_settings import SettingsConfigDict

PREFIX = "HOOKSTREAM_FULFILLMENT_"
SAMPLE = {
    "order_number": "1001",
    "customer_name": "Ada",
    "total": "63.71",
    "currency": "EUR",
    "invoice_number": "INV-SHOPIFY-000001",
    "priority": True,
}


class FulfillmentSettings(SystemSettings):
    """``url``: the warehouse's base URL (the sandbox's: http://127.0.0.1:9500/warehouse)."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore")

    priority_over: Decimal = Decimal("500")  # a total over this asks the warehouse for priority
    settlement_delay_ms: int = 0  # the warehouse is asked this long after the payment at the earliest
    wait_for_risk: bool = True  # false where no risk service runs
    seller_name: str = "hookstream shop"
    seller_address: str = ""
    invoice_font: str | None = None  # a TTF font for characters outside Latin-1 on invoices
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_timeout_ms: int = 10_000
    sender: str = ""
    templates_dir: str | None = None
    service_name: str = "fulfillment"
    risk_topic: str = topics.RISK.name
    risk_service: str = "risk"
    fulfillment_topic: str = topics.FULFILLMENT.name


class _Checks(Lifecycle):
    def __init__(self, settings: FulfillmentSettings, templates: Templates) -> None:
        self.settings = settings
        self.templates = templates

    async def start(self) -> None:
        if not self.settings.sender:
            raise ConfigurationError(f"{PREFIX}SENDER is not set: give the From address of payment confirmations")
        self.templates.check(SAMPLE)

    async def stop(self) -> None:
        return None


class FulfillmentService(LifecycleGroup):
    def __init__(
        self,
        bootstrap_servers: str,
        database_url: str,
        *,
        settings: FulfillmentSettings,
        consumer: ConsumerSettings | None = None,
        kafka: KafkaSettings | None = None,
        sensors: Sensors | None = None,
        create_topics: bool = True,
    ) -> None:
        s = self.settings = settings
        self.db = Database(database_url)
        self.warehouse = HttpConnector(s.endpoint("warehouse"))
        self.mailer = Mailer(
            SmtpEndpoint(
                s.smtp_host, s.smtp_port, s.smtp_username, s.smtp_password, s.smtp_starttls, s.smtp_timeout_ms, PREFIX
            )
        )
        templates = Templates(
            "hookstream_services.fulfillment",
            ["payment_confirmation"],
            override_dir=s.templates_dir,
            setting=f"{PREFIX}TEMPLATES_DIR",
        )
        self.relay = OutboxRelay(s.service_name, bootstrap_servers, self.db, database_url)
        schemas = SchemaStore.bundled()
        self.chain = Chain(
            self.db,
            self.warehouse,
            self.mailer,
            templates,
            Steps(self.db, s.service_name),
            schemas.serde(topics.ORDER_EVENTS.name),
            schemas.serde(topics.FULFILLMENT.name),
            schemas.serde(topics.RISK.name),
            Policy(
                s.priority_over,
                s.settlement_delay_ms,
                s.wait_for_risk,
                s.sender,
                Seller(s.seller_name, s.seller_address),
                s.invoice_font,
            ),
            Topics(s.service_name, s.fulfillment_topic),
            RiskStore(self.db, VerdictTopic(s.risk_service, s.risk_topic)),
            on_queued=self.relay.wake,
        )

        def consumer_of(name: str, topic: str, handler: Handler) -> ConsumerService:
            return ConsumerService(
                name,
                topic,
                handler,
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

        self.orders = consumer_of(s.service_name, s.input_topic, self.chain.on_order_event)
        self.verdicts = consumer_of(f"{s.service_name}-risk", s.risk_topic, self.chain.on_verdict)
        super().__init__(
            s.service_name,
            [_Checks(s, templates), self.warehouse, self.mailer, self.db, self.relay, self.verdicts, self.orders],
            create_topics_on=bootstrap_servers if create_topics else None,
        )

    def topics(self) -> list[TopicSpec]:
        s = self.settings
        return [
            topics.RISK.renamed(s.risk_topic),
            topics.FULFILLMENT.renamed(s.fulfillment_topic),
            *super().topics(),
        ]
