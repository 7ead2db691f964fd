"""``hookstream dev``: the local Apache Kafka (KRaft) and PostgreSQL, without Docker."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Any

import click
from hookstream.settings import StackSettings

from hookstream_tools.cli.common import Group, err, out
from hookstream_tools.devstack.settings import DevStackSettings

KAFKA_TOOLS = {
    "consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "topics": "org.apache.kafka.tools.TopicCommand",
    "console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "get-offsets": "org.apache.kafka.tools.GetOffsetShell",
}


def _dev_settings(state_dir: Path | None, kafka_port: int | None, postgres_port: int | None) -> DevStackSettings:
    overrides: dict[str, Any] = {}
    if state_dir is not None:
        overrides["state_dir"] = state_dir
    if kafka_port is not None:
        overrides["kafka_port"] = kafka_port
    if postgres_port is not None:
        overrides["postgres_port"] = postgres_port
    return DevStackSettings(**overrides)


state_dir_option = click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where data, logs and stack.env live [env HOOKSTREAM_DEV_STATE_DIR, default .hookstream].",
)
kafka_port_option = click.option(
    "--kafka-port", type=int, default=None, help="Broker port [env HOOKSTREAM_DEV_KAFKA_PORT, default 19092]."
)
postgres_port_option = click.option(
    "--postgres-port",
    type=int,
    default=None,
    help="PostgreSQL port [env HOOKSTREAM_DEV_POSTGRES_PORT, default 15432].",
)


@click.group(cls=Group)
def dev() -> None:
    """Local Apache Kafka (KRaft) and PostgreSQL, without Docker."""


def resolve_jars(stack: Any) -> None:
    if stack.jars.resolved or stack.kafka_external:
        return
    out.print(f"Resolving Apache Kafka {stack.jars.version} from Maven Central into {stack.jars.home} (first run only)")
    started = time.monotonic()
    with out.status("Starting Maven…") as status:

        def progress(count: int, artifact: str) -> None:
            status.update(f"Downloaded {count} artifacts · {artifact}")

        stack.jars.resolve(progress)
    jars = len(list(stack.jars.libs.glob("*.jar")))
    out.print(f"Resolved {jars} jars in {time.monotonic() - started:.1f} s")


@dev.command()
@state_dir_option
@kafka_port_option
@postgres_port_option
@click.option("--foreground", is_flag=True, help="Stay attached; Ctrl-C or SIGTERM stops both servers.")
def up(state_dir: Path | None, kafka_port: int | None, postgres_port: int | None, foreground: bool) -> None:
    """Start Kafka and PostgreSQL (reusing jars and data) and wait until both answer."""
    from hookstream_tools.devstack import DevStack

    stack = DevStack(_dev_settings(state_dir, kafka_port, postgres_port))
    # Caught before the servers start: a signal that comes while they start (stack.env is
    # already written by then) still stops both, instead of killing this process and
    # leaving them running.
    stop = _StopSignal() if foreground else None
    resolve_jars(stack)
    started = time.monotonic()
    with out.status("Starting Kafka and PostgreSQL…"):
        status = stack.up()
    out.print(f"Stack ready in {time.monotonic() - started:.1f} s", *describe(status), sep="\n")
    out.print(f"Environment written to {stack.settings.stack_env_path} (`source` it in any shell)")
    if stop is not None:
        _stay_in_foreground(stack, stop)


def describe(status: Any) -> list[str]:
    kafka = "external" if status.kafka_external else f"local, pid {status.kafka_pid}"
    pg = "external" if status.postgres_external else f"local, pid {status.postgres_pid}"
    return [
        f"  KAFKA_BOOTSTRAP_SERVERS={status.kafka_bootstrap_servers}  ({kafka})",
        f"  DATABASE_URL={status.database_url}  ({pg})",
    ]


class _StopSignal:
    """SIGINT/SIGTERM set a flag the foreground loop polls."""

    def __init__(self) -> None:
        self.requested = False
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.requested = True


def _stay_in_foreground(stack: Any, stop: _StopSignal) -> None:
    from hookstream_tools.devstack.process import log_tail

    out.print("Running in the foreground; Ctrl-C stops both servers.")
    exit_code = 0
    while not stop.requested:
        time.sleep(0.5)
        for name, server in (("Kafka", stack.kafka), ("PostgreSQL", stack.postgres)):
            external = stack.kafka_external if name == "Kafka" else stack.postgres_external
            if not external and server.pid is None and not stop.requested:
                err.print(f"[bold red]{name} exited unexpectedly;[/] last lines of {server.log_path}:")
                err.print(log_tail(server.log_path), markup=False)
                stop.requested, exit_code = True, 1
    out.print("Stopping…")
    stack.down()
    out.print("Stopped.")
    sys.exit(exit_code)


@dev.command()
@state_dir_option
def down(state_dir: Path | None) -> None:
    """Stop the local servers (data is kept; `make clean` removes it)."""
    from hookstream_tools.devstack import DevStack

    stopped = DevStack(_dev_settings(state_dir, None, None)).down()
    for name, was_running in stopped.items():
        out.print(f"{name}: {'stopped' if was_running else 'was not running'}")


@dev.command()
@state_dir_option
@kafka_port_option
@postgres_port_option
def status(state_dir: Path | None, kafka_port: int | None, postgres_port: int | None) -> None:
    """Print the stack's environment and whether each server answers (exit 1 if one does not)."""
    from hookstream_tools.devstack import DevStack

    stack = DevStack(_dev_settings(state_dir, kafka_port, postgres_port))
    st = stack.status()
    out.print(st.env_lines(), end="")
    for name, pid, answers, external in (
        ("kafka", st.kafka_pid, st.kafka_answers, st.kafka_external),
        ("postgres", st.postgres_pid, st.postgres_answers, st.postgres_external),
    ):
        where = "external" if external else (f"pid {pid}" if pid else "not running")
        out.print(f"# {name}: {'answers' if answers else 'does not answer'} ({where})")
    if not (st.kafka_answers and st.postgres_answers):
        sys.exit(1)


@dev.command()
def fetch() -> None:
    """Resolve the Kafka jars from Maven Central into the cache (no servers started)."""
    from hookstream_tools.devstack import DevStack

    stack = DevStack(DevStackSettings())
    resolve_jars(stack)
    out.print(f"Kafka {stack.jars.version} jars: {stack.jars.libs}")


@dev.command(
    "kafka-tool",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("tool", type=click.Choice(sorted(KAFKA_TOOLS)))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def kafka_tool(tool: str, args: tuple[str, ...]) -> None:
    """Run one of Kafka's own tools from the resolved jars against the stack, e.g.
    `hookstream dev kafka-tool consumer-groups --describe --all-groups`. A secured Kafka
    (KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*, KAFKA_SSL_*) is reached through a client properties
    file given as --command-config, unless the arguments name one."""
    from hookstream_tools.devstack import KafkaJars
    from hookstream_tools.devstack.tool_config import command_config, names_a_config

    jars = KafkaJars(DevStackSettings().cache_dir)
    stack = StackSettings()
    security = stack.kafka_security()
    argv = list(args)
    if "--bootstrap-server" not in argv:
        argv = ["--bootstrap-server", stack.require_kafka(), *argv]
    if security.protocol == "PLAINTEXT" or names_a_config(argv):
        result = jars.run_tool(KAFKA_TOOLS[tool], *argv)
    else:
        with command_config(security) as config:
            result = jars.run_tool(KAFKA_TOOLS[tool], *argv, "--command-config", str(config))
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    sys.exit(result.returncode)
