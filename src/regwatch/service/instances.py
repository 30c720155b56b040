"""What the service does for several instances on one store (issue 7), apart from `core`:

- settings: the scan lease (`REGWATCH_SCAN_LEASE_SECONDS`) and the size above which an
  account's passes are shared per repository (`REGWATCH_SHARE_REPOSITORIES_ABOVE`);
- "scan now" on any instance: kept in the store, passed to every instance's scheduler, scanned
  by whichever holds (or next takes) the account's lease, consumed by the scan that follows;
- shared passes of large accounts (`regwatch.indexer.shares`);
- runs left "running" by a dead instance: closed, unless they are shared passes (adopted).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from regwatch.config.model import DockerRegistryAccount
from regwatch.errors import ConfigError
from regwatch.indexer.leases import DEFAULT_TTL, MAX_RETRY
from regwatch.indexer.scheduler import wait_event
from regwatch.indexer.shares import adopt_pass, run_pass
from regwatch.service.workers import describe_error
from regwatch.store import Store
from regwatch.store.records import ScanRun, utc_now

if TYPE_CHECKING:
    from regwatch.indexer.results import ScanRun as IndexerRun
    from regwatch.service.core import Service

log = logging.getLogger(__name__)

HOLDER_PREFIX = "serve:"  # scan runs are recorded as held by "serve:HOST:PID"
SCAN_LEASE_ENV = "REGWATCH_SCAN_LEASE_SECONDS"  # how long a crashed instance's accounts wait
SHARE_ENV = "REGWATCH_SHARE_REPOSITORIES_ABOVE"  # larger accounts: passes shared per repository


# --- settings ------------------------------------------------------------------------------------
def lease_seconds(environ: Mapping[str, str]) -> float:
    """The scan lease from the environment (a positive number of seconds), else the default."""
    raw = environ.get(SCAN_LEASE_ENV, "").strip()
    try:
        value = float(raw) if raw else DEFAULT_TTL
    except ValueError:
        raise ConfigError(f"{SCAN_LEASE_ENV}={raw!r} is not a number of seconds") from None
    if value <= 0:
        raise ConfigError(f"{SCAN_LEASE_ENV} must be more than 0 seconds")
    return value


def share_above(environ: Mapping[str, str], *, default: int | None) -> int | None:
    """REGWATCH_SHARE_REPOSITORIES_ABOVE: a number of repositories (0 shares every account), or
    "off" (None: every account is scanned whole by its lease's holder); unset: `default`."""
    raw = environ.get(SHARE_ENV, "").strip().lower()
    if not raw:
        return default
    if raw in ("off", "none", "never"):
        return None
    if not raw.isdigit():
        raise ConfigError(
            f"{SHARE_ENV}={raw!r} is not a number of repositories",
            hint='e.g. 100 (accounts with more repositories share their scans), or "off"',
        )
    return int(raw)


# --- scan now ------------------------------------------------------------------------------------
async def queue_scan(service: Service, name: str) -> dict[str, Any]:
    """ "Scan now" whichever instance holds the account: the request is kept in the store (the
    holder, or the next instance to take the account, scans it within its lease retry period
    and consumes it) and passed to this instance's scheduler too. Returns what the API answers:
    whether it is queued for another instance, and which one holds the account."""
    holder = await service.leases.holder(name)
    await service.store.call(Store.request_scan, name, service.instance_id)
    schedule = service.request_scan(name) if service.scanning else None
    local = service.scanning and holder in (None, service.instance_id)
    return {
        "account": name,
        "requested": True,
        "scanning": schedule is not None and schedule.state == "scanning",
        "queued": not local,
        "holder": holder,
        "instance": service.instance_id,
    }


async def watch_scan_requests(service: Service) -> None:
    """Pass the store's scan requests (made on any instance) to this instance's scheduler, each
    once: the instance that holds the account (or takes it first) scans it. Looks every lease
    retry period of the shortest interval (0.1-5 s)."""
    seen: dict[str, Any] = {}
    while not service.stopping.is_set():
        try:
            requests = await service.store.call(Store.scan_requests)
        except Exception as exc:
            log.warning("could not read the scan requests: %s", describe_error(exc))
            requests = {}
        for name, at in requests.items():
            if seen.get(name) != at and service.scheduler.request_scan(name) is not None:
                seen[name] = at
        intervals = [a.cache_interval_seconds for a in service.accounts.accounts.values()]
        poll = service.leases.retry_in(float(min(intervals))) if intervals else MAX_RETRY
        await wait_event(service.stopping, poll)


async def consume_scan_request(service: Service, name: str) -> None:
    """A scan of `name` starts: it answers the "scan now" requests made until now."""
    try:
        started = utc_now()
        if name in await service.store.call(Store.scan_requests):  # a read: no write per scan
            await service.store.call(Store.consume_scan_request, name, started)
    except Exception as exc:  # the request stays: one scan more, later
        log.warning("account %s: could not consume its scan request: %s", name,
                    describe_error(exc))  # fmt: skip


# --- passes ------------------------------------------------------------------------------------
async def scan_pass(
    service: Service, account: DockerRegistryAccount, stop: asyncio.Event
) -> IndexerRun:
    """One pass of the account by this instance (it holds the account's lease). With sharing on
    (`regwatch.indexer.shares`): a shared pass left running by a previous holder is adopted;
    else the run starts, the repositories are listed once, and the pass is shared as jobs when
    they are more than `share_above`, scanned whole here otherwise. With sharing off (or no
    client for the account): scanned whole."""
    from regwatch.indexer.jobs import ListedRun, scan_account

    client = service.client_for(account)

    async def whole(listed: ListedRun | None = None) -> IndexerRun:
        return await scan_account(
            account,
            store=service.store,
            transport=service.transport,
            sinks=service.sinks_for(account),
            stop=stop,
            holder=service.instance_id,
            client=client,
            listed=listed,
        )

    if service.share_above is None or client is None:
        await close_taken_over_run(service, account.name)
        return await whole()
    store, holder, wake = service.store, service.instance_id, service.jobs.wake
    adopted = await adopt_pass(account, store=store, holder=holder, stop=stop, wake=wake)
    if adopted is not None:
        return adopted
    await close_taken_over_run(service, account.name)
    return await run_pass(
        account,
        store=store,
        client=client,
        holder=holder,
        share_above=service.share_above,
        scan_whole=whole,
        stop=stop,
        wake=wake,
    )


# --- runs left running ---------------------------------------------------------------------------
async def close_abandoned_runs(service: Service) -> None:
    """A service killed mid-scan leaves its run "running": close it as failed when it was this
    host's and its process is gone (another instance's runs are left alone, and so is a shared
    pass: the account's next holder adopts it)."""
    for name in service.accounts.accounts:
        status = await service.store.call(Store.account_status, name)
        run = status.last_run if status is not None else None
        if run is None or run.status != "running":
            continue
        pid = dead_holder_pid(run.holder, HOLDER_PREFIX)
        if pid is None or await service.store.call(Store.unfinished_scan_pass, name) == run.id:
            continue
        await _close(service, run, f"abandoned: process {pid} died")


async def close_taken_over_run(service: Service, name: str) -> None:
    """This instance holds the account's lease: a run of another instance still "running" is
    one whose lease lapsed (its instance died or lost the store): close it as failed."""
    status = await service.store.call(Store.account_status, name)
    run = status.last_run if status is not None else None
    holder = run.holder if run is not None else None
    if run is None or run.status != "running" or holder is None or holder == service.instance_id:
        return
    if holder.startswith(HOLDER_PREFIX):
        await _close(service, run, f"abandoned: the lease of {holder} lapsed")


async def _close(service: Service, run: ScanRun, error: str) -> None:
    await service.store.call(Store.finish_run, run.id, **failed_run(run, error))


def failed_run(run: ScanRun, error: str) -> dict[str, Any]:
    """`Store.finish_run`'s keyword arguments that close `run` as failed with `error`, keeping
    its counts (for a run whose process or lease is gone)."""
    return {
        "requests": run.requests,
        "repositories_ok": run.repositories_ok,
        "repositories_failed": run.repositories_failed,
        "status": "failed",
        "errors": [{"repository": None, "error": error}],
    }


def dead_holder_pid(holder: str | None, prefix: str) -> str | None:
    """The pid of a run's `holder` ("{prefix}HOST:PID") when HOST is this host and the process
    is gone; None otherwise (another host's runs are never judged from here)."""
    local = f"{prefix}{socket.gethostname()}:"
    if holder is None or not holder.startswith(local):
        return None
    pid = holder.removeprefix(local)
    return pid if pid.isdigit() and not alive(int(pid)) else None


def alive(pid: int) -> bool:
    """Whether process `pid` runs on this host (one of another user's counts: it exists)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
