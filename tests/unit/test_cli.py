from __future__ import annotations

from click.testing import CliRunner
from hookstream_tools.cli.main import cli


def test_unknown_service_exits_2_and_lists_what_exists() -> None:
    result = CliRunner().invoke(cli, ["run", "nosuch"])
    assert result.exit_code == 2
    assert "unknown service 'nosuch'" in result.output


def test_db_migrate_without_a_stack_says_what_to_do(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    result = CliRunner().invoke(cli, ["db", "migrate"])
    assert result.exit_code == 1
    assert "DATABASE_URL is not set" in result.output
    assert "hookstream dev up" in result.output
