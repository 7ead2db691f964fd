"""The ceiling for bench/ingress.py: a bare Starlette endpoint that reads the body and answers."""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def accept(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"status": "accepted", "event_id": "x"})


app = Starlette(routes=[Route("/webhooks/{channel}", accept, methods=["POST"])])
