"""``hookstream probe``: the container image's HEALTHCHECK. It finds the service the container runs
from its main process's command line (``hookstream run <service> [--health-port N]``)
and environment (``HOOKSTREAM_HEALTH_PORT``), asks its probe port for ``/healthz``, and exits 0 when
the answer is 200, 1 otherwise with one line saying what it found."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from hookstream import registry
from hookstream.errors import ConfigurationError


def probe_url(argv: list[str], environ: dict[str, str]) -> str:
    """Where the process started with ``argv`` answers ``/healthz``."""
    if "run" not in argv or argv.index("run") + 1 >= len(argv):
        raise ConfigurationError(f"the process is not `hookstream run <service>`: {' '.join(argv) or 'no command'}")
    rest = argv[argv.index("run") + 1 :]
    service, options = rest[0], rest[1:]

    def option(name: str) -> str | None:
        for i, arg in enumerate(options):
            if arg == name and i + 1 < len(options):
                return options[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
        return None

    default = str(registry.get(service).health_port)
    port = option("--health-port") or environ.get("HOOKSTREAM_HEALTH_PORT") or default
    if not port.isdigit() or int(port) == 0:
        raise ConfigurationError(f"{service} has no fixed probe port ({port!r}): give it --health-port")
    return f"http://127.0.0.1:{port}/healthz"


def process_of(pid: int) -> tuple[list[str], dict[str, str]]:
    proc = Path(f"/proc/{pid}")
    argv = [a.decode(errors="replace") for a in (proc / "cmdline").read_bytes().split(b"\0") if a]
    pairs = (e.decode(errors="replace").partition("=") for e in (proc / "environ").read_bytes().split(b"\0") if e)
    return argv, {k: v for k, _, v in pairs}


def probe(pid: int = 1, *, timeout_ms: int = 2_000) -> tuple[bool, str]:
    """(healthy, what was found) for the service process ``pid``."""
    try:
        argv, environ = process_of(pid)
    except OSError as exc:
        return False, f"no process {pid} to probe: {exc.strerror}"
    try:
        url = probe_url(argv, environ)
    except ConfigurationError as exc:
        return False, str(exc)
    try:
        with urllib.request.urlopen(url, timeout=timeout_ms / 1000) as answer:  # noqa: S310 - our own loopback URL
            return answer.status == 200, f"{url}: {answer.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{url}: {exc.code}"
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        return False, f"{url}: {getattr(exc, 'reason', exc)}"
