"""The job worker: every instance's share of the shared passes (see `regwatch.indexer.shares`).

It looks for claimable jobs of the accounts this instance knows every `poll` seconds (a read),
or at once when woken (this instance published a pass, or a job of its own finished), and keeps
up to `cacheThreads + 1` repositories of an account in progress, as a per-account scan does (the
account's requests in flight are capped at `cacheThreads` per instance). Each job is scanned by
the indexer's `RepositoryScanner` and completed in the store; the jobs in progress have their
lease renewed every `ttl / 3`. When the service stops, the repositories in progress are finished
(a repository boundary) and nothing more is claimed.

A job's `requests` are the registry requests the account's client of this worker made since the
previous completion of that account: their sum over a pass is exact, the split between jobs of
one instance is approximate (they run concurrently on one client).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from regwatch.config.model import DockerRegistryAccount
from regwatch.errors import RegwatchError
from regwatch.indexer.repository_scan import RepositoryScanner
from regwatch.indexer.results import RepositoryResult
from regwatch.registry import RegistryClient, Transport
from regwatch.store import AsyncStore, Store
from regwatch.store.scan_jobs import JobOutcome, ScanJob

log = logging.getLogger(__name__)
JOB_POLL = 0.5  # seconds between two looks for claimable jobs when idle


@dataclass
class _AccountWork:
    """One account's scanning state in this worker (rebuilt when the account's settings change)."""

    account: DockerRegistryAccount
    scanner: RepositoryScanner | None
    client: RegistryClient | None
    setup_error: str | None = None
    reported: int = 0  # the client's requests already attributed to completed jobs
    running: int = 0

    def requests_since_last(self) -> int:
        if self.client is None:
            return 0
        made = self.client.stats.requests - self.reported
        self.reported += made
        return made


class JobWorker:
    """This instance's job worker (see the module docstring). `run(stopping)` is its loop."""

    def __init__(
        self,
        store: AsyncStore,
        holder: str,
        *,
        accounts: Callable[[], Mapping[str, DockerRegistryAccount]],
        transport: Callable[[], Transport],
        sinks: Callable[[DockerRegistryAccount], Sequence[str]],
        ttl: float,
        poll: float = JOB_POLL,
    ) -> None:
        self.store = store
        self.holder = holder
        self.ttl = ttl
        self.poll = poll
        self._accounts = accounts
        self._transport = transport
        self._sinks = sinks
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._work: dict[str, _AccountWork] = {}
        self.completed = 0  # jobs this instance completed
        self.lost = 0  # jobs finished after their lease was taken over

    def wake(self) -> None:
        """Look for jobs now (e.g. a pass was just published)."""
        self._wake.set()

    async def run(self, stopping: asyncio.Event) -> None:
        heartbeat = asyncio.create_task(self._heartbeat(stopping), name="regwatch-job-leases")
        try:
            while not stopping.is_set():
                self._wake.clear()
                if not await self._claim_all():
                    await _first(self._wake, stopping, timeout=self.poll)
        finally:
            if self._tasks:  # finish the repositories in progress (a repository boundary)
                await asyncio.gather(*self._tasks, return_exceptions=True)
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _claim_all(self) -> bool:
        """Claim what fits in the free slots of every account with claimable jobs; whether
        anything was claimed."""
        accounts = self._accounts()
        room = {name: self._free(acc) for name, acc in accounts.items() if self._free(acc) > 0}
        if not room:
            return False
        claimed = False
        for name in await self.store.call(Store.claimable_scan_accounts, list(room)):
            jobs = await self.store.call(
                Store.claim_scan_jobs,
                name,
                self.holder,
                lease=timedelta(seconds=self.ttl),
                limit=room[name],
            )
            for job in jobs:
                self._start(job, accounts[name])
            claimed = claimed or bool(jobs)
        return claimed

    def _free(self, account: DockerRegistryAccount) -> int:
        work = self._work.get(account.name)
        running = work.running if work is not None else 0
        return account.cache_threads + 1 - running

    def _start(self, job: ScanJob, account: DockerRegistryAccount) -> None:
        work = self._work_for(account)
        work.running += 1
        task = asyncio.create_task(self._scan(job, work), name=f"regwatch-job-{job.repository}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _work_for(self, account: DockerRegistryAccount) -> _AccountWork:
        work = self._work.get(account.name)
        if work is not None and (work.account == account or work.running):
            return work  # an edited account's new settings apply once its jobs are done
        try:
            client = RegistryClient(
                account.endpoint(), account.credentials(), transport=self._transport()
            )
        except RegwatchError as exc:  # e.g. an unreadable CA file: its jobs fail with that
            work = _AccountWork(account, None, None, setup_error=str(exc))
        else:
            limit = asyncio.Semaphore(account.cache_threads)
            scanner = RepositoryScanner(account, client, self.store, limit, self._sinks(account))
            work = _AccountWork(account, scanner, client)
        self._work[account.name] = work
        return work

    async def _scan(self, job: ScanJob, work: _AccountWork) -> None:
        try:
            if work.scanner is None:
                result = RepositoryResult(job.repository, ok=False, error=work.setup_error)
            else:
                result = await work.scanner.scan(job.repository)
            outcome = _outcome(result, work.requests_since_last())
            completion = await self.store.call(Store.complete_scan_job, job, self.holder, outcome)
        except Exception as exc:  # the store failed: the job's lease lapses, another retries
            log.warning("%s/%s: cannot complete the scan job: %s", job.account, job.repository,
                        exc)  # fmt: skip
        else:
            self.completed += completion.recorded
            self.lost += not completion.recorded
            if completion.finished_run:
                log.info("account %s: pass %d finished", job.account, job.run_id)
        finally:
            work.running -= 1
            self._wake.set()

    async def _heartbeat(self, stopping: asyncio.Event) -> None:
        """Renew the leases of this instance's jobs every ttl / 3 (also while stopping: the
        repositories in progress are still being finished)."""
        while True:
            await asyncio.sleep(self.ttl / 3.0)
            if not self._tasks:
                continue
            try:
                await self.store.call(
                    Store.renew_scan_jobs, self.holder, timedelta(seconds=self.ttl)
                )
            except Exception as exc:  # the store is unreachable: the leases may lapse meanwhile
                log.warning("could not renew the scan job leases: %s", exc)


def _outcome(result: RepositoryResult, requests: int) -> JobOutcome:
    return JobOutcome(
        ok=result.ok,
        error=result.error,
        requests=requests,
        tags=result.tags,
        added=result.added,
        changed=result.changed,
        removed=result.removed,
        events=result.events,
        tag_errors=result.tag_errors,
    )


async def _first(*events: asyncio.Event, timeout: float) -> None:
    """Wait until one of `events` is set, or `timeout` seconds."""
    if any(event.is_set() for event in events):
        return
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
