"""Schema migrations (Alembic, shipped inside the package) and the policy for opening a database.

Policy, applied by `check_schema` when the store is opened:
- the database is at this version's head revision → open it;
- it is a new SQLite file (no tables at all) → create the schema (upgrade to head) and open it:
  the default single-user setup must work without a separate step;
- it is an older revision this version knows → refuse (SchemaMismatch, hint `regwatch db upgrade`)
  unless the caller asked for `auto_upgrade=True`; an explicit step lets the operator back up
  first, and with several instances on one PostgreSQL database no instance migrates it from under
  the others;
- a revision this version does not know (written by a newer regwatch) → refuse;
- tables but no revision, or an empty PostgreSQL database → refuse, with the hint to run
  `regwatch db upgrade` (which creates the schema) or to check the URL.

On PostgreSQL the role in the URL needs to be able to create tables in the database (own it, or
have CREATE on its `public` schema) and the pg_trgm extension: pg_trgm is a trusted extension
since PostgreSQL 13, which any role with CREATE on the database may create; on older versions a
superuser runs `CREATE EXTENSION pg_trgm` once. Database errors while opening or migrating (server
unreachable, login refused, permission denied) become StoreErrors naming the redacted URL.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import inspect
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError

from regwatch.errors import SchemaMismatch, StoreError
from regwatch.store.engine import Engines, make_engines
from regwatch.store.url import normalize_store_url, redact_store_url

UPGRADE_HINT = "run `regwatch db upgrade` (back up the database first)"
PRIVILEGE_HINT = (
    "the store URL's role must own the database (CREATE DATABASE regwatch OWNER <role>) or have "
    "CREATE on it and its public schema; before PostgreSQL 13 a superuser must also run "
    "CREATE EXTENSION pg_trgm in it once"
)
CONNECT_HINT = "check regwatch.store.url / REGWATCH_STORE_URL and that the database server is up"


@contextmanager
def database_errors(url: str, doing: str) -> Iterator[None]:
    """Turn a driver error while `doing` something to the store into a StoreError that names
    the redacted URL and the driver's first line (never the password)."""
    try:
        yield
    except DBAPIError as exc:
        lines = str(exc.orig).strip().splitlines()
        detail = lines[0] if lines else type(exc.orig).__name__
        password = make_url(url).password
        if password:
            detail = detail.replace(str(password), "***")
        raise StoreError(
            f"cannot {doing} the store {redact_store_url(url)}: {detail}",
            hint=_hint_for(getattr(exc.orig, "sqlstate", None)),
        ) from None


def _hint_for(sqlstate: str | None) -> str | None:
    if sqlstate == "42501":  # insufficient_privilege
        return PRIVILEGE_HINT
    if sqlstate in ("58P01", "0A000"):  # undefined_file / feature_not_supported: no pg_trgm
        return "install PostgreSQL's contrib modules (pg_trgm) on the database server"
    if sqlstate is None or sqlstate[:2] in ("08", "28", "3D"):  # connection, login, no database
        return CONNECT_HINT
    return None


def alembic_config() -> Config:
    """An Alembic config pointing at the migrations inside the installed package."""
    config = Config()
    location = resources.files("regwatch.store") / "migrations"
    config.set_main_option("script_location", str(location))
    return config


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest revision this version of regwatch knows."""
    head = _scripts().get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise StoreError("no store migrations found in the regwatch package")
    return head


def known_revisions() -> set[str]:
    return {script.revision for script in _scripts().walk_revisions()}


def revision_of(connection: Connection) -> str | None:
    """The revision the database is stamped with, or None."""
    return MigrationContext.configure(connection).get_current_revision()


def current_revision(url: str) -> str | None:
    """The revision of the database at `url`, or None when it has none."""
    engines = make_engines(normalize_store_url(url))
    try:
        with database_errors(url, "read the schema revision of"), engines.reader.connect() as conn:
            return revision_of(conn)
    finally:
        engines.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at `url` to `revision` (default: the head)."""
    engines = make_engines(normalize_store_url(url))
    try:
        with database_errors(url, "migrate"):
            upgrade_engines(engines, revision)
    finally:
        engines.dispose()


def upgrade_engines(engines: Engines, revision: str = "head") -> None:
    config = alembic_config()
    with engines.writer.connect() as connection:
        config.attributes["connection"] = connection
        try:
            command.upgrade(config, revision)
        except CommandError as exc:
            raise SchemaMismatch(
                f"cannot migrate the store: {exc}", hint="is this regwatch older than the database?"
            ) from None
        connection.commit()


def check_schema(engines: Engines, url: str, *, auto_upgrade: bool | None = None) -> None:
    """Apply the opening policy above; raise SchemaMismatch when the store must not be used.

    `auto_upgrade`: None = only create the schema of a new SQLite file; True = also migrate a
    known older revision; False = never change the database.
    """
    with engines.reader.connect() as connection:
        current = revision_of(connection)
        has_tables = bool(inspect(connection).get_table_names())
    head = head_revision()
    where = redact_store_url(url)
    if current == head:
        return
    if current is None:
        if not has_tables and engines.is_sqlite and auto_upgrade is not False:
            upgrade_engines(engines)
            return
        what = "has tables but no regwatch schema" if has_tables else "has no regwatch schema"
        raise SchemaMismatch(f"the store {where} {what}", hint=UPGRADE_HINT)
    if current not in known_revisions():
        raise SchemaMismatch(
            f"the store {where} is at schema revision {current}, unknown to this regwatch "
            f"(which knows up to {head})",
            hint="upgrade regwatch, or point regwatch.store.url at another database",
        )
    if auto_upgrade:
        upgrade_engines(engines)
        return
    raise SchemaMismatch(
        f"the store {where} is at schema revision {current}, this regwatch needs {head}",
        hint=UPGRADE_HINT,
    )
