from __future__ import annotations

from pathlib import Path

import pytest
from hookstream.errors import ConfigurationError
from hookstream.settings import StackSettings
from hookstream_tools.devstack.settings import DevStackSettings


def test_environment_wins_over_stack_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / "stack.env"
    env_file.write_text("KAFKA_BOOTSTRAP_SERVERS=file:1\nDATABASE_URL=postgresql://file/db\n")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "env:2")
    settings = StackSettings(_env_file=env_file)
    assert settings.require_kafka() == "env:2"
    assert settings.require_database() == "postgresql://file/db"


def test_missing_stack_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings = StackSettings(_env_file=None)
    with pytest.raises(ConfigurationError, match="hookstream dev up"):
        settings.require_kafka()
    with pytest.raises(ConfigurationError, match="export DATABASE_URL"):
        settings.require_database()


def test_dev_stack_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKSTREAM_DEV_KAFKA_PORT", "29092")
    monkeypatch.setenv("HOOKSTREAM_DEV_STATE_DIR", "/tmp/x")
    settings = DevStackSettings()
    assert settings.kafka_bootstrap == "127.0.0.1:29092"
    assert settings.stack_env_path == Path("/tmp/x/stack.env")
