"""An ASGI app served by uvicorn as a part of a service: ``start()`` binds and serves, ``stop()`` drains.

The service's entrypoint owns the signals and the lifecycle, so uvicorn's own runner (which installs
signal handlers and exits the process on a bind error) is not used: the socket is bound here, and a
port in use is a one-line ``ConfigurationError`` naming the setting.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn

from hookstream.errors import ConfigurationError
from hookstream.lifecycle import Lifecycle


class AsgiServer(Lifecycle):
    def __init__(self, app: Any, host: str, port: int, *, setting: str = "") -> None:
        """``setting``: the environment variable that sets the port, for the error message."""
        self.app = app
        self.host = host
        self.port = port
        self.setting = setting
        self._server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        try:
            self._socket = socket.create_server((self.host, self.port), reuse_port=False)
        except OSError as exc:
            where = f" (set {self.setting})" if self.setting else ""
            raise ConfigurationError(f"cannot listen on {self.host}:{self.port}{where}: {exc.strerror}") from exc
        self.port = self._socket.getsockname()[1]
        config = uvicorn.Config(self.app, lifespan="off", log_config=None, access_log=False, server_header=False)
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        await server.startup(sockets=[self._socket])
        self._server = server
        self._task = asyncio.get_running_loop().create_task(server.main_loop(), name=f"http-{self.port}")

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.should_exit = True  # stops accepting; requests in flight finish in shutdown()
        if self._task is not None:
            await self._task
        await server.shutdown(sockets=[self._socket] if self._socket else None)

    async def wait(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)
