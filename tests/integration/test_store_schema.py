"""Migrations and the open/refuse policy, on real SQLite files."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from regwatch.errors import SchemaMismatch
from regwatch.store import current_revision, head_revision, migrate, open_store, upgrade
from regwatch.store.schema import metadata

ROOT = Path(__file__).resolve().parents[2]
SETUP = "from setuptools import setup; setup()"


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def test_a_new_sqlite_file_gets_the_schema(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "sub" / "new.db")
    with open_store(url) as store:
        assert store.counts().tags == 0
    assert current_revision(url) == head_revision()
    with sqlite3.connect(tmp_path / "sub" / "new.db") as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_migrated_schema_matches_the_declared_tables(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "m.db")
    upgrade(url)
    engine = create_engine(url)

    def not_search_index(name: str | None, kind: str, _parent: object) -> bool:
        return not (kind == "table" and name is not None and name.startswith("tags_search"))

    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"include_name": not_search_index, "compare_type": True}
        )
        diff = compare_metadata(context, metadata)
    engine.dispose()
    assert diff == []


def test_search_index_and_its_triggers_exist(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    upgrade(sqlite_url(path))
    with sqlite3.connect(path) as raw:
        names = {row[0] for row in raw.execute("SELECT name FROM sqlite_master")}
    assert {
        "tags_search",
        "tags_search_insert",
        "tags_search_delete",
        "tags_search_update",
    } <= names


def test_a_database_from_a_newer_regwatch_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    upgrade(sqlite_url(path))
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE alembic_version SET version_num = 'ffff9999'")
    with pytest.raises(SchemaMismatch, match="unknown to this regwatch") as err:
        open_store(sqlite_url(path))
    assert err.value.hint
    assert current_revision(sqlite_url(path)) == "ffff9999"  # left untouched


def test_auto_upgrade_does_not_touch_an_unknown_revision(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    upgrade(sqlite_url(path))
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE alembic_version SET version_num = 'ffff9999'")
    with pytest.raises(SchemaMismatch):
        open_store(sqlite_url(path), auto_upgrade=True)


def test_tables_without_a_revision_are_refused_with_the_upgrade_hint(tmp_path: Path) -> None:
    path = tmp_path / "foreign.db"
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE something (x INTEGER)")
    with pytest.raises(SchemaMismatch, match="no regwatch schema") as err:
        open_store(sqlite_url(path))
    assert "regwatch db upgrade" in str(err.value.hint)


def test_auto_upgrade_false_refuses_even_a_new_file(tmp_path: Path) -> None:
    with pytest.raises(SchemaMismatch, match="has no regwatch schema"):
        open_store(sqlite_url(tmp_path / "new.db"), auto_upgrade=False)
    upgrade(sqlite_url(tmp_path / "new.db"))
    open_store(sqlite_url(tmp_path / "new.db"), auto_upgrade=False).close()


def test_an_older_known_revision_needs_an_explicit_upgrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pretend this regwatch knows a revision 0002 beyond the database's 0001."""
    url = sqlite_url(tmp_path / "old.db")
    upgrade(url)
    monkeypatch.setattr(migrate, "head_revision", lambda: "0002")
    monkeypatch.setattr(migrate, "known_revisions", lambda: {"0001", "0002"})
    upgrades: list[str] = []
    monkeypatch.setattr(
        migrate, "upgrade_engines", lambda _engines, rev="head": upgrades.append(rev)
    )
    with pytest.raises(
        SchemaMismatch, match="at schema revision 0001, this regwatch needs 0002"
    ) as err:
        open_store(url)
    assert "regwatch db upgrade" in str(err.value.hint)
    assert upgrades == []  # never migrated implicitly
    open_store(url, auto_upgrade=True).close()
    assert upgrades == ["head"]


def test_migrations_are_package_data(tmp_path: Path) -> None:
    """Build the package (setuptools build_py, from a copy of the project) and check that the
    migrations are in it, then run them from the built copy."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "pyproject.toml", project)
    shutil.copy(ROOT / "README.md", project)
    shutil.copytree(
        ROOT / "src", project / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__")
    )
    build = tmp_path / "build"
    result = subprocess.run(
        [sys.executable, "-c", SETUP, "-q", "build_py", "-d", str(build)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    migrations = build / "regwatch" / "store" / "migrations"
    for needed in ("env.py", "script.py.mako", "versions/0001_initial.py"):
        assert (migrations / needed).is_file(), needed
    db = tmp_path / "built.db"
    script = (
        "import sys, regwatch.store as s; "
        "s.upgrade(sys.argv[1]); print(s.current_revision(sys.argv[1]), s.__file__)"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, sqlite_url(db)],
        cwd=tmp_path,
        env={"PYTHONPATH": str(build)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    revision, module = run.stdout.split()
    assert revision == head_revision()
    assert module.startswith(str(build))  # the built copy, not the source tree
