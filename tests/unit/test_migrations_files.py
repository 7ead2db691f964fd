from __future__ import annotations

from pathlib import Path

import pytest
from hookstream.db.migrations import bundled_migrations, load_migrations
from hookstream.errors import MigrationError


def test_bundled_migrations_are_ordered_and_named() -> None:
    migrations = bundled_migrations()
    assert migrations, "the project ships migrations"
    assert [m.version for m in migrations] == sorted({m.version for m in migrations})


def test_files_load_in_number_order(tmp_path: Path) -> None:
    (tmp_path / "0010_later.sql").write_text("SELECT 2;")
    (tmp_path / "0002_first.sql").write_text("SELECT 1;")
    assert [(m.version, m.name) for m in load_migrations(tmp_path)] == [(2, "first"), (10, "later")]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (["1_short.sql"], "must be named NNNN_description.sql"),
        (["0001_a.sql", "0001_b.sql"], "two migrations share version 0001"),
    ],
)
def test_bad_migration_files_are_refused(tmp_path: Path, files: list[str], message: str) -> None:
    for name in files:
        (tmp_path / name).write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=message):
        load_migrations(tmp_path)
