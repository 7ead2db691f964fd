"""The fulfillment workflow's parts: database, warehouse connector, mail, the chain's event relay,
and two consumers: order events (``fulfillment``) and risk verdicts (``fulfillment-risk``)."""

from __future__ import annotations

from decimal import Decimal

from hookstream.avro import SchemaStore
from hookstream.connectors import HttpConnector
from hookstream.connectors.email import MailChecks, MailSettings
from hookstream.consumer import ConsumerService, ConsumerSettings, Handler
from hookstream.consumer.steps import Steps
from hookstream.db import Database
from hookstream.kafka.outbox import OutboxRelay
from hookstream.lifecycle import LifecycleGroup
from hookstream.sensors import Sensors
from hookstream.settings import Brokers, KafkaSettings
from hookstream.store.risk import RiskStore, VerdictTopic
from hookstream.workflow import SystemSettings, of_types, workflow_consumer
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


class FulfillmentSettings(SystemSettings, MailSettings):
    """``url``: the warehouse's base URL (the sandbox's: http://127.0.0.1:9500/warehouse)."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore")

    priority_over: Decimal = Decimal("500")  # a total over this asks the warehouse for priority
    settlement_delay_ms: int = 0  # the warehouse is asked this long after the payment at the earliest
    wait_for_risk: bool = True  # false where no risk service runs
    seller_name: str = "hookstream shop"
    seller_address: str = ""
    invoice_font: str | None = None  # a TTF font for characters outside Latin-1 on invoices
    service_name: str = "fulfillment"
    risk_topic: str = topics.RISK.name
    risk_service: str = "risk"
    fulfillment_topic: str = topics.FULFILLMENT.name


class FulfillmentService(LifecycleGroup):
    def __init__(
        self,
        bootstrap_servers: Brokers,
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
        self.mailer = s.mailer()
        templates = s.templates("hookstream_services.fulfillment", ["payment_confirmation"])
        self.relay = OutboxRelay(s.service_name, bootstrap_servers, self.db, database_url, sensors=sensors)
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
            return workflow_consumer(
                s,
                name,
                topic,
                handler,
                bootstrap_servers=bootstrap_servers,
                db=self.db,
                consumer=consumer,
                kafka=kafka,
                sensors=sensors,
            )

        self.orders = consumer_of(
            s.service_name, s.input_topic, of_types(Chain.ORDER_EVENT_TYPES, self.chain.on_order_event)
        )
        self.verdicts = consumer_of(f"{s.service_name}-risk", s.risk_topic, self.chain.on_verdict)
        super().__init__(
            s.service_name,
            [
                MailChecks(s, templates, SAMPLE),
                self.warehouse,
                self.mailer,
                self.db,
                self.relay,
                self.verdicts,
                self.orders,
            ],
            create_topics_on=bootstrap_servers if create_topics else None,
        )

    def topics(self) -> list[TopicSpec]:
        s = self.settings
        return [
            topics.RISK.renamed(s.risk_topic),
            topics.FULFILLMENT.renamed(s.fulfillment_topic),
            *super().topics(),
        ]
