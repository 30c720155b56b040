"""`regwatch trigger add|list|delete`: the triggers under `regwatch.triggers` in the config file.

A trigger has Echo's docker trigger rules: the account and repository match exactly; the tag is
a regular expression that must match the whole tag, and a blank tag matches every tag except
`latest`. Each trigger delivers to one sink (a `regwatch.webhooks[]` name, or `echo` for
`regwatch.echoUrl`). The file is edited under its lock and written atomically; an invalid trigger
(bad regular expression, unknown sink or account) leaves it untouched. A running service picks
the change up without a restart.
"""

from __future__ import annotations

import json

import click
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from regwatch.cli.db_cmd import config_option
from regwatch.config.halconfig import HalConfig, edit_config, load_config
from regwatch.config.triggers import TriggerSettings
from regwatch.errors import ConfigError
from regwatch.events.notifications import REPOSITORY

ANY_BUT_LATEST = "any tag but latest"


def _triggers_node(config: HalConfig) -> CommentedSeq:
    """`regwatch.triggers` of the round-trip tree, created when missing."""
    node = config.root.get("regwatch")
    if node is None:
        node = config.root["regwatch"] = CommentedMap()
    if not isinstance(node, CommentedMap):
        raise ConfigError(f"{config.path}: regwatch must be a mapping")
    triggers = node.get("triggers")
    if triggers is None:
        triggers = node["triggers"] = CommentedSeq()
    if not isinstance(triggers, CommentedSeq):
        raise ConfigError(f"{config.path}: regwatch.triggers must be a list")
    return triggers


def _default_sink(config: HalConfig) -> str:
    sinks = config.settings().sink_names()
    if len(sinks) == 1:
        return sinks[0]
    raise ConfigError(
        "which sink should the trigger deliver to?",
        hint=f"pass --sink with one of: {', '.join(sinks)}"
        if sinks
        else "configure regwatch.echoUrl or a regwatch.webhooks[] entry first",
    )


def _free_name(config: HalConfig) -> str:
    taken = {t.name for t in config.settings().triggers}
    number = 1
    while f"trigger-{number}" in taken:
        number += 1
    return f"trigger-{number}"


def _check_account(config: HalConfig, account: str) -> None:
    names = [a.name for a in config.accounts()]
    if account not in names:
        raise ConfigError(
            f"account {account!r} does not exist",
            hint=f"configured accounts: {', '.join(names) or 'none'}",
        )


def describe(trigger: TriggerSettings) -> str:
    tag = f"tag {trigger.tag}" if trigger.tag else ANY_BUT_LATEST
    state = "" if trigger.enabled else " (disabled)"
    return f"{trigger.account} {trigger.repository}, {tag} → {trigger.sink}{state}"


@click.group()
def trigger() -> None:
    """Manage triggers: which pushed images reach which sink (Echo's docker trigger rules)."""


@trigger.command()
@click.option("--account", required=True, help="Account name (exact match).")
@click.option("--repository", required=True, help="Repository, e.g. library/nginx (exact).")
@click.option("--tag", default="", help="Regular expression the whole tag must match "
              "(default: any tag except `latest`).")  # fmt: skip
@click.option("--sink", help="Webhook name, or `echo` (default: the only configured sink).")
@click.option("--name", help="Trigger name (default: trigger-N).")
@click.option("--disabled", is_flag=True, help="Add it disabled.")
@config_option
def add(
    account: str,
    repository: str,
    tag: str,
    sink: str | None,
    name: str | None,
    disabled: bool,
    config_path: str | None,
) -> None:
    """Add a trigger."""
    if not REPOSITORY.fullmatch(repository.strip()):
        raise ConfigError(
            f"{repository!r} is not a repository name", hint="e.g. library/nginx (lower case)"
        )
    with edit_config(config_path) as config:
        _check_account(config, account)
        entry = CommentedMap(
            [
                ("name", name or _free_name(config)),
                ("account", account),
                ("repository", repository.strip()),
                ("tag", tag.strip()),
                ("sink", sink or _default_sink(config)),
            ]
        )
        if disabled:
            entry["enabled"] = False
        _triggers_node(config).append(entry)
        added = next(t for t in config.settings().triggers if t.name == entry["name"])  # checks
    click.echo(f"Added trigger {added.name!r}: {describe(added)}.")


@trigger.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
def list_(as_json: bool, config_path: str | None) -> None:
    """List the triggers."""
    triggers = load_config(config_path).settings().triggers
    if as_json:
        click.echo(json.dumps([t.model_dump(mode="json") for t in triggers], indent=2))
        return
    if not triggers:
        click.echo("No triggers are configured.")
    for item in triggers:
        click.echo(f"{item.name}: {describe(item)}")


@trigger.command()
@click.argument("name")
@config_option
def delete(name: str, config_path: str | None) -> None:
    """Delete the trigger NAME."""
    with edit_config(config_path) as config:
        nodes = _triggers_node(config)
        index = next((i for i, n in enumerate(nodes) if n.get("name") == name), None)
        if index is None:
            known = ", ".join(t.name for t in config.settings().triggers) or "none"
            raise ConfigError(f"trigger {name!r} does not exist", hint=f"triggers: {known}")
        del nodes[index]
        config.settings()  # the file must still be valid
    click.echo(f"Deleted trigger {name!r}.")
