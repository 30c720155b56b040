"""Shared passes: a large account's repositories scanned by every instance, not only by the
holder of the account's lease (issue 7, "per repository for large catalogs").

The account's lease (`regwatch.indexer.leases`) still decides who runs a pass and when: once per
interval across instances. With sharing on (`REGWATCH_SHARE_REPOSITORIES_ABOVE`, the threshold),
the holder of the lease:

1. it starts the run record and lists the repositories (catalog, file or list) as a
   per-account scan does — once: the decision is made on this listing, so that a catalog
   account's first pass (nothing stored yet) is shared too;
2. with at most the threshold's repositories, it scans them itself on the per-account path
   (`scan_account(listed=…)`: the same run record, no second listing);
3. otherwise it publishes one job per listed repository for this pass
   (`Store.publish_scan_jobs`);
4. every instance's `JobWorker` (`regwatch.indexer.job_worker`; the holder's too) claims jobs
   with a lease, scans each with the indexer's `RepositoryScanner`, and completes it; the last
   completion, whoever makes it, closes the run with the jobs' sums;
5. the holder waits for that (keeping its account lease alive) and returns the run.

A holder that dies mid-pass loses the account's lease; the instance that takes it over adopts
the running pass (it becomes the run's holder) instead of publishing a new one, so that every
repository is still scanned once per pass. The jobs a dead instance had claimed are claimed
again by others once their lease expires.

An account deleted mid-pass (a config edit) takes its run and its jobs with its data (the store
cascades): nothing is left to claim, the holder's wait ends (`scan_pass_finished` is None), and
the job workers drop the jobs of accounts no longer configured.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from regwatch.config.model import DockerRegistryAccount
from regwatch.indexer.jobs import ListedRun, listing_failed, stats_now
from regwatch.indexer.repositories import list_repositories
from regwatch.indexer.results import ScanRun
from regwatch.indexer.scheduler import wait_event
from regwatch.registry import RegistryClient
from regwatch.store import AsyncStore, Store
from regwatch.store.pass_reads import PassSummary
from regwatch.store.records import utc_now

log = logging.getLogger(__name__)

DEFAULT_SHARE_ABOVE = 100  # repositories: above this, an account's passes are shared
PASS_POLL = 0.2  # seconds between two looks of the pass's holder at its progress


ScanWhole = Callable[[ListedRun], Awaitable[ScanRun]]


async def adopt_pass(
    account: DockerRegistryAccount,
    *,
    store: AsyncStore,
    holder: str,
    stop: asyncio.Event,
    wake: Callable[[], None],
    poll: float = PASS_POLL,
) -> ScanRun | None:
    """Adopt the account's pass left running by a previous holder and wait for it to finish
    (or `stop`); None when no pass of the account is running."""
    run_id = await store.call(Store.unfinished_scan_pass, account.name)
    if run_id is None:
        return None
    await store.call(Store.adopt_scan_pass, run_id, holder)
    log.info("account %s: took over the running pass %d", account.name, run_id)
    wake()
    return await wait_pass(account, run_id, store, stop, poll)


async def run_pass(
    account: DockerRegistryAccount,
    *,
    store: AsyncStore,
    client: RegistryClient,
    holder: str,
    share_above: int,
    scan_whole: ScanWhole,
    stop: asyncio.Event,
    wake: Callable[[], None],
    poll: float = PASS_POLL,
) -> ScanRun:
    """Start a pass: its run record and the listing, then either `scan_whole(listed)` (at most
    `share_above` repositories, or the registry unreachable) or the pass shared as jobs, waited
    for until it is finished or `stop` is set (it then goes on without this instance's
    coordination). See the module doc."""
    listed = await start_pass(account, store, client, holder)
    listing = listed.listing
    if listing.unreachable or len(listing.names) <= share_above:
        return await scan_whole(listed)
    await _publish(account, store, client, listed)
    wake()
    return await wait_pass(account, listed.run_id, store, stop, poll)


async def start_pass(
    account: DockerRegistryAccount, store: AsyncStore, client: RegistryClient, holder: str
) -> ListedRun:
    """Start the account's run record and list its repositories (the store's list updated)."""
    await store.call(Store.ensure_account, account.name, account.registry)
    stats = stats_now(client.stats)
    started = utc_now()
    run_id = await store.call(Store.start_run, account.name, holder=holder)
    try:
        listing = await list_repositories(account, client, store)
    except BaseException as exc:  # e.g. the store failed: close the run
        await _abandon(store, run_id, client.stats.requests - stats[0], exc, "listing")
        raise
    return ListedRun(run_id, started, listing, stats)


async def _publish(
    account: DockerRegistryAccount, store: AsyncStore, client: RegistryClient, listed: ListedRun
) -> None:
    listing, run_id = listed.listing, listed.run_id
    requests = client.stats.requests - listed.stats[0]
    error = None if listing.error is None else listing_failed(listing.error)
    try:
        await store.call(
            Store.publish_scan_jobs,
            account.name,
            run_id,
            listing.names,
            requests=requests,
            error=error,
        )
    except BaseException as exc:  # the pass could not be published: close its run
        await _abandon(store, run_id, requests, exc, "publishing the pass")
        raise


async def _abandon(
    store: AsyncStore, run_id: int, requests: int, exc: BaseException, what: str
) -> None:
    error = "cancelled" if isinstance(exc, asyncio.CancelledError) else str(exc) or repr(exc)
    try:
        await store.call(
            Store.finish_run,
            run_id,
            requests=requests,
            repositories_ok=0,
            repositories_failed=0,
            status="failed",
            errors=[{"repository": None, "error": f"{what} failed: {error}"}],
        )
    except Exception as store_exc:  # the store is what failed: the next holder closes it
        log.warning("scan run %d: cannot record its failure: %s", run_id, store_exc)


async def wait_pass(
    account: DockerRegistryAccount,
    run_id: int,
    store: AsyncStore,
    stop: asyncio.Event,
    poll: float = PASS_POLL,
) -> ScanRun:
    """Wait until the pass is finished (or gone, or `stop` is set); the pass as a `ScanRun`."""
    while await store.call(Store.scan_pass_finished, run_id) is False and not stop.is_set():
        await wait_event(stop, poll)
    return pass_run(account, run_id, await store.call(Store.scan_pass, run_id))


def pass_run(account: DockerRegistryAccount, run_id: int, summary: PassSummary | None) -> ScanRun:
    """The pass as a `ScanRun` (what the scheduler, metrics and logs take): its sums so far."""
    now = utc_now()
    if summary is None:  # the account was deleted meanwhile
        return ScanRun(run_id, account.name, account.registry, now, now, "failed", 0, 0, 0, 0,
                       0, 0, 0, 0, 0, 0, 0, 0, 0, account_error="the scan run is gone")  # fmt: skip
    totals = summary.totals
    finished = summary.finished_at is not None
    account_error = next(
        (str(e.get("error")) for e in summary.errors if e.get("repository") is None), None
    )
    return ScanRun(
        run_id=run_id,
        account=account.name,
        registry=account.registry,
        started_at=summary.started_at,
        finished_at=summary.finished_at or now,
        status="partial" if summary.status == "running" else summary.status,
        requests=summary.requests + (0 if finished else totals.get("requests", 0)),
        retries=0,
        rate_limited=0,
        token_fetches=0,
        repositories=summary.jobs,
        repositories_ok=summary.ok,
        repositories_failed=summary.failed,
        tags=totals.get("tags", 0),
        tags_added=totals.get("added", 0),
        tags_changed=totals.get("changed", 0),
        tags_removed=totals.get("removed", 0),
        events=totals.get("events", 0),
        tag_errors=totals.get("tag_errors", 0),
        account_error=account_error,
        errors={
            str(e["repository"]): str(e.get("error"))
            for e in summary.errors
            if e.get("repository") is not None
        },
        stopped=not finished,
    )
