"""`regwatch config provider docker-registry account add|edit|get|list|delete`."""

from __future__ import annotations

import json
from typing import Any

import click

from regwatch.cli.config_flags import LIST_EDIT_FLAGS
from regwatch.cli.config_options import (
    HalCommand,
    account_options,
    collect_values,
    common_options,
    param_name,
    split_list,
)
from regwatch.cli.config_output import echo_account, run_validation
from regwatch.config.edit import AccountChanges, apply_changes, new_account, same_account
from regwatch.config.halconfig import edit_config, load_config


@click.group()
def account() -> None:
    """Manage Docker Registry accounts."""


@account.command(cls=HalCommand)
@click.argument("name")
@account_options(for_add=True)
@common_options
def add(
    name: str, config_path: str | None, deployment: str | None, no_validate: bool, **params: Any
) -> None:
    """Add the account NAME."""
    created = new_account(name, AccountChanges(values=collect_values(params)))
    load_config(config_path).require_new(name, deployment)  # fail fast, before validation
    if not no_validate:
        run_validation(created)
    with edit_config(config_path) as config:
        config.add_account(created, deployment)
    click.echo(f"Added account {name}.")


@account.command(cls=HalCommand)
@click.argument("name")
@account_options(for_add=False)
@common_options
def edit(
    name: str, config_path: str | None, deployment: str | None, no_validate: bool, **params: Any
) -> None:
    """Edit the account NAME: only the settings given change."""
    changes = _edit_changes(params)
    current = load_config(config_path).account(name, deployment)
    if not changes or same_account(apply_changes(current, changes), current):
        click.echo("No changes supplied.", err=True)
        return
    if not no_validate:
        run_validation(apply_changes(current, changes))
    with edit_config(config_path) as config:
        fresh = config.account(name, deployment)  # re-read under the lock: keep others' edits
        config.update_account(apply_changes(fresh, changes), deployment)
    click.echo(f"Edited account {name}.")


def _edit_changes(params: dict[str, Any]) -> AccountChanges:
    add: dict[str, list[str]] = {}
    remove: dict[str, list[str]] = {}
    for flag, key, operation in LIST_EDIT_FLAGS:
        items = split_list(params.get(param_name(flag)) or ())
        if items:
            (add if operation == "add" else remove).setdefault(key, []).extend(items)
    if params.get("repositories") and "repositories" in add | remove:
        raise click.UsageError(
            "--repositories cannot be combined with --add-repository or --remove-repository"
        )
    return AccountChanges(values=collect_values(params), add=add, remove=remove)


@account.command(cls=HalCommand)
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@common_options
def get(
    name: str, config_path: str | None, deployment: str | None, no_validate: bool, as_json: bool
) -> None:
    """Show every setting of the account NAME (secrets masked)."""
    del no_validate
    echo_account(load_config(config_path).account(name, deployment), as_json=as_json)


@account.command(name="list", cls=HalCommand)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@common_options
def list_accounts(
    config_path: str | None, deployment: str | None, no_validate: bool, as_json: bool
) -> None:
    """List the accounts."""
    del no_validate
    provider = load_config(config_path).provider(deployment)
    if as_json:
        rows = [
            {**a.to_public(), "primaryAccount": a.name == provider.primary_account}
            for a in provider.accounts
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    if not provider.accounts:
        click.echo("No docker-registry accounts are configured.")
        return
    state = "enabled" if provider.enabled else "disabled"
    click.echo(f"Accounts for docker-registry ({state}, primary: {provider.primary_account}):")
    for item in provider.accounts:
        click.echo(f"  - {item.name}")


@account.command(cls=HalCommand)
@click.argument("name")
@common_options
def delete(name: str, config_path: str | None, deployment: str | None, no_validate: bool) -> None:
    """Delete the account NAME."""
    del no_validate
    with edit_config(config_path) as config:
        config.delete_account(name, deployment)
    click.echo(f"Deleted account {name}.")
