"""Alembic environment for regwatch's store.

Migrations run programmatically (`regwatch.store.migrate.upgrade`): the caller passes an open
connection in `config.attributes["connection"]`, so the engine settings (SQLite pragmas, explicit
BEGIN) are the store's own.
"""

from __future__ import annotations

from alembic import context

from regwatch.store.schema import metadata


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("regwatch migrations run through regwatch.store.migrate, not the CLI")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
