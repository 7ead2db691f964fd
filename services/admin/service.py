"""The admin service wired together: the database, a producer (retries go to deliveries.v1), API and dashboard."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from typing import Any

from hookstream import registry
from hookstream.consumer import ConsumerService, ConsumerSettings
from hookstream.db import Database
from hookstream.http.outbound.sender import Sender
from hookstream.http.server import AsgiServer
from hookstream.kafka import Producer
from hookstream.kafka.groups import GroupAdmin
from hookstream.lifecycle import LifecycleGroup, Part
from hookstream.registry import ConsumerGroup
from hookstream.sensors import Sensors
from hookstream.settings import Brokers
from hookstream.store.alerts import AlertStore
from hookstream.store.subscriptions import KeyCheck
from hookstream.store.volume import Volume
from hookstream_schemas import topics
from hookstream_services.admin import dashboard
from hookstream_services.admin.alerting import Alerting
from hookstream_services.admin.config import AdminSettings
from hookstream_services.admin.context import Context
from hookstream_services.admin.routes import overview, routes
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def create_app(ctx: Context) -> Starlette:
    document = resources.files("hookstream_schemas").joinpath("admin.openapi.yaml").read_text()

    async def openapi(request: Request) -> Response:
        return Response(document, media_type="application/yaml")

    return Starlette(routes=[*routes(ctx), Route("/openapi.yaml", openapi), *dashboard.routes()])


class AdminService(LifecycleGroup):
    def __init__(
        self,
        bootstrap_servers: Brokers,
        database_url: str,
        *,
        settings: AdminSettings,
        sensors: Sensors | None = None,
        create_topics: bool = True,
        **options: Any,
    ) -> None:
        self.db = Database(database_url)
        self.producer = Producer(bootstrap_servers, sensors=sensors)

        def consumers() -> Mapping[str, ConsumerGroup]:
            # Every registered consumer, for lag, replay and dead letters; asked on first use, since
            # building the services (this one among them) while this one is being built would never end.
            return registry.consumers(bootstrap_servers, database_url)

        self.sender = Sender(allow_targets=frozenset(settings.allow_targets))
        self.ctx = ctx = Context(
            self.db,
            self.producer,
            deliveries_topic=settings.deliveries_topic,
            groups=GroupAdmin(bootstrap_servers),
            consumers=consumers,
            sender=self.sender,
            keyring=settings.secrets.keyring(),
            sensors=sensors,
        )
        self.server = AsgiServer(create_app(ctx), settings.host, settings.port, setting="HOOKSTREAM_ADMIN_PORT")
        self.alerting = Alerting(
            AlertStore(self.db), Volume(self.db), ctx.deliveries, lambda: overview.current(ctx), settings
        )
        parts: list[Part] = [self.db, KeyCheck(ctx.subscriptions), self.producer, self.sender, self.server]
        if settings.alert_interval_s > 0:
            alert_feed = ConsumerService(
                settings.alert_feed_name,
                settings.alerts_topic,
                self.alerting.on_alert_record,
                bootstrap_servers=bootstrap_servers,
                db=self.db,
                settings=ConsumerSettings(retry_delays=["5s", "1m"]),
                sensors=sensors,
                create_topics=False,
            )
            parts += [self.alerting, alert_feed]
        super().__init__(
            "admin",
            parts,
            topics=[topics.DELIVERIES.renamed(settings.deliveries_topic), topics.ALERTS.renamed(settings.alerts_topic)],
            create_topics_on=bootstrap_servers if create_topics else None,
        )
