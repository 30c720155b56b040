"""PostgreSQL-only behaviour, on the session's throwaway server whatever REGWATCH_TEST_STORE says:
what the role in the store URL needs, how connection and privilege errors surface, and that the
substring search can use the pg_trgm index.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from harness.common import free_port
from harness.postgres import PostgresServer
from regwatch.errors import StoreError
from regwatch.store import StagedTag, current_revision, head_revision, open_store, upgrade
from regwatch.store.dialect import chars_pattern, like_pattern
from regwatch.store.queries import _find_statement


@pytest.fixture
def database(postgres_server: PostgresServer) -> Iterator[str]:
    """An empty database owned by the superuser."""
    name = postgres_server.create_database()
    try:
        yield name
    finally:
        postgres_server.drop_database(name)


def role_name() -> str:
    return f"r_{secrets.token_hex(4)}"


def test_a_database_owner_needs_no_superuser(postgres_server: PostgresServer) -> None:
    """pg_trgm is a trusted extension (PostgreSQL 13+): the database's owner creates it."""
    role = postgres_server.create_role(role_name())
    name = postgres_server.create_database(owner=role)
    try:
        url = postgres_server.url(name, user=role)
        upgrade(url)
        assert current_revision(url) == head_revision()
        with open_store(url) as store:
            store.ensure_account("hub", "reg.example")
            scan = store.begin_repository_scan("hub", "team/app")
            store.stage_tags(scan, [StagedTag("1.0"), StagedTag("2.0")])
            store.finish_repository_scan(scan)
            assert [i.tag for i in store.find_images("team/app:2")] == ["2.0"]
        with postgres_server.connect(name) as conn:
            owner = conn.execute(
                "SELECT r.rolname FROM pg_extension e JOIN pg_roles r ON r.oid = e.extowner "
                "WHERE e.extname = 'pg_trgm'"
            ).fetchone()
        assert owner == (role,)
    finally:
        postgres_server.drop_database(name)


def test_a_role_that_may_not_create_tables_gets_a_store_error(
    postgres_server: PostgresServer, database: str
) -> None:
    role = postgres_server.create_role(role_name())
    url = postgres_server.url(database, user=role)
    with pytest.raises(StoreError, match="cannot migrate the store") as err:
        upgrade(url)
    assert "permission denied" in err.value.message
    assert "OWNER" in str(err.value.hint)
    assert current_revision(postgres_server.url(database)) is None  # rolled back as a whole


def test_an_unreachable_server_is_a_store_error_without_the_password() -> None:
    url = f"postgresql://regwatch:s3cret-pw@127.0.0.1:{free_port()}/regwatch"
    for action in (open_store, current_revision, upgrade):
        with pytest.raises(StoreError, match=r"127\.0\.0\.1") as err:
            action(url)
        assert "s3cret-pw" not in str(err.value)
        assert err.value.__cause__ is None
        assert err.value.__suppress_context__
        assert "REGWATCH_STORE_URL" in str(err.value.hint)


def test_a_missing_database_is_a_store_error(postgres_server: PostgresServer) -> None:
    url = postgres_server.url("no_such_database")
    with pytest.raises(StoreError, match="no_such_database") as err:
        open_store(url)
    assert err.value.hint


def test_plain_postgresql_urls_get_the_psycopg_driver(
    postgres_server: PostgresServer, database: str
) -> None:
    url = postgres_server.url(database, driver="")
    assert url.startswith("postgresql://")
    upgrade(url)
    with open_store(url) as store:
        assert store.url.startswith("postgresql+psycopg://")
        assert not store.is_sqlite


def test_substring_search_can_use_the_trigram_index(
    postgres_server: PostgresServer, database: str
) -> None:
    """The `q` query (`ref LIKE '%…%' ESCAPE '\\'` and its translated text, revision 0003) is
    one the GIN index serves."""
    url = postgres_server.url(database)
    upgrade(url)
    with open_store(url) as store:
        store.ensure_account("hub", "reg.example")
        scan = store.begin_repository_scan("hub", "team/app")
        store.stage_tags(scan, [StagedTag(f"build-{i}") for i in range(2000)])
        store.finish_repository_scan(scan)
        statement = _find_statement(False, False, False, True, False, True, True)
        compiled = statement.compile(store.engines.reader)
        params = {"pattern": like_pattern("app:build-1234"), "limit": 50}
        params["chars"] = chars_pattern("app:build-1234")
        with store.engines.reader.connect() as conn, conn.begin():
            conn.execute(text("ANALYZE tags"))
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            conn.execute(text("SET LOCAL enable_indexscan = off"))  # leaves bitmap scans
            plan = conn.exec_driver_sql(f"EXPLAIN {compiled}", compiled.construct_params(params))
            lines = [row[0] for row in plan]
        assert any("ix_tags_account_search" in line for line in lines), lines
        assert [i.tag for i in store.find_images("app:build-1234")] == ["build-1234"]
