"""One admin route: authenticate first, refuse unstorable input, and turn every failure into a precise answer.

Errors are ``{"error", "detail"}``: 401/403/404 from ``auth``, 422 naming the field, 503 with
Retry-After when Postgres or Kafka is away, and a JSON 500 (its traceback only in the log) for a bug.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import psycopg
from confluent_kafka import KafkaException
from hookstream.errors import BrokerUnavailable, DatabaseUnavailable, DeliveryFailed, ProducerQueueFull
from hookstream.store.tokens import Token
from hookstream_services.admin.auth import authenticate
from hookstream_services.admin.context import Context
from hookstream_services.admin.errors import ApiError
from hookstream_services.admin.inputs import unstorable
from psycopg_pool import PoolTimeout
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

log = logging.getLogger("hookstream.admin")
Handler = Callable[[Context, Request, Token], Awaitable[Response]]


def route(ctx: Context, path: str, handler: Handler, method: str = "GET") -> Route:
    async def endpoint(request: Request) -> Response:
        try:
            token = await authenticate(request, ctx.tokens, ctx.refused)  # no token: 401 before anything else
            for name, value in [*request.query_params.multi_items(), *request.path_params.items()]:
                if unstorable(value) is not None:
                    raise ApiError(422, "invalid", f"{name}: a NUL or an unpaired surrogate is not a valid value")
            return await handler(ctx, request, token)
        except ApiError as exc:
            response: Response = exc.response()
            return response
        except psycopg.DataError as exc:  # a value the checks let through and the database refuses
            refused: Response = ApiError(422, "invalid", f"a value the database cannot take: {exc}").response()
            return refused
        except (psycopg.OperationalError, PoolTimeout, DatabaseUnavailable) as exc:
            log.warning("database unavailable", extra={"path": path, "error": str(exc)})
            return unavailable("PostgreSQL")
        except (BrokerUnavailable, DeliveryFailed, ProducerQueueFull, KafkaException) as exc:
            log.warning("broker unavailable", extra={"path": path, "error": str(exc)})
            return unavailable("Kafka")
        except Exception:
            # A bug: logged with its traceback here, answered without one.
            log.exception("admin request failed", extra={"path": path, "method": method})
            return JSONResponse(
                {"error": "internal", "detail": "the admin hit an unexpected error; its log has the details"}, 500
            )

    return Route(path, endpoint, methods=[method], name=f"{method} {path}")


def unavailable(what: str) -> Response:
    return JSONResponse(
        {"error": "unavailable", "detail": f"{what} is not answering; try again shortly"},
        503,
        headers={"Retry-After": "5"},
    )
