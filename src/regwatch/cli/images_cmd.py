"""`regwatch images find|tags`: read the index (what `regwatch scan` stored), never the registry."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Any, cast

import click
from rich.console import Console
from rich.table import Table

from regwatch.cli.db_cmd import config_option, open_existing_store
from regwatch.errors import ConfigError
from regwatch.models import TagRecord
from regwatch.store import Store, TagOrder

DEFAULT_COUNT = 100


def console() -> Console:
    """stdout; a wide virtual terminal when piped, so image references are not wrapped."""
    out = Console(highlight=False)
    return out if out.is_terminal else Console(highlight=False, width=240)


def require_account(store: Store, account: str) -> None:
    known = store.accounts()
    if account not in known:
        raise ConfigError(
            f"account {account!r} is not in the index",
            hint=f"indexed accounts: {', '.join(known) or 'none'} (run `regwatch scan` to index "
            "configured accounts)",
        )


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def image_document(record: TagRecord) -> dict[str, Any]:
    data = asdict(record)
    data.pop("extra", None)
    data["reference"] = f"{record.registry}/{record.repository}:{record.tag}"
    return data


@click.group()
def images() -> None:
    """Look up indexed images (find, tags)."""


@images.command()
@click.argument("query", required=False)
@click.option("--account", help="Only this account.")
@click.option("--repository", help="Only this repository (exact name).")
@click.option("--tag", help="Only this tag (exact).")
@click.option("--count", type=click.IntRange(min=0), default=DEFAULT_COUNT, show_default=True,
              help="At most this many results, counted after the filters (0: all).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
def find(
    query: str | None,
    account: str | None,
    repository: str | None,
    tag: str | None,
    count: int,
    as_json: bool,
    config_path: str | None,
) -> None:
    """Images whose `registry/repository:tag` contains QUERY (case-insensitive)."""
    with open_existing_store(config_path) as store:
        if account is not None:
            require_account(store, account)
        records = store.find_images(
            query or None, account=account, repository=repository, tag=tag, limit=count or None
        )
    if as_json:
        documents = [image_document(r) for r in records]
        click.echo(json.dumps(documents, indent=2, default=_json_default))
        return
    table = Table("ACCOUNT", "IMAGE", "DIGEST", "CREATED", box=None, pad_edge=False)
    for r in records:
        digest = r.digest[:19] if r.digest else "-"
        created = r.created.strftime("%Y-%m-%d %H:%M") if r.created else "-"
        table.add_row(r.account, f"{r.registry}/{r.repository}:{r.tag}", digest, created)
    console().print(table)
    if count and len(records) == count:
        click.echo(f"(first {count}; --count N for more)", err=True)


@images.command()
@click.argument("account")
@click.argument("repository")
@click.option("--sort", "order", type=click.Choice(["lexical", "semver", "date"]),
              default="lexical", show_default=True,
              help="lexical, semantic version (ascending) or date (newest first).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
def tags(account: str, repository: str, order: str, as_json: bool, config_path: str | None) -> None:
    """The indexed tags of REPOSITORY in ACCOUNT, one per line."""
    with open_existing_store(config_path) as store:
        require_account(store, account)
        if store.repository(account, repository) is None:
            raise ConfigError(
                f"repository {repository!r} is not indexed for account {account!r}",
                hint=f"see `regwatch images find --account {account}`",
            )
        names = store.tags(account, repository, cast(TagOrder, order))
    if as_json:
        document = {"account": account, "repository": repository, "sort": order, "tags": names}
        click.echo(json.dumps(document, indent=2))
        return
    for name in names:
        click.echo(name)
