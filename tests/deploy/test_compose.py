"""docker-compose.yml, without a Docker engine: it validates against the Compose Specification's
schema (check-jsonschema's vendored copy), runs every service as `hookstream run <service>
--no-migrate` after a one-shot `setup`, keeps its secrets in git-ignored env files (one per Secret,
each service only those it reads: test_secrets.py), and every file it mounts exists."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from hookstream import registry

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"


def test_the_compose_file_validates_against_the_compose_specification() -> None:
    checker = Path(sys.executable).parent / "check-jsonschema"
    done = subprocess.run(
        [checker, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_service_runs_after_the_init_and_its_secrets_stay_out_of_git() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert services["init"]["command"] == ["setup"]
    for name in set(registry.discover()) - {"sandbox"}:
        service = services[name]
        command = service["command"]
        assert command[:2] == ["run", name], name
        assert "--no-migrate" in command, name
        assert service["depends_on"]["init"] == {"condition": "service_completed_successfully"}, name
        # Its secrets: only the env files it reads (test_secrets.py), git-ignored, each from an example.
        for secrets in service["env_file"]:
            path = secrets["path"]
            ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, check=False)
            assert ignored.returncode == 0, f"{path} must be git-ignored"
            assert (ROOT / f"{path}.example").exists(), path
    assert services["sandbox"]["command"][:2] == ["run", "sandbox"]
    profiled = {n for n, s in services.items() if "observability" in s.get("profiles", [])}
    assert profiled == {"otel-collector", "jaeger", "prometheus", "grafana"}
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert (ROOT / source).exists(), f"{name} mounts {source}, which is not in the repository"
