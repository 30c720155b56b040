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
"""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from regwatch.errors import SchemaMismatch, StoreError
from regwatch.store.engine import Engines, make_engines
from regwatch.store.url import normalize_store_url, redact_store_url

UPGRADE_HINT = "run `regwatch db upgrade` (back up the database first)"


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
        with engines.reader.connect() as connection:
            return revision_of(connection)
    finally:
        engines.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at `url` to `revision` (default: the head)."""
    engines = make_engines(normalize_store_url(url))
    try:
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
