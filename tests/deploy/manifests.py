"""deploy/k8s rendered by `kubectl kustomize`, for the checks and for the test that starts every
service as its manifest says."""

from __future__ import annotations

import base64
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("base", "overlays/dev", "overlays/prod")


KUSTOMIZE = "sigs.k8s.io/kustomize/kustomize/v5@v5.5.0"  # kubectl 1.32's, built by Go where there is no kubectl


@cache
def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    if kubectl := shutil.which("kubectl"):
        command = [kubectl, "kustomize", str(K8S / overlay)]
    elif go := shutil.which("go"):
        command = [go, "run", KUSTOMIZE, "build", str(K8S / overlay)]
    else:
        pytest.fail("needs kubectl (its kustomize renders deploy/k8s) or Go (to build kustomize)")
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(command)}: {done.stderr}"
    return tuple(d for d in yaml.safe_load_all(done.stdout) if d)


def of_kind(overlay: str, kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in rendered(overlay) if d["kind"] == kind}


def container_env(overlay: str, pod: dict[str, Any]) -> dict[str, str]:
    """The environment a pod spec's first container gets from its ConfigMaps, Secrets and own ``env``."""
    maps, secrets = of_kind(overlay, "ConfigMap"), of_kind(overlay, "Secret")
    container = pod["containers"][0]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env |= maps[source["configMapRef"]["name"]]["data"]
        elif "secretRef" in source:
            data = secrets[source["secretRef"]["name"]]["data"]
            env |= {k: base64.b64decode(v).decode() for k, v in data.items()}
    env |= {e["name"]: e["value"] for e in container.get("env", [])}
    return env


def named_port(container: dict[str, Any], port: str | int) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container["ports"] if p["name"] == port)
