"""Secrets per service (security finding 9): every pod holds only the Secret keys its process reads
(tests/deploy/reads.py derives that from the settings classes and the channels file), and gets every
one it reads, on Kubernetes (every overlay; a Secret the operator creates has the keys its
deploy/secrets example lists) and in Compose (one env file per Secret). Delivery and admin, which call
URLs partners and operators choose, hold no channel's webhook secret and no workflow's credentials."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from hookstream import registry

from tests.deploy.manifests import (
    OVERLAYS,
    ROOT,
    SECRETS,
    channels_toml,
    documented_keys,
    of_kind,
    pods,
    secret_example,
    secret_keys,
    secret_refs,
    secret_volumes,
)
from tests.deploy.reads import SETUP, channel_secrets, reads

COMPOSE = ROOT / "docker-compose.yml"
KAFKA_TLS = "hookstream-kafka-tls"  # files (certificates), mounted: what the KAFKA_SSL_*_FILE settings name


def _examples() -> dict[str, set[str]]:
    """{Secret name: its keys} from deploy/secrets/<name>.env.example."""
    examples = SECRETS.glob("*.env.example")
    return {f"hookstream-{p.name.removesuffix('.env.example')}": documented_keys(p) for p in examples}


def _ours(overlay: str) -> dict[str, dict[str, Any]]:
    services = set(registry.discover()) - {"sandbox"}
    found = {name: t for name, t in pods(overlay).items() if name in services | {SETUP}}
    assert set(found) == services | {SETUP}, sorted(found)
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_pod_holds_a_secret_key_it_does_not_read(overlay: str) -> None:
    channels = channels_toml(overlay)
    for name, template in _ours(overlay).items():
        wanted = reads(name, channels)
        extra = {k: s for k, s in secret_keys(overlay, template).items() if k not in wanted}
        assert not extra, f"{name} is given {extra} ({{key: Secret}}), which {name} does not read"
        assert secret_volumes(template) <= {KAFKA_TLS}, (name, secret_volumes(template))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_pod_is_given_every_secret_key_it_reads(overlay: str) -> None:
    """The other half: a key documented for a Secret reaches every process that reads it."""
    channels = channels_toml(overlay)
    documented = {key: secret for secret, keys in _examples().items() for key in keys}
    for name, template in _ours(overlay).items():
        mounted = secret_refs(overlay, template)
        missing = {k: documented[k] for k in reads(name, channels) & set(documented) if documented[k] not in mounted}
        assert not missing, f"{name} reads {missing} ({{key: Secret}}) but does not mount that Secret"
        # The servers', the keyring's and the channels' are required: the pod does not start without them.
        for secret, optional in mounted.items():
            assert optional == (secret not in ("hookstream-database", "hookstream-keys", "hookstream-ingress")), (
                name,
                secret,
            )
        # Kafka's certificates, for the KAFKA_SSL_*_FILE settings every Kafka client reads.
        assert KAFKA_TLS in secret_volumes(template), name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_delivery_and_admin_hold_no_webhook_secret_and_no_workflow_credentials(overlay: str) -> None:
    workflows = ("CRM", "INVENTORY", "RISK", "FULFILLMENT", "NOTIFICATIONS")
    for name in ("delivery", "admin"):
        keys = set(secret_keys(overlay, _ours(overlay)[name]))
        assert "HOOKSTREAM_SECRETS_KEYS" in keys, name  # it reads and writes subscriptions
        assert not {k for k in keys if "WEBHOOK_SECRET" in k}, name
        assert not {k for k in keys if "SMTP" in k and not k.startswith("HOOKSTREAM_ADMIN_ALERT_SMTP_")}, name
        assert not {k for k in keys if k.startswith(tuple(f"HOOKSTREAM_{w}_" for w in workflows))}, name
        if name == "delivery":
            assert not {k for k in keys if k.startswith("HOOKSTREAM_ADMIN_")}, name


def test_the_ingress_secret_lists_every_channel_secret_and_only_those() -> None:
    examples = _examples()
    assert examples["hookstream-ingress"] == channel_secrets(channels_toml("base"))
    # No other Secret holds a webhook secret.
    assert not {k for s, keys in examples.items() if s != "hookstream-ingress" for k in keys if "WEBHOOK" in k}


def test_the_dev_overlay_generates_only_documented_keys() -> None:
    examples = _examples()
    generated = of_kind("overlays/dev", "Secret")
    assert generated, "the dev overlay generates its Secrets"
    for rendered, secret in generated.items():
        name = rendered.rsplit("-", 1)[0]
        assert set(secret["data"]) <= examples[name], (name, set(secret["data"]) - examples[name])


def test_compose_gives_each_service_the_env_files_of_its_kubernetes_secrets() -> None:
    """One git-ignored env file per Secret (deploy/secrets/<name>.env, from its example), and each service
    is given the same ones as its Kubernetes pod, required where the Secret is required."""
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    templates = _ours("overlays/prod")
    for name, template in templates.items():
        service = services["init" if name == SETUP else name]
        given = {}
        for entry in service["env_file"]:
            path = Path(entry["path"])
            assert path.parent == SECRETS.relative_to(ROOT), (name, path)
            example = ROOT / f"{path}.example"
            assert example.exists(), f"{name}: {path} has no {example.name}"
            ignored = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=ROOT, check=False)
            assert ignored.returncode == 0, f"{path} must be git-ignored"
            given[f"hookstream-{path.name.removesuffix('.env')}"] = not entry["required"]
        assert given == secret_refs("overlays/prod", template), name
        assert all(secret_example(s).exists() for s in given), name
    assert services["sandbox"]["env_file"] == []  # the stand-ins read no secret
