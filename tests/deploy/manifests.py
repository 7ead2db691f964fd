"""deploy/k8s rendered by `kubectl kustomize`, for the checks and for the test that starts every
service as its manifest says."""

from __future__ import annotations

import base64
import re
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
    """The environment a pod spec's first container gets from its ConfigMaps, Secrets and own ``env``
    (an optional Secret the overlay does not provide adds nothing, as on a cluster without it)."""
    maps, secrets = of_kind(overlay, "ConfigMap"), of_kind(overlay, "Secret")
    container = pod["containers"][0]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env |= maps[source["configMapRef"]["name"]]["data"]
        elif "secretRef" in source:
            ref = source["secretRef"]
            if ref["name"] not in secrets:
                assert ref.get("optional") is True, f"Secret {ref['name']} is required but not in {overlay}"
                continue
            data = secrets[ref["name"]]["data"]
            env |= {k: base64.b64decode(v).decode() for k, v in data.items()}
    env |= {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    return env


def channels_toml(overlay: str) -> str:
    """The channels file ingress is given (the hookstream-channels ConfigMap)."""
    [channels] = [c for n, c in of_kind(overlay, "ConfigMap").items() if n.startswith("hookstream-channels")]
    return str(channels["data"]["channels.toml"])


def pods(overlay: str) -> dict[str, dict[str, Any]]:
    """hookstream's pod templates (every Deployment of a service and the setup Job) by name, with the
    labels they run with: what the NetworkPolicies select and the Secrets are mounted into."""
    found = {}
    for kind in ("Deployment", "Job"):
        for name, workload in of_kind(overlay, kind).items():
            template = workload["spec"]["template"]
            if template["metadata"]["labels"].get("app.kubernetes.io/part-of") == "hookstream":
                found[name] = template
    return found


SECRETS = ROOT / "deploy" / "secrets"  # <name>.env.example: the keys of the Secret hookstream-<name>
_HASHED = re.compile(r"-[a-z0-9]{10}$")  # the content hash kustomize appends to a generated name
_ENV_KEY = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=", re.MULTILINE)


def documented_keys(path: Path) -> set[str]:
    """The keys an env file (or its example) lists, the commented-out optional ones included."""
    return set(_ENV_KEY.findall(path.read_text()))


def secret_example(secret: str) -> Path:
    """The Secret ``hookstream-<name>`` → deploy/secrets/<name>.env.example, which lists its keys."""
    return SECRETS / f"{secret.removeprefix('hookstream-')}.env.example"


def secret_name(overlay: str, name: str) -> str:
    """A Secret's name as written in the manifests: without the hash of a Secret the overlay generates."""
    return _HASHED.sub("", name) if name in of_kind(overlay, "Secret") else name


def secret_refs(overlay: str, template: dict[str, Any]) -> dict[str, bool]:
    """{Secret name: optional} for every Secret a pod template's first container takes environment from."""
    container = template["spec"]["containers"][0]
    refs = {}
    for source in container.get("envFrom", []):
        if ref := source.get("secretRef"):
            refs[secret_name(overlay, ref["name"])] = bool(ref.get("optional"))
    for e in container.get("env", []):
        if ref := e.get("valueFrom", {}).get("secretKeyRef"):
            refs[secret_name(overlay, ref["name"])] = bool(ref.get("optional"))
    return refs


def secret_keys(overlay: str, template: dict[str, Any]) -> dict[str, str]:
    """Every Secret key a pod's environment may hold, with the Secret it comes from: all of a Secret's
    keys for ``envFrom`` (those the overlay renders, else those its deploy/secrets example lists: the
    Secret an operator creates), the one key of a ``secretKeyRef``."""
    secrets = of_kind(overlay, "Secret")
    container = template["spec"]["containers"][0]
    keys: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if not (ref := source.get("secretRef")):
            continue
        name = secret_name(overlay, ref["name"])
        if ref["name"] in secrets:
            data = set(secrets[ref["name"]].get("data", {})) | set(secrets[ref["name"]].get("stringData", {}))
        else:
            example = secret_example(name)
            assert example.exists(), f"Secret {name}: neither rendered in {overlay} nor listed in {example}"
            data = documented_keys(example)
        keys |= dict.fromkeys(sorted(data), name)
    for e in container.get("env", []):
        if ref := e.get("valueFrom", {}).get("secretKeyRef"):
            keys[e["name"]] = secret_name(overlay, ref["name"])
    return keys


def secret_volumes(template: dict[str, Any]) -> set[str]:
    """The Secrets a pod template mounts as files."""
    return {v["secret"]["secretName"] for v in template["spec"].get("volumes", []) if "secret" in v}


def named_port(container: dict[str, Any], port: str | int) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container["ports"] if p["name"] == port)
