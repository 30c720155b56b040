"""`regwatch scan [ACCOUNT…]`: index the configured accounts now, once.

On a terminal a progress bar per account (repositories done / total, tags, requests, errors) is
drawn on stderr; otherwise plain log lines go there. A summary table (or, with `--json`, the run
records) goes to stdout. Exit 1 when an account failed entirely (or could not be read from the
config), 0 otherwise — with warnings on stderr when some repositories failed.

Ctrl-C (or SIGTERM) stops gracefully: the repositories in progress are finished, the rest are
left for the next scan, and the runs are recorded (exit 130). A second Ctrl-C aborts at once;
the index stays consistent either way (each repository's change is one transaction).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
from collections.abc import Sequence

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from regwatch.cli.db_cmd import config_option, store_url_of
from regwatch.cli.images_cmd import console
from regwatch.config.halconfig import HalConfig, load_config
from regwatch.config.model import DockerRegistryAccount
from regwatch.errors import ConfigError
from regwatch.indexer import RepositoryResult, ScanProgress, ScanRun, scan_accounts
from regwatch.registry import Transport
from regwatch.service.instances import dead_holder_pid, failed_run
from regwatch.store import AsyncStore, Store, open_store

HOLDER_PREFIX = "cli:"


class LogProgress(ScanProgress):
    """Plain lines on stderr: start and end of each account, and every failure."""

    def account_started(self, account: str, repositories: int) -> None:
        noun = "repository" if repositories == 1 else "repositories"
        click.echo(f"{account}: scanning {repositories} {noun}", err=True)

    def account_error(self, account: str, error: str) -> None:
        click.echo(f"{account}: warning: {error}", err=True)

    def repository_done(self, account: str, result: RepositoryResult, requests: int) -> None:
        if not result.ok:
            click.echo(f"{account}: {result.repository} failed (tags kept): {result.error}",
                       err=True)  # fmt: skip
        elif result.tag_errors:
            click.echo(f"{account}: {result.repository}: {result.tag_errors} tag(s) kept without "
                       f"fresh data; first: {result.error}", err=True)  # fmt: skip

    def account_finished(self, run: ScanRun) -> None:
        click.echo(
            f"{run.account}: {run.status} in {run.seconds:.1f} s: "
            f"{run.repositories_ok}/{run.repositories} repositories, {run.tags} tags "
            f"(+{run.tags_added} ~{run.tags_changed} -{run.tags_removed}), "
            f"{run.requests} requests",
            err=True,
        )


class BarProgress(ScanProgress):
    """A rich progress bar per account."""

    def __init__(self, progress: Progress, accounts: Sequence[str]) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {
            name: progress.add_task(name, total=None, tags=0, requests=0, errors=0)
            for name in accounts
        }

    def _update(self, account: str, **fields: int) -> None:
        self.progress.update(self.tasks[account], **fields)  # type: ignore[arg-type]

    def _field(self, account: str, name: str) -> int:
        value = self.progress.tasks[self.tasks[account]].fields[name]
        return int(value)

    def account_started(self, account: str, repositories: int) -> None:
        self.progress.update(self.tasks[account], total=repositories)

    def account_error(self, account: str, error: str) -> None:
        self._update(account, errors=self._field(account, "errors") + 1)
        self.progress.console.print(f"[yellow]warning[/] {account}: {error}", markup=True)

    def page_done(self, account: str, repository: str, tags: int, requests: int) -> None:
        self._update(account, requests=requests)

    def repository_done(self, account: str, result: RepositoryResult, requests: int) -> None:
        errors = self._field(account, "errors") + (0 if result.ok else 1)
        tags = self._field(account, "tags") + result.tags
        self.progress.update(self.tasks[account], advance=1)
        self._update(account, tags=tags, requests=requests, errors=errors)

    def account_finished(self, run: ScanRun) -> None:
        task = self.tasks[run.account]
        done = run.repositories_ok + run.repositories_failed
        self.progress.update(task, total=run.repositories, completed=done)
        self._update(run.account, requests=run.requests)


def _bar(stderr: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "repositories  {task.fields[tags]} tags  {task.fields[requests]} requests  "
            "{task.fields[errors]} errors"
        ),
        TimeElapsedColumn(),
        console=stderr,
        transient=False,
    )


def choose_accounts(
    config: HalConfig, names: Sequence[str]
) -> tuple[list[DockerRegistryAccount], list[tuple[str, ConfigError]]]:
    """The accounts to scan and those whose config entry is invalid (reported, not scanned)."""
    entries = config.account_entries()
    if not entries:
        raise ConfigError(
            "no docker-registry accounts are configured",
            hint="add one with `regwatch config provider docker-registry account add NAME "
            "--address ADDRESS`",
        )
    by_name = dict(entries)
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise ConfigError(
            f"unknown account{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}",
            hint=f"configured accounts: {', '.join(by_name)}",
        )
    wanted = list(dict.fromkeys(names)) or list(by_name)
    good = [e for n in wanted if isinstance(e := by_name[n], DockerRegistryAccount)]
    bad = [(n, e) for n in wanted if isinstance(e := by_name[n], ConfigError)]
    return good, bad


def close_abandoned_runs(store: Store, accounts: Sequence[str]) -> None:
    """A `regwatch scan` killed mid-way leaves its run "running": close it as failed when it was
    ours (a CLI run on this host) and its process is gone."""
    for account in accounts:
        status = store.account_status(account)
        run = status.last_run if status else None
        if run is None or run.status != "running":
            continue
        pid = dead_holder_pid(run.holder, HOLDER_PREFIX)
        if pid is not None:
            store.finish_run(run.id, **failed_run(run, f"abandoned: process {pid} died mid-scan"))


async def _scan_all(
    accounts: list[DockerRegistryAccount], store: Store, progress: ScanProgress
) -> tuple[list[ScanRun], bool]:
    """Scan with graceful-stop signal handling; (runs, whether a stop was asked)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()

    def on_signal() -> None:
        if stop.is_set() and task is not None:
            task.cancel()
            return
        stop.set()
        click.echo("Stopping after the repositories in progress (again to abort)…", err=True)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    astore = AsyncStore(store)
    holder = f"{HOLDER_PREFIX}{socket.gethostname()}:{os.getpid()}"
    try:
        async with Transport() as transport:
            runs = await scan_accounts(
                accounts, store=astore, transport=transport, progress=progress, stop=stop,
                holder=holder,
            )  # fmt: skip
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await astore.aclose()
    return runs, stop.is_set()


def summary_table(runs: Sequence[ScanRun]) -> Table:
    table = Table("ACCOUNT", "STATUS", "REPOSITORIES", "FAILED", "TAGS", "ADDED", "CHANGED",
                  "REMOVED", "EVENTS", "REQUESTS", "SECONDS", box=None, pad_edge=False)  # fmt: skip
    for run in runs:
        table.add_row(
            run.account, run.status, f"{run.repositories_ok}/{run.repositories}",
            str(run.repositories_failed), str(run.tags), str(run.tags_added),
            str(run.tags_changed), str(run.tags_removed), str(run.events), str(run.requests),
            f"{run.seconds:.1f}",
        )  # fmt: skip
    return table


def _warn(runs: Sequence[ScanRun], bad: Sequence[tuple[str, ConfigError]]) -> None:
    for name, error in bad:
        click.echo(f"Error: account {name!r} is not valid: {error}", err=True)
    for run in runs:
        if run.account_error:
            label = "Error" if run.failed else "Warning"
            click.echo(f"{label}: {run.account}: {run.account_error}", err=True)
        for repository, message in list(run.errors.items())[:10]:
            click.echo(f"Warning: {run.account}: {repository}: {message}", err=True)
        if len(run.errors) > 10:
            click.echo(f"Warning: {run.account}: {len(run.errors) - 10} more repositories "
                       "failed (regwatch scan --json shows them all)", err=True)  # fmt: skip


@click.command()
@click.argument("accounts", nargs=-1)
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the run records as JSON.")
def scan(accounts: tuple[str, ...], config_path: str | None, as_json: bool) -> None:
    """Index ACCOUNTs (default: every configured account) into the store, once, now."""
    config = load_config(config_path)
    chosen, bad = choose_accounts(config, accounts)
    if not config.provider_enabled() and not accounts:
        click.echo("Warning: the docker-registry provider is disabled (regwatch config provider "
                   "docker-registry enable); scanning anyway", err=True)  # fmt: skip
    store = open_store(store_url_of(config))
    close_abandoned_runs(store, [account.name for account in chosen])
    stderr = Console(stderr=True)
    try:
        if stderr.is_terminal:
            with _bar(stderr) as bar:
                progress: ScanProgress = BarProgress(bar, [a.name for a in chosen])
                runs, stopped = asyncio.run(_scan_all(chosen, store, progress))
        else:
            runs, stopped = asyncio.run(_scan_all(chosen, store, LogProgress()))
    except asyncio.CancelledError:
        click.echo("Aborted: repositories in progress were left as they were.", err=True)
        raise click.exceptions.Exit(130) from None
    if as_json:
        click.echo(json.dumps([run.to_dict() for run in runs], indent=2))
    else:
        console().print(summary_table(runs))
    _warn(runs, bad)
    if stopped:
        raise click.exceptions.Exit(130)
    if bad or any(run.failed for run in runs):
        raise click.exceptions.Exit(1)
