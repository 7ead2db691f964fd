"""The web dashboard and partner portal: a page and its script, shipped in the package (``web/``).

The page calls the same ``/api/v1`` as everyone else with the token the user signs in with (kept in
the tab's sessionStorage, sent as a bearer header, never a cookie: no CSRF to guard against). A
strict Content-Security-Policy allows only this origin's script and styles, and the script builds
the page with ``textContent``, never HTML from data.
"""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self';"
        " base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def routes() -> list[BaseRoute]:
    page = resources.files("hookstream_services.admin").joinpath("web", "index.html").read_bytes()

    async def index(request: Request) -> Response:
        return Response(page, media_type="text/html", headers={**SECURITY_HEADERS, "Cache-Control": "no-store"})

    async def home(request: Request) -> Response:
        return RedirectResponse("/ui/", 307)

    assets = StaticFiles(packages=[("hookstream_services.admin", "web")])
    return [
        Route("/", home),
        Route("/ui/", index),
        Mount("/ui/assets", app=_Secured(assets), name="assets"),
    ]


class _Secured:
    """Static files with the page's security headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def secured(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))  # type: ignore[call-overload]
                headers += [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, secured)  # type: ignore[arg-type]
