"""`regwatch db status|upgrade`, and how every store-using command finds and opens the store.

The store URL comes from `REGWATCH_STORE_URL`, else the config file's `regwatch.store.url`, else
the default `sqlite:///~/.regwatch/regwatch.db`. URLs are shown with any password masked.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from regwatch.config.halconfig import HalConfig, load_config
from regwatch.errors import StoreError
from regwatch.store import Store, current_revision, head_revision, open_store, resolve_store_url
from regwatch.store.url import redact_store_url, sqlite_path

F = TypeVar("F", bound=Callable[..., Any])


def config_option(func: F) -> F:
    """`--config PATH`: the file holding the accounts and `regwatch.store.url`."""
    return click.option(
        "--config",
        "config_path",
        metavar="PATH",
        help="Config file (default: $REGWATCH_CONFIG or ~/.regwatch/config).",
    )(func)


def store_url_of(config: HalConfig) -> str:
    return resolve_store_url(config.settings().store.url)


def open_existing_store(config_path: str | None) -> Store:
    """The store for a command that only reads: a missing SQLite file is an error, not created."""
    url = store_url_of(load_config(config_path))
    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise StoreError(
            f"the store {redact_store_url(url)} does not exist yet",
            hint="run `regwatch scan` to index the configured accounts",
        )
    return open_store(url)


def _revision_status(url: str) -> tuple[str | None, str]:
    """(current revision or None, head revision), without creating a missing SQLite file."""
    path = sqlite_path(url)
    current = None if path is not None and not path.exists() else current_revision(url)
    return current, head_revision()


@click.group()
def db() -> None:
    """Manage the store's schema (status, upgrade)."""


@db.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(config_path: str | None, as_json: bool) -> None:
    """Show the store's schema revision against this regwatch's; exit 1 when not current."""
    url = store_url_of(load_config(config_path))
    current, head = _revision_status(url)
    up_to_date = current == head
    if as_json:
        document = {"store": redact_store_url(url), "current": current, "head": head,
                    "upToDate": up_to_date}  # fmt: skip
        click.echo(json.dumps(document, indent=2))
    else:
        click.echo(f"store     {redact_store_url(url)}")
        click.echo(f"revision  {current or 'none (no regwatch schema)'}")
        click.echo(f"head      {head}")
        click.echo("status    " + ("up to date" if up_to_date else "run `regwatch db upgrade`"))
    if not up_to_date:
        raise click.exceptions.Exit(1)


@db.command()
@config_option
def upgrade(config_path: str | None) -> None:
    """Create the schema, or migrate it to this regwatch's revision (back up first)."""
    from regwatch.store import upgrade as upgrade_store

    url = store_url_of(load_config(config_path))
    before, head = _revision_status(url)
    where = redact_store_url(url)
    if before == head:
        click.echo(f"store {where} is already at revision {head}")
        return
    upgrade_store(url)
    after = current_revision(url)
    click.echo(f"store {where}: upgraded from {before or 'an empty database'} to {after}")
