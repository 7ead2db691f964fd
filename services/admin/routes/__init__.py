"""The admin API's routes (``/api/v1``), one module per concern; ``routes(ctx)`` lists them all."""

from __future__ import annotations

from hookstream_services.admin.context import Context
from hookstream_services.admin.endpoint import route
from hookstream_services.admin.routes import deliveries, flow, orders, overview, subscriptions
from starlette.routing import Route


def routes(ctx: Context) -> list[Route]:
    return [route(ctx, path, handler, method) for module in _MODULES for path, handler, method in module.ROUTES]


_MODULES = (subscriptions, deliveries, orders, flow, overview)
