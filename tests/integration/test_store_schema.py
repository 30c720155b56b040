"""Migrations and the open/refuse policy, on real databases: SQLite files, or PostgreSQL databases
with REGWATCH_TEST_STORE=postgres (the policy differs for an empty database: see
`regwatch.store.migrate`)."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from regwatch.errors import SchemaMismatch
from regwatch.store import current_revision, head_revision, migrate, open_store, upgrade
from regwatch.store.schema import metadata
from regwatch.store.url import normalize_store_url

ROOT = Path(__file__).resolve().parents[2]
SETUP = "from setuptools import setup; setup()"
SQLITE_SEARCH = {"tags_search", "tags_search_pending", "tags_search_delete", "tags_search_update"}


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def execute(url: str, *statements: str) -> None:
    """Run raw SQL in one transaction, outside regwatch (to fake other schemas and revisions)."""
    engine = create_engine(normalize_store_url(url))
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def table_names(url: str) -> set[str]:
    engine = create_engine(normalize_store_url(url))
    try:
        with engine.connect() as conn:
            return set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


def test_an_empty_database_gets_the_schema_only_if_it_is_a_new_sqlite_file(
    empty_store_url: str,
) -> None:
    """SQLite (the single-user default) works without a separate step; an empty PostgreSQL
    database is refused with the command to run: several instances share it, and nobody should
    create a schema by accident in a database pointed at by mistake."""
    url = empty_store_url
    if is_sqlite(url):
        with open_store(url) as store:
            assert store.counts().tags == 0
        assert current_revision(url) == head_revision()
        with sqlite3.connect(url.removeprefix("sqlite:///")) as raw:
            assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        return
    with pytest.raises(SchemaMismatch, match="has no regwatch schema") as err:
        open_store(url)
    assert "regwatch db upgrade" in str(err.value.hint)
    assert current_revision(url) is None
    assert table_names(url) == set()  # refused without touching it
    upgrade(url)
    with open_store(url, auto_upgrade=False) as store:
        assert store.counts().tags == 0


def test_a_new_sqlite_file_in_a_new_directory_gets_the_schema(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "sub" / "new.db")
    with open_store(url) as store:
        assert store.counts().tags == 0
    assert current_revision(url) == head_revision()


def test_upgrade_migrates_an_empty_database_and_is_idempotent(empty_store_url: str) -> None:
    assert current_revision(empty_store_url) is None
    upgrade(empty_store_url)
    assert current_revision(empty_store_url) == head_revision()
    upgrade(empty_store_url)  # already at head: nothing to do
    assert current_revision(empty_store_url) == head_revision()
    with open_store(empty_store_url, auto_upgrade=False) as store:
        store.ensure_account("hub", "reg.example")
        assert store.accounts() == ["hub"]


TAG_NAME_INDEXES = ("ix_tags_tag", "ix_tags_short_tag")


def test_migrated_schema_matches_the_declared_tables(empty_store_url: str) -> None:
    """The migration creates exactly `schema.metadata`, plus the search index that is not
    declared there (SQLite: the FTS5 table; PostgreSQL: the GIN index of revision 0003), and
    each tag-name index only on the database it is declared for (Alembic's comparison does not
    read `ddl_if`, so they are looked at apart): SQLite's covers one-character tags only."""
    upgrade(empty_store_url)
    engine = create_engine(normalize_store_url(empty_store_url))

    def compared(_object: object, name: str | None, kind: str, *_: object) -> bool:
        if kind == "table" and name is not None and name.startswith("tags_search"):
            return False
        return not (kind == "index" and name in (*TAG_NAME_INDEXES, "ix_tags_account_search"))

    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"include_object": compared, "compare_type": True}
        )
        diff = compare_metadata(context, metadata)
        tag_indexes = [
            index["name"]
            for index in inspect(conn).get_indexes("tags")
            if index["column_names"] == ["tag"]
        ]
    engine.dispose()
    assert diff == []
    assert tag_indexes == ["ix_tags_short_tag" if is_sqlite(empty_store_url) else "ix_tags_tag"]


def test_the_search_index_exists(empty_store_url: str) -> None:
    upgrade(empty_store_url)
    engine = create_engine(normalize_store_url(empty_store_url))
    with engine.connect() as conn:
        if is_sqlite(empty_store_url):
            names = set(conn.exec_driver_sql("SELECT name FROM sqlite_master").scalars())
            assert names >= SQLITE_SEARCH
        else:
            extensions = set(conn.exec_driver_sql("SELECT extname FROM pg_extension").scalars())
            assert {"pg_trgm", "btree_gin"} <= extensions
            definition = conn.exec_driver_sql(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_tags_account_search'"
            ).scalar_one()
            assert "USING gin (account, translate((ref)::text," in definition
            assert "gin_trgm_ops" in definition
    engine.dispose()


def test_sorted_columns_compare_bytes(store_url: str) -> None:
    """Repository and tag names sort byte-wise whatever the database's default collation (the
    test PostgreSQL cluster's is ICU en-US, which would put "a" before "B")."""
    engine = create_engine(normalize_store_url(store_url))
    with engine.connect() as conn:
        for table, column in (("tags", "tag"), ("tags", "repository"), ("repositories", "name")):
            if is_sqlite(store_url):
                sql = conn.exec_driver_sql(
                    "SELECT sql FROM sqlite_master WHERE name = ?", (table,)
                ).scalar_one()
                assert "COLLATE" not in sql  # BINARY, SQLite's default
            else:
                collation = conn.exec_driver_sql(
                    "SELECT collation_name FROM information_schema.columns "
                    "WHERE table_name = %s AND column_name = %s",
                    (table, column),
                ).scalar_one()
                assert collation == "C", (table, column)
    engine.dispose()


def test_a_database_from_a_newer_regwatch_is_refused(store_url: str) -> None:
    execute(store_url, "UPDATE alembic_version SET version_num = 'ffff9999'")
    with pytest.raises(SchemaMismatch, match="unknown to this regwatch") as err:
        open_store(store_url)
    assert err.value.hint
    assert current_revision(store_url) == "ffff9999"  # left untouched


def test_auto_upgrade_does_not_touch_an_unknown_revision(store_url: str) -> None:
    execute(store_url, "UPDATE alembic_version SET version_num = 'ffff9999'")
    with pytest.raises(SchemaMismatch):
        open_store(store_url, auto_upgrade=True)
    assert current_revision(store_url) == "ffff9999"


def test_tables_without_a_revision_are_refused_with_the_upgrade_hint(
    empty_store_url: str,
) -> None:
    execute(empty_store_url, "CREATE TABLE something (x INTEGER)")
    with pytest.raises(SchemaMismatch, match="has tables but no regwatch schema") as err:
        open_store(empty_store_url)
    assert "regwatch db upgrade" in str(err.value.hint)
    assert table_names(empty_store_url) == {"something"}


def test_auto_upgrade_false_refuses_even_an_empty_database(empty_store_url: str) -> None:
    with pytest.raises(SchemaMismatch, match="has no regwatch schema"):
        open_store(empty_store_url, auto_upgrade=False)
    upgrade(empty_store_url)
    open_store(empty_store_url, auto_upgrade=False).close()


def test_an_older_known_revision_needs_an_explicit_upgrade(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pretend this regwatch knows a revision 9999 beyond the database's (the real head)."""
    url = store_url
    head, known = head_revision(), migrate.known_revisions()
    monkeypatch.setattr(migrate, "head_revision", lambda: "9999")
    monkeypatch.setattr(migrate, "known_revisions", lambda: known | {"9999"})
    upgrades: list[str] = []
    monkeypatch.setattr(
        migrate, "upgrade_engines", lambda _engines, rev="head": upgrades.append(rev)
    )
    with pytest.raises(
        SchemaMismatch, match=f"at schema revision {head}, this regwatch needs 9999"
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
