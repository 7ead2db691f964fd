"""A failing notifier's error is kept and shown to read tokens (GET /api/v1/alerts): it must not carry
the Slack webhook URL, whose path is the secret that lets anyone post to the channel."""

from __future__ import annotations

from typing import Any, cast

from aiohttp import web
from hookstream.store.alerts import AlertStore, Notification
from hookstream_services.admin.alerting import Alerting
from hookstream_services.admin.config import AdminSettings
from hookstream_tools.devstack.process import free_port

SECRET_PATH = "/services/T0000/B0000/very-secret-token"


class _Store:
    def __init__(self) -> None:
        self.errors: list[str] = []

    async def failed(self, n: Notification, error: str, *, retry_in_s: float | None) -> None:
        self.errors.append(error)


async def test_a_failing_slack_notifier_keeps_no_secret_in_its_error() -> None:
    port = free_port()
    app = web.Application()

    async def slack(_: web.Request) -> web.Response:
        return web.Response(status=404, text="no_service")

    app.router.add_post(SECRET_PATH, slack)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    store = _Store()
    url = f"http://127.0.0.1:{port}{SECRET_PATH}"
    alerting = Alerting(
        cast(AlertStore, store), cast(Any, None), cast(Any, None), cast(Any, None), AdminSettings(alert_slack_url=url)
    )
    try:
        told = await alerting._tell(Notification(1, "slack", 1, "dead_letters", "crm", True, "1 dead letter"))
    finally:
        if alerting._session is not None:
            await alerting._session.close()
        await runner.cleanup()
    assert told is False
    [error] = store.errors
    assert "very-secret-token" not in error
    assert "B0000" not in error
    assert "404" in error
