"""A database failure after the store was opened is a StoreError naming the store's redacted URL
(the driver's exception kept as its cause), and the API answers it with a 503 in the JSON error
shape. On a private throwaway PostgreSQL that the test stops half-way (the session's server is
shared), and on SQLite."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from api_support import serve_app
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from harness.postgres import PostgresServer
from regwatch.api import create_app
from regwatch.errors import StoreError
from regwatch.indexer.reload import load_snapshot
from regwatch.service import Service
from regwatch.store import Store, open_store, upgrade

PASSWORD = "s3cret-pw"  # the throwaway server trusts 127.0.0.1: the password is never checked


@pytest.fixture
def private_postgres() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture
def password_url(private_postgres: PostgresServer) -> str:
    """A migrated database on the private server, by a URL that carries a password."""
    url = private_postgres.url(private_postgres.create_database())
    upgrade(url)
    return url.replace("://postgres@", f"://postgres:{PASSWORD}@")


def check_store_error(error: StoreError, doing: str) -> None:
    assert error.message.startswith(f"cannot {doing} the store postgresql+psycopg://postgres:***@")
    assert PASSWORD not in str(error)
    assert "database server is up" in str(error.hint)
    assert isinstance(error.__cause__, DBAPIError)


def test_a_stopped_server_is_a_store_error_on_reads_writes_and_batches(
    private_postgres: PostgresServer, password_url: str
) -> None:
    with open_store(password_url) as store:
        store.ensure_account("hub", "reg.example")
        assert store.accounts() == ["hub"]
        private_postgres.stop()
        with pytest.raises(StoreError) as read:
            store.accounts()
        check_store_error(read.value, "read")
        with pytest.raises(StoreError) as write:
            store.ensure_account("other", "reg.example")
        check_store_error(write.value, "write")
        outcomes = store.write_batch([lambda: store.ensure_account("third", "reg.example")])
        ((value, error),) = outcomes
        assert value is None
        assert isinstance(error, StoreError)
        check_store_error(error, "write")


@pytest.mark.parametrize("path", ["/dockerRegistry/images/find", "/events"], ids=["find", "events"])
async def test_the_api_answers_503_with_the_error_shape(
    private_postgres: PostgresServer, password_url: str, tmp_path: Path, path: str
) -> None:
    """find reads the database without the Store (api/images.py), /events through the Store."""
    snapshot = load_snapshot(tmp_path / "config", environ={})
    service = Service(
        snapshot, open_store(password_url), rng=random.Random(3), environ={}, stop_timeout=5
    )
    query = {"q": "app"} if path.endswith("find") else {}
    app = create_app(service, cache_seconds=0)
    async with serve_app(app) as base, aiohttp.ClientSession() as session:
        async with session.get(base + path, params=query) as resp:
            assert resp.status == 200  # the store answers
        private_postgres.stop()
        async with session.get(base + path, params=query) as resp:
            assert resp.status == 503
            body = await resp.json()
    assert set(body) == {"timestamp", "status", "error", "message", "path", "hint"}
    assert (body["status"], body["error"], body["path"]) == (503, "Service Unavailable", path)
    assert body["message"].startswith("cannot read the store postgresql+psycopg://postgres:***@")
    assert "database server is up" in body["hint"]
    assert PASSWORD not in str(body)


def test_a_sqlite_failure_is_a_store_error_without_the_server_hint(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path}/store.db") as store:
        store.ensure_account("hub", "reg.example")
        with store.engines.writer.connect() as conn, conn.begin():
            conn.execute(text("DROP TABLE scan_runs"))  # the database is damaged under us
        with pytest.raises(StoreError, match="no such table: scan_runs") as err:
            store.start_run("hub")
    assert err.value.message.startswith(f"cannot write the store sqlite:///{tmp_path}/store.db")
    assert err.value.hint is None
    assert isinstance(err.value.__cause__, DBAPIError)
    assert Store.start_run  # the method exists on the facade (not a typo in the test)
