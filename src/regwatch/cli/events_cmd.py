"""`regwatch events list|show|redeliver`: recorded events and their deliveries, from the store.

Delivery statuses: pending (with its next attempt, or held by a rate cap), delivered, skipped
(the sink's triggers/filters did not want it: the reason is shown), dead (dead-lettered).
`redeliver` queues an event again — for the sinks it had, or for the `--sink`s named — with a
fresh retry window; a running service sends it within a second or so.
"""

from __future__ import annotations

import json

import click
from rich.table import Table

from regwatch.cli.db_cmd import config_option, open_existing_store
from regwatch.cli.images_cmd import console
from regwatch.config.halconfig import load_config
from regwatch.errors import ConfigError
from regwatch.events.views import event_json, outbox_json
from regwatch.store.deliveries import DeliveryView, EventView

STATUS_STYLE = {"delivered": "green", "pending": "yellow", "dead": "red", "skipped": "dim"}


def _short(digest: str | None) -> str:
    return digest[:19] if digest else "-"


def _delivery_cell(delivery: DeliveryView) -> str:
    style = STATUS_STYLE.get(delivery.status, "")
    return f"[{style}]{delivery.sink}:{delivery.status}[/]" if style else delivery.sink


def _find(ref: str, config_path: str | None) -> EventView:
    with open_existing_store(config_path) as store:
        view = store.find_event(ref)
    if view is None:
        raise ConfigError(f"no event {ref!r}", hint="`regwatch events list` shows recent events")
    return view


@click.group()
def events() -> None:
    """Recorded new-tag events and their deliveries (list, show, redeliver)."""


@events.command(name="list")
@click.option("--account", help="Only this account.")
@click.option("--repository", help="Only this repository (exact name).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
def list_(
    account: str | None,
    repository: str | None,
    limit: int,
    as_json: bool,
    config_path: str | None,
) -> None:
    """The most recent events, newest first, with the status of each delivery."""
    with open_existing_store(config_path) as store:
        found = store.recent_events(account=account, repository=repository, limit=limit)
        counts = store.outbox_counts()
    if as_json:
        document = {"events": [event_json(v) for v in found], "outbox": outbox_json(counts)}
        click.echo(json.dumps(document, indent=2))
        return
    table = Table("SEQ", "TIME (UTC)", "KIND", "IMAGE", "DIGEST", "DELIVERIES", box=None)
    for view in found:
        e = view.event
        table.add_row(
            str(e.seq),
            e.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            e.kind,
            f"{e.account} {e.registry}/{e.repository}:{e.tag}",
            _short(e.digest),
            " ".join(_delivery_cell(d) for d in view.deliveries) or "-",
        )
    out = console()
    out.print(table)
    waiting = outbox_json(counts)
    if waiting["pending"] or waiting["dead"]:
        pending = sum(waiting["pending"].values())
        dead = sum(waiting["dead"].values())
        out.print(f"outbox: {pending} pending, {dead} dead-lettered")


@events.command()
@click.argument("ref", metavar="EVENT")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
def show(ref: str, as_json: bool, config_path: str | None) -> None:
    """One EVENT (its id, or its seq number) with every delivery."""
    view = _find(ref, config_path)
    if as_json:
        click.echo(json.dumps(event_json(view), indent=2))
        return
    e = view.event
    out = console()
    out.print(f"event {e.id} (seq {e.seq}): {e.kind}")
    out.print(f"  image    {e.registry}/{e.repository}:{e.tag} (account {e.account})")
    out.print(
        f"  digest   {e.digest or '-'}"
        + (f" (was {e.previous_digest})" if e.previous_digest else "")
    )
    out.print(f"  recorded {e.created_at:%Y-%m-%d %H:%M:%S} UTC")
    for d in view.deliveries:
        line = f"  → {_delivery_cell(d)}, {d.attempts} attempt(s)"
        if d.status == "pending":
            line += f", next at {d.next_attempt_at:%H:%M:%S} UTC"
        elif d.delivered_at is not None:
            line += f", at {d.delivered_at:%H:%M:%S} UTC"
        out.print(line)
        if d.last_error:
            out.print(f"      {d.last_error}", markup=False)


@events.command()
@click.argument("ref", metavar="EVENT")
@click.option("--sink", "sinks", multiple=True, help="Only this sink (repeatable); a configured "
              "sink the event never had gets a delivery too.")  # fmt: skip
@config_option
def redeliver(ref: str, sinks: tuple[str, ...], config_path: str | None) -> None:
    """Queue EVENT (id or seq) again for delivery."""
    configured = load_config(config_path).settings().sink_names()
    unknown = [s for s in sinks if s not in configured]
    if unknown:
        raise ConfigError(
            f"sink {unknown[0]!r} is not configured",
            hint=f"configured sinks: {', '.join(configured) or 'none'}",
        )
    with open_existing_store(config_path) as store:
        view = store.find_event(ref)
        if view is None:
            raise ConfigError(f"no event {ref!r}", hint="`regwatch events list` shows events")
        chosen = list(sinks) or [d.sink for d in view.deliveries if d.sink in configured]
        if not chosen:
            raise ConfigError(
                f"event {ref!r} has no delivery to a configured sink",
                hint=f"name one with --sink ({', '.join(configured) or 'none configured'})",
            )
        count = store.redeliver(view.event.seq, chosen)
    click.echo(f"Queued event {view.event.id} again for {', '.join(chosen)} ({count}).")
