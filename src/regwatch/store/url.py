"""Where the store lives: URL resolution and redaction. No database I/O.

Precedence: `REGWATCH_STORE_URL`, then the config file's `regwatch.store.url`, then the default
`sqlite:///~/.regwatch/regwatch.db`. A `~` in a SQLite path is expanded and the directory of a
SQLite file is created (mode 0700, it holds the index of private registries). PostgreSQL URLs
(`postgresql://…`) are given the psycopg 3 driver (`postgresql+psycopg://…`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from regwatch.errors import StoreError

DEFAULT_STORE_URL = "sqlite:///~/.regwatch/regwatch.db"
ENV_STORE_URL = "REGWATCH_STORE_URL"
_PREFIX_HINT = "e.g. sqlite:///~/.regwatch/regwatch.db or postgresql://user@host/regwatch"


def resolve_store_url(config_value: str | None, env: Mapping[str, str] = os.environ) -> str:
    """The store URL to use, with `~` expanded and the driver made explicit.

    `env[REGWATCH_STORE_URL]` wins over `config_value`, which wins over the default. Empty values
    count as unset.
    """
    raw = (env.get(ENV_STORE_URL) or "").strip() or (config_value or "").strip()
    return normalize_store_url(raw or DEFAULT_STORE_URL)


def parse_store_url(url: str) -> URL:
    """Parse a store URL; a malformed one is a StoreError that does not echo the URL."""
    try:
        return make_url(url)
    except ArgumentError:
        raise StoreError("the store URL is not a valid database URL", hint=_PREFIX_HINT) from None


def normalize_store_url(url: str) -> str:
    """Expand `~` in SQLite paths and pin the driver: pysqlite for SQLite, psycopg 3 for PG."""
    parsed = parse_store_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        parsed = parsed.set(drivername="sqlite")
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            parsed = parsed.set(database=str(Path(database).expanduser()))
    elif backend == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    else:
        raise StoreError(f"unsupported store backend {backend!r}", hint=_PREFIX_HINT)
    return parsed.render_as_string(hide_password=False)


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL, or None for another backend or an in-memory database."""
    parsed = parse_store_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser()


def ensure_sqlite_directory(url: str) -> None:
    """Create the directory of a SQLite file (0700) when it does not exist yet."""
    path = sqlite_path(url)
    if path is None:
        return
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"cannot create the store directory {path.parent}: {exc.strerror}",
            hint="set regwatch.store.url or REGWATCH_STORE_URL to a writable location",
        ) from None


def redact_store_url(url: str) -> str:
    """The URL with any password replaced by `***`, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid store URL>"
