"""The risk workflow: rules, the risk platform connector, the verdicts' outbox relay, the consumer runtime."""

from __future__ import annotations

from decimal import Decimal

from hookstream.connectors import HttpConnector
from hookstream.consumer import ConsumerSettings
from hookstream.db import Database
from hookstream.kafka.outbox import OutboxRelay
from hookstream.sensors import Sensors
from hookstream.settings import Brokers, KafkaSettings
from hookstream.store.risk import VerdictTopic
from hookstream.workflow import SystemSettings, WorkflowParts, WorkflowService
from hookstream_schemas import topics
from hookstream_schemas.topics import TopicSpec
from hookstream_services.risk.handler import Assess
from hookstream_services.risk.rules import Rules
from pydantic_settings import SettingsConfigDict


class RiskSettings(SystemSettings):
    """``url``: the risk platform that receives high-risk flags (the sandbox's: http://127.0.0.1:9500/risk)."""

    model_config = SettingsConfigDict(env_prefix="HOOKSTREAM_RISK_", extra="ignore")

    hold_at: int = 60
    amount_threshold: Decimal = Decimal("1000")
    velocity_window_hours: int = 24
    velocity_orders: int = 3
    first_time_total: Decimal = Decimal("300")
    service_name: str = "risk"
    verdict_topic: str = topics.RISK.name


class RiskService(WorkflowService):
    def __init__(
        self,
        bootstrap_servers: Brokers,
        database_url: str,
        *,
        settings: RiskSettings,
        consumer: ConsumerSettings | None = None,
        kafka: KafkaSettings | None = None,
        sensors: Sensors | None = None,
        create_topics: bool = True,
    ) -> None:
        s = self.settings = settings
        db = Database(database_url)
        self.connector = HttpConnector(s.endpoint("risk"))
        self.relay = OutboxRelay(s.service_name, bootstrap_servers, db, database_url, sensors=sensors)
        rules = Rules(s.hold_at, s.amount_threshold, s.velocity_window_hours, s.velocity_orders, s.first_time_total)
        where = VerdictTopic(s.service_name, s.verdict_topic)

        def handler(parts: WorkflowParts) -> Assess:
            return Assess(db, self.connector, parts.steps, parts.canonical, rules, where, on_queued=self.relay.wake)

        super().__init__(
            bootstrap_servers,
            database_url,
            settings=settings,
            handler=handler,
            connectors=[self.connector, self.relay],
            db=db,
            consumer=consumer,
            kafka=kafka,
            sensors=sensors,
            create_topics=create_topics,
        )

    def topics(self) -> list[TopicSpec]:
        return [topics.RISK.renamed(self.settings.verdict_topic), *super().topics()]
