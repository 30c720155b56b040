"""Scan accounts: one run record per account scan, repositories in parallel, failures isolated.

    run = await scan_account(account, store=astore, transport=transport)
    runs = await scan_accounts(accounts, store=astore, transport=transport)

`cacheThreads` is the account's parallelism: at most that many registry requests of the account
are in flight at once (upstream uses it as a number of hash shards, each crawling the catalog
again). `stop` is looked at between repositories: a repository being scanned is finished (or
aborted by a failure) before the scan returns, so a graceful stop leaves nothing half-written.
Cancelling the task is the hard stop: the repositories in progress are left unmerged (their
staged rows are dropped by the next scan of the repository), the index stays consistent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from regwatch.config.model import DockerRegistryAccount
from regwatch.errors import RegwatchError
from regwatch.indexer.claim_ahead import ClaimAhead
from regwatch.indexer.repositories import RepositoryList, list_repositories
from regwatch.indexer.repository_scan import RepositoryScanner
from regwatch.indexer.results import RepositoryResult, RunStatus, ScanProgress, ScanRun
from regwatch.registry import ClientStats, RegistryClient, Transport
from regwatch.store import AsyncStore, Store
from regwatch.store.records import utc_now

log = logging.getLogger(__name__)
DEFAULT_ACCOUNT_CONCURRENCY = 4
# repositories claimed per store call, per worker (indexer/claim_ahead.py): 2 and 3 measured
# alike, 2 keeps the claims nearer their listings (docs/benchmarks.md, "Fifth pass")
CLAIM_BATCHES = 2


@dataclass
class _Tally:
    """What a run found, accumulated as repositories finish."""

    repositories: int = 0
    results: list[RepositoryResult] = field(default_factory=list)
    account_error: str | None = None
    stopped: bool = False

    def count(self, attribute: str) -> int:
        return sum(getattr(r, attribute) for r in self.results)

    @property
    def ok(self) -> int:
        return sum(1 for r in self.results if r.ok)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if not r.ok)

    def status(self) -> RunStatus:
        if self.ok == 0 and (self.failed or self.account_error):
            return "failed"
        if self.failed or self.account_error or self.stopped or self.count("tag_errors"):
            return "partial"
        return "ok"

    def store_errors(self) -> list[dict[str, Any]]:
        """The run record's errors: [{"repository": name | None, "error": text}]."""
        errors: list[dict[str, Any]] = []
        if self.account_error:
            errors.append({"repository": None, "error": self.account_error})
        for r in self.results:
            if r.error and not r.ok:
                errors.append({"repository": r.repository, "error": r.error})
            elif r.tag_errors:
                errors.append({"repository": r.repository,
                               "error": f"{r.tag_errors} tag(s) kept without fresh data; "
                                        f"first: {r.error}"})  # fmt: skip
        if self.stopped:
            left = self.repositories - len(self.results)
            errors.append(
                {"repository": None, "error": f"stopped: {left} repositories not scanned"}
            )
        return errors


def stats_now(stats: ClientStats) -> tuple[int, int, int, int]:
    """A client's counters (requests, retries, rate_limited, token_fetches) at this moment."""
    return (stats.requests, stats.retries, stats.rate_limited, stats.token_fetches)


def listing_failed(error: str) -> str:
    """The account error of a pass whose listing failed (the stored list is scanned instead)."""
    return f"listing repositories failed, kept the stored list: {error}"


@dataclass(frozen=True)
class ListedRun:
    """A run record the caller already started, with the repositories it listed with `client`
    (a shared pass's holder lists first, then decides whether to share): `scan_account(listed=…)`
    goes on from there, without starting a run or listing again."""

    run_id: int
    started_at: datetime
    listing: RepositoryList
    stats: tuple[int, int, int, int]  # `stats_now(client.stats)` when the run started


class _Counters:
    """ClientStats deltas over one run (a client may be reused across runs)."""

    def __init__(self, stats: ClientStats, start: tuple[int, int, int, int] | None = None) -> None:
        self.stats = stats
        self.start = start if start is not None else stats_now(stats)

    def delta(self) -> tuple[int, int, int, int]:
        s = self.stats
        now = (s.requests, s.retries, s.rate_limited, s.token_fetches)
        return (now[0] - self.start[0], now[1] - self.start[1], now[2] - self.start[2],
                now[3] - self.start[3])  # fmt: skip


async def scan_account(
    account: DockerRegistryAccount,
    *,
    store: AsyncStore,
    transport: Transport,
    sinks: Sequence[str] = (),
    progress: ScanProgress | None = None,
    stop: asyncio.Event | None = None,
    holder: str | None = None,
    client: RegistryClient | None = None,
    listed: ListedRun | None = None,
) -> ScanRun:
    """Scan one account into the store and record the run (see the module docstring).

    `sinks`: event sinks that get a pending delivery for each event recorded. `holder`: who runs
    the scan (recorded with the run). `client`: a RegistryClient for the account to reuse across
    runs (it keeps its learned auth scheme and tokens); one is made from `transport` otherwise.
    `listed`: the run already started and listed with `client` (see `ListedRun`).
    Raises only for store failures outside a repository (the run cannot be recorded then).
    """
    progress = progress or ScanProgress()
    if listed is not None:
        started, run_id = listed.started_at, listed.run_id
    else:
        started = utc_now()
        await store.call(Store.ensure_account, account.name, account.registry)
        run_id = await store.call(Store.start_run, account.name, holder=holder)
    tally = _Tally()
    counters: _Counters | None = None
    try:
        if client is None:
            client = RegistryClient(account.endpoint(), account.credentials(), transport=transport)
        counters = _Counters(client.stats, listed.stats if listed is not None else None)
        listing = listed.listing if listed is not None else None
        await _scan(account, client, store, sinks, progress, stop, tally, listing)
    except RegwatchError as exc:  # the client could not even be set up (CA file, credentials)
        tally.account_error = str(exc)
        progress.account_error(account.name, tally.account_error)
    except asyncio.CancelledError:
        tally.account_error = "cancelled"
        await _record(store, run_id, tally, counters)
        raise
    run = _run(account, run_id, started, tally, counters)
    await _record(store, run_id, tally, counters)
    progress.account_finished(run)
    return run


async def _scan(
    account: DockerRegistryAccount,
    client: RegistryClient,
    store: AsyncStore,
    sinks: Sequence[str],
    progress: ScanProgress,
    stop: asyncio.Event | None,
    tally: _Tally,
    listing: RepositoryList | None = None,
) -> None:
    if stop is not None and stop.is_set():
        tally.stopped = True
        return
    if listing is None:
        listing = await list_repositories(account, client, store)
    if listing.error is not None:
        tally.account_error = listing_failed(listing.error)
        progress.account_error(account.name, tally.account_error)
    names = [] if listing.unreachable else listing.names
    tally.repositories = len(names)
    progress.account_started(account.name, len(names))
    limit = asyncio.Semaphore(account.cache_threads)
    scanner = RepositoryScanner(account, client, store, limit, sinks, progress)
    # One worker more than request slots: a worker merging a repository into the store holds
    # no slot, and the spare keeps the registry busy meanwhile.
    workers = min(len(names), account.cache_threads + 1)
    claims = ClaimAhead(
        store, account.name, names, batch=CLAIM_BATCHES * max(workers, 1), stop=stop
    )

    async def worker() -> None:
        while (claim := await claims.next()) is not None:
            if claim.scan is None:
                result = RepositoryResult(claim.repository, ok=False, error=claim.error)
            else:
                result = await scanner.scan_claimed(claim.scan)
            tally.results.append(result)
            progress.repository_done(account.name, result, client.stats.requests)

    await asyncio.gather(*(worker() for _ in range(workers)))
    tally.stopped = claims.stopped


def _run(
    account: DockerRegistryAccount,
    run_id: int,
    started: datetime,
    tally: _Tally,
    counters: _Counters | None,
) -> ScanRun:
    requests, retries, rate_limited, tokens = counters.delta() if counters else (0, 0, 0, 0)
    return ScanRun(
        run_id=run_id,
        account=account.name,
        registry=account.registry,
        started_at=started,
        finished_at=utc_now(),
        status=tally.status(),
        requests=requests,
        retries=retries,
        rate_limited=rate_limited,
        token_fetches=tokens,
        repositories=tally.repositories,
        repositories_ok=tally.ok,
        repositories_failed=tally.failed,
        tags=tally.count("tags"),
        tags_added=tally.count("added"),
        tags_changed=tally.count("changed"),
        tags_removed=tally.count("removed"),
        events=tally.count("events"),
        tag_errors=tally.count("tag_errors"),
        account_error=tally.account_error,
        errors={r.repository: r.error for r in tally.results if r.error and not r.ok},
        stopped=tally.stopped,
    )


async def _record(
    store: AsyncStore, run_id: int, tally: _Tally, counters: _Counters | None
) -> None:
    await store.call(
        Store.finish_run,
        run_id,
        requests=counters.delta()[0] if counters else 0,
        repositories_ok=tally.ok,
        repositories_failed=tally.failed,
        errors=tally.store_errors(),
        status=tally.status(),
    )


async def scan_accounts(
    accounts: Sequence[DockerRegistryAccount],
    *,
    store: AsyncStore,
    transport: Transport,
    sinks: Sequence[str] = (),
    progress: ScanProgress | None = None,
    stop: asyncio.Event | None = None,
    holder: str | None = None,
    concurrency: int = DEFAULT_ACCOUNT_CONCURRENCY,
) -> list[ScanRun]:
    """Scan `accounts`, at most `concurrency` at a time; the runs in the order given."""
    semaphore = asyncio.Semaphore(max(1, concurrency))

    async def one(account: DockerRegistryAccount) -> ScanRun:
        async with semaphore:
            return await scan_account(
                account,
                store=store,
                transport=transport,
                sinks=sinks,
                progress=progress,
                stop=stop,
                holder=holder,
            )

    return list(await asyncio.gather(*(one(account) for account in accounts)))
