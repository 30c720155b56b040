"""Shared passes: a large account's repositories scanned by every instance, not only by the
holder of the account's lease (issue 7, "per repository for large catalogs").

The account's lease (`regwatch.indexer.leases`) still decides who runs a pass and when: once per
interval across instances. When the account has more repositories than a threshold
(`REGWATCH_SHARE_REPOSITORIES_ABOVE`), the holder does not scan them itself:

1. it starts the run record and lists the repositories (catalog, file or list) as a
   per-account scan does;
2. it publishes one job per repository for this pass (`Store.publish_scan_jobs`);
3. every instance's `JobWorker` (`regwatch.indexer.job_worker`; the holder's too) claims jobs
   with a lease, scans each with the indexer's `RepositoryScanner`, and completes it; the last
   completion, whoever makes it, closes the run with the jobs' sums;
4. the holder waits for that (keeping its account lease alive) and returns the run.

A holder that dies mid-pass loses the account's lease; the instance that takes it over adopts
the running pass (it becomes the run's holder) instead of publishing a new one, so that every
repository is still scanned once per pass. The jobs a dead instance had claimed are claimed
again by others once their lease expires.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from regwatch.config.model import DockerRegistryAccount
from regwatch.indexer.repositories import list_repositories, select
from regwatch.indexer.results import ScanRun
from regwatch.indexer.scheduler import wait_event
from regwatch.registry import RegistryClient
from regwatch.store import AsyncStore, Store
from regwatch.store.pass_reads import PassSummary
from regwatch.store.records import utc_now

log = logging.getLogger(__name__)

DEFAULT_SHARE_ABOVE = 100  # repositories: above this, an account's passes are shared
PASS_POLL = 0.2  # seconds between two looks of the pass's holder at its progress


async def repository_count(account: DockerRegistryAccount, store: AsyncStore) -> int:
    """How many repositories the account's next pass is likely to cover, without a request:
    its `repositories` list, else what the last listing stored (0 before the first one)."""
    if account.repositories:
        return len(select(account.repositories, None, account.skip))
    return len(await store.call(Store.repositories, account.name))


async def run_pass(
    account: DockerRegistryAccount,
    *,
    store: AsyncStore,
    client: RegistryClient,
    holder: str,
    stop: asyncio.Event,
    wake: Callable[[], None],
    poll: float = PASS_POLL,
) -> ScanRun:
    """Run (or adopt) the account's shared pass; returns when the pass is finished or `stop` is
    set (the pass then goes on without this instance's coordination). See the module doc."""
    run_id = await store.call(Store.unfinished_scan_pass, account.name)
    if run_id is not None:
        await store.call(Store.adopt_scan_pass, run_id, holder)
        log.info("account %s: took over the running pass %d", account.name, run_id)
    else:
        run_id = await _publish(account, store, client, holder)
    wake()
    summary = await _wait(store, run_id, stop, poll)
    return pass_run(account, run_id, summary)


async def _publish(
    account: DockerRegistryAccount, store: AsyncStore, client: RegistryClient, holder: str
) -> int:
    await store.call(Store.ensure_account, account.name, account.registry)
    run_id = await store.call(Store.start_run, account.name, holder=holder)
    before = client.stats.requests
    try:
        listing = await list_repositories(account, client, store)
        error = None
        if listing.error is not None:
            error = f"listing repositories failed, kept the stored list: {listing.error}"
        names = [] if listing.unreachable else listing.names
        await store.call(
            Store.publish_scan_jobs,
            account.name,
            run_id,
            names,
            requests=client.stats.requests - before,
            error=error,
        )
    except BaseException as exc:  # the pass could not be published: close its run
        await _abandon(store, run_id, client.stats.requests - before, exc)
        raise
    return run_id


async def _abandon(store: AsyncStore, run_id: int, requests: int, exc: BaseException) -> None:
    error = "cancelled" if isinstance(exc, asyncio.CancelledError) else str(exc) or repr(exc)
    try:
        await store.call(
            Store.finish_run,
            run_id,
            requests=requests,
            repositories_ok=0,
            repositories_failed=0,
            status="failed",
            errors=[{"repository": None, "error": f"publishing the pass failed: {error}"}],
        )
    except Exception as store_exc:  # the store is what failed: the next holder closes it
        log.warning("scan run %d: cannot record its failure: %s", run_id, store_exc)


async def _wait(
    store: AsyncStore, run_id: int, stop: asyncio.Event, poll: float
) -> PassSummary | None:
    while await store.call(Store.scan_pass_finished, run_id) is False and not stop.is_set():
        await wait_event(stop, poll)
    return await store.call(Store.scan_pass, run_id)


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
