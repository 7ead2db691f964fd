"""``hookstream run ingress [--host H] [--port P] [--health-host H] [--health-port P] [--workers N] [--config FILE]``.

Webhooks come in on the public port; ``/metrics`` is served only on the probe port (with ``/healthz``
and ``/readyz``), which a platform keeps inside the cluster. Both sockets are bound here, so a port
in use is one line before anything starts, and every worker serves both."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import tempfile
from pathlib import Path

import uvicorn
from hookstream.errors import ConfigurationError, HookstreamError
from hookstream.kafka import wait_for_broker
from hookstream.logs import configure_logging
from hookstream.sensors import Sensors
from hookstream.sensors.prometheus import PrometheusSensor
from hookstream.settings import KafkaSettings, LogSettings, StackSettings
from hookstream.tracing import Tracing
from hookstream_services.ingress.app import create_app, kafka_lifespan
from hookstream_services.ingress.config import IngressSettings, load_config
from hookstream_services.ingress.publisher import KafkaPublisher
from starlette.applications import Starlette
from uvicorn.supervisors import Multiprocess


def build_app() -> Starlette:
    """uvicorn's factory: runs once in every worker process, reading settings once there."""
    configure_logging(LogSettings())
    settings = IngressSettings()
    config = load_config(settings.config)
    metrics = PrometheusSensor()
    sensors = Sensors([metrics])
    tracing = Tracing.from_env("ingress")
    if tracing is not None:
        tracing.install()
    publisher = KafkaPublisher(
        StackSettings().kafka_connection(),
        config.ingress,
        KafkaSettings(client_id="ingress"),
        sensors=sensors,
        create_topic=not settings.no_migrate,
    )
    app: Starlette = create_app(
        config,
        publisher,
        workers=settings.ingress_workers,
        probe_port=settings.ingress_probe_port,
        metrics=metrics,
        sensors=sensors,
        lifespan=kafka_lifespan(publisher, tracing),
    )
    return app


DEFAULT_HEALTH_PORT = 9400


def _listen(host: str, port: int, setting: str) -> socket.socket:
    try:
        return socket.create_server((host, port), reuse_port=False)
    except OSError as exc:
        raise ConfigurationError(f"cannot listen on {host}:{port} ({setting}): {exc.strerror}") from exc


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hookstream run ingress", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--health-host", default=os.environ.get("HOOKSTREAM_HEALTH_HOST", "127.0.0.1"), help="probes and /metrics"
    )
    parser.add_argument(
        "--health-port",
        type=int,
        default=int(os.environ.get("HOOKSTREAM_HEALTH_PORT") or DEFAULT_HEALTH_PORT),
        help=f"probes and /metrics [default {DEFAULT_HEALTH_PORT}; 0 picks a free one]",
    )
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--config", type=Path, default=None, help="channels file [env HOOKSTREAM_CONFIG]")
    parser.add_argument("--no-migrate", action="store_true", help="create no topic (a `hookstream setup` Job did)")
    args = parser.parse_args(argv)
    if args.no_migrate:
        os.environ["HOOKSTREAM_NO_MIGRATE"] = "true"
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker counts in its own process; /metrics (answered by any one of them) sums them all.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="hookstream-ingress-metrics-")
    if args.config is not None:
        os.environ["HOOKSTREAM_CONFIG"] = str(args.config)
    os.environ["HOOKSTREAM_INGRESS_WORKERS"] = str(args.workers)
    try:
        settings = IngressSettings()
        config = load_config(settings.config)
        bootstrap = StackSettings().kafka_connection()
        wait_for_broker(bootstrap, timeout_ms=15_000)
        public = _listen(args.host, args.port, "--port")
        probes = _listen(args.health_host, args.health_port, "--health-port / HOOKSTREAM_HEALTH_PORT")
    except HookstreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    probe_port = probes.getsockname()[1]
    os.environ["HOOKSTREAM_INGRESS_PROBE_PORT"] = str(probe_port)  # every worker's app tells the two apart by it
    print(
        f"ingress: {len(config.channels)} channel(s) [{', '.join(config.channels)}] on http://{args.host}:{args.port}"
        f" → Kafka {bootstrap}; probes and /metrics on http://{args.health_host}:{probe_port}",
        file=sys.stderr,
    )
    stopped_by: list[int] = []
    # uvicorn drains, then re-raises the signal it caught so the default action kills the process;
    # a handler of ours receives it instead, so a graceful stop exits 0 and a crash stays non-zero.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stopped_by.append(signum))
    served = uvicorn.Config(
        "hookstream_services.ingress.main:build_app",
        factory=True,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        timeout_graceful_shutdown=30,
        log_config=None,
    )
    if args.workers > 1:
        Multiprocess(served, sockets=[public, probes]).run()
    else:
        uvicorn.Server(served).run(sockets=[public, probes])
    if stopped_by:
        print(f"ingress: stopped by {signal.Signals(stopped_by[0]).name}, in-flight webhooks drained", file=sys.stderr)
    return 0
