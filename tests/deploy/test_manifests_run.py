"""Every container of the dev overlay, started exactly as its manifest says (its args, its environment
from the ConfigMaps and only the Secrets it mounts, its ports) against this machine's broker and
database: the setup Job migrates and creates the topics, then every service starts with --no-migrate,
answers its readiness probe and the image's HEALTHCHECK (`hookstream probe`), and stops cleanly on
SIGTERM within its grace period. What differs from a cluster is only where the servers are (the
cluster's DNS names kafka, postgres and sandbox become this machine's addresses) and where the
channels file is mounted. They run in an empty directory, so no .hookstream/stack.env of this
checkout stands in for a setting (the keyring, the servers) their manifest does not give them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.manifests import container_env, named_port, of_kind
from tests.service_processes import http_status, logs

OVERLAY = "overlays/dev"
HOOKSTREAM = str(Path(sys.executable).parent / "hookstream")


def _local(env: dict[str, str], kafka_bootstrap: str, database_url: str) -> dict[str, str]:
    """The manifest's environment with the servers' cluster names replaced by this machine's addresses."""
    local = {}
    for key, value in env.items():
        if key == "KAFKA_BOOTSTRAP_SERVERS":
            value = kafka_bootstrap
        elif key == "DATABASE_URL":
            value = database_url
        elif value == "sandbox" or "//sandbox:" in value:
            value = value.replace("sandbox", "127.0.0.1")
        local[key] = value
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **local}


def _command(pod: dict[str, Any], mounts: Path) -> list[str]:
    """The container's args; a path under a mounted ConfigMap points into ``mounts`` instead."""
    [container] = pod["containers"]
    args = []
    for arg in container["args"]:
        args.append(str(mounts / Path(arg).name) if arg.startswith("/etc/hookstream/") else str(arg))
    return [HOOKSTREAM, *args]


def test_every_container_starts_as_its_manifest_says_and_stops_on_sigterm(
    kafka_bootstrap: str, database_url: str, tmp_path: Path
) -> None:
    deployments = of_kind(OVERLAY, "Deployment")
    ours = {n: d for n, d in deployments.items() if n not in ("kafka", "postgres")}  # this machine has its own
    pods = {n: d["spec"]["template"]["spec"] for n, d in ours.items()}
    ports = {p["containerPort"] for pod in pods.values() for c in pod["containers"] for p in c.get("ports", [])}
    for port in sorted(ports):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                pytest.fail(f"port {port} is in use here; the manifests fix it: stop what listens there")
    mounts = tmp_path / "etc-hookstream"
    mounts.mkdir()
    for name, data in of_kind(OVERLAY, "ConfigMap").items():
        if name.startswith("hookstream-channels"):
            for file, text in data["data"].items():
                (mounts / file).write_text(text)

    job = of_kind(OVERLAY, "Job")["hookstream-setup"]["spec"]["template"]["spec"]
    setup = subprocess.run(
        _command(job, mounts),
        env=_local(container_env(OVERLAY, job), kafka_bootstrap, database_url),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert "applied hookstream" in setup.stdout  # a fresh database: the Job migrated it

    started: dict[str, subprocess.Popen[bytes]] = {}
    try:
        # The sandbox first: the workflows' systems (in a cluster, the Service answers once it is ready).
        for name in sorted(pods, key=lambda n: n != "sandbox"):
            log = (tmp_path / f"{name}.log").open("wb")
            env = _local(container_env(OVERLAY, pods[name]), kafka_bootstrap, database_url)
            command = _command(pods[name], mounts)
            started[name] = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        for name, pod in pods.items():
            [container] = pod["containers"]
            probe = container["readinessProbe"]["httpGet"]
            url = f"http://127.0.0.1:{named_port(container, probe['port'])}{probe['path']}"
            while http_status(url) != 200:
                assert started[name].poll() is None, f"{name} exited\n{logs(tmp_path)}"
                assert time.monotonic() < deadline, f"{name} never ready at {url}\n{logs(tmp_path)}"
                time.sleep(0.5)
            if name != "sandbox":  # the image's HEALTHCHECK, against the running process
                healthy = subprocess.run(
                    [HOOKSTREAM, "probe", "--pid", str(started[name].pid)], capture_output=True, text=True
                )
                assert healthy.returncode == 0, (name, healthy.stderr)
    finally:
        for proc in started.values():
            proc.send_signal(signal.SIGTERM)
        exits = {}
        for name, proc in started.items():
            grace = pods[name].get("terminationGracePeriodSeconds", 30)
            try:
                exits[name] = proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                exits[name] = "killed after the grace period"
    assert exits == dict.fromkeys(pods, 0), logs(tmp_path)
