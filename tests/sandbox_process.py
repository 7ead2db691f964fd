"""The sandbox in tests: as ``hookstream run sandbox`` starts it (a process of its own), and its fault switch."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from typing import Any

from hookstream_tools.devstack.process import free_port
from hookstream_tools.sandbox import SandboxServers


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - the test's own sandbox
        return json.loads(response.read())


class SandboxProcess:
    def __init__(self, *args: str) -> None:
        self.http_port, self.smtp_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        command = [sys.executable, "-m", "hookstream", "run", "sandbox", "--http-port", str(self.http_port)]
        command += ["--smtp-port", str(self.smtp_port), *args]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while True:
            try:
                get_json(f"{self.url}/_sandbox/summary")
                return
            except OSError:
                assert self.proc.poll() is None, self.proc.stderr.read() if self.proc.stderr else ""
                assert time.monotonic() < deadline, "the sandbox did not answer within 30 s"
                time.sleep(0.2)

    def stop(self) -> tuple[int, str, str]:
        """SIGTERM; the exit code and what it printed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=20)
        return self.proc.returncode, out, err


async def set_faults(servers: SandboxServers | str, system: str, **faults: object) -> None:
    """Tell a sandbox (in this process, or by its URL) what to get wrong for ``system``."""
    import aiohttp

    url = servers if isinstance(servers, str) else servers.http_url
    async with aiohttp.ClientSession() as s, s.put(f"{url}/_sandbox/faults/{system}", json=faults) as r:
        assert r.status == 200, await r.text()
