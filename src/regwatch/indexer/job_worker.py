"""The job worker: every instance's share of the shared passes (see `regwatch.indexer.shares`).

It looks for claimable jobs of the accounts this instance knows every `poll` seconds (a read),
or at once when woken (this instance published a pass, or a job of its own finished), and keeps
up to `cacheThreads + 1` repositories of an account in progress, as a per-account scan does (the
account's requests in flight are capped at `cacheThreads` per instance), plus as many claimed in
advance, so that a finished repository is followed at once by the next without a store round
trip. Each job is scanned by the indexer's `RepositoryScanner`; finished jobs are completed in
the store together, one transaction for those that finished while the previous one was being
written (as a group commit). The jobs claimed have their lease renewed every `ttl / 3`. When the
service stops, the repositories in progress are finished (a repository boundary), the ones
claimed in advance are released, and nothing more is claimed. The same for an account removed
from the config (deleted mid-pass, or its entry made invalid): its jobs claimed in advance are
released, not started.

Why batches: on PostgreSQL every store write is a round trip on one of the store's two writer
threads, which a scan also uses for each repository (begin, merge); a claim and a completion
per repository would double that (bench/scale.py measured 108 repositories/s for one instance
with them, against ~235 for accounts scanned whole).

A job's `requests` are the registry requests the account's client of this worker made since the
previous completion of that account: their sum over a pass is exact, the split between jobs of
one instance is approximate (they run concurrently on one client).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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
AHEAD = 3  # jobs held per account (running + claimed in advance), in slots (cacheThreads + 1)
FLUSH_DELAY = 0.05  # seconds finished jobs wait for others to be completed with them


@dataclass
class _AccountWork:
    """One account's scanning state in this worker (rebuilt when the account's settings change)."""

    account: DockerRegistryAccount
    scanner: RepositoryScanner | None
    client: RegistryClient | None
    setup_error: str | None = None
    reported: int = 0  # the client's requests already attributed to completed jobs
    running: int = 0
    queued: deque[ScanJob] = field(default_factory=deque)  # claimed, not started yet

    @property
    def slots(self) -> int:
        return self.account.cache_threads + 1

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
        self._finished: list[tuple[ScanJob, JobOutcome]] = []  # to complete in the store
        self._flushing: asyncio.Task[None] | None = None
        self._more: set[str] = set()  # accounts whose last claim was full: claim without a look
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
                await self._forget_removed()
                self._start_queued()
                if not await self._claim_all():
                    await _first(self._wake, stopping, timeout=self.poll)
        finally:
            await self._wind_down()
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _wind_down(self) -> None:
        """Give back what was claimed in advance, finish the repositories in progress (a
        repository boundary) and complete them."""
        queued = [job for work in self._work.values() for job in work.queued]
        for work in self._work.values():
            work.queued.clear()
        if queued:
            with contextlib.suppress(Exception):  # not released: their leases lapse
                await self.store.call(Store.release_scan_jobs, self.holder, queued)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        while self._flushing is not None:
            await asyncio.gather(self._flushing, return_exceptions=True)

    async def _forget_removed(self) -> None:
        """Accounts no longer configured (deleted: their jobs go with their data; or an entry
        made invalid): nothing more of theirs is started, the jobs claimed in advance are given
        back, and their state goes once their repositories in progress are finished."""
        configured = self._accounts()
        queued: list[ScanJob] = []
        for name in [name for name in self._work if name not in configured]:
            work = self._work[name]
            queued.extend(work.queued)
            work.queued.clear()
            self._more.discard(name)
            if not work.running:
                del self._work[name]
        if queued:
            with contextlib.suppress(Exception):  # not released: their leases lapse
                await self.store.call(Store.release_scan_jobs, self.holder, queued)

    async def _claim_all(self) -> bool:
        """Claim what fits in the free slots of every account with claimable jobs; whether
        anything was claimed."""
        accounts = self._accounts()
        room = {name: n for name, acc in accounts.items() if (n := self._room(acc)) > 0}
        if not room:
            return False
        claimed = False
        unsure = [name for name in room if name not in self._more]
        ready = [name for name in room if name in self._more]
        if unsure:
            ready += await self.store.call(Store.claimable_scan_accounts, unsure)
        for name in ready:
            jobs = await self.store.call(
                Store.claim_scan_jobs,
                name,
                self.holder,
                lease=timedelta(seconds=self.ttl),
                limit=room[name],
            )
            self._work_for(accounts[name]).queued.extend(jobs)
            claimed = claimed or bool(jobs)
            if len(jobs) == room[name]:
                self._more.add(name)
            else:
                self._more.discard(name)
        self._start_queued()
        return claimed

    def _room(self, account: DockerRegistryAccount) -> int:
        """How many more jobs of `account` to claim: `AHEAD` times its slots, less those in
        hand (none while more than one slotful is queued: claims come in batches)."""
        work = self._work.get(account.name)
        if work is None:
            return AHEAD * (account.cache_threads + 1)
        if len(work.queued) > work.slots:
            return 0
        return AHEAD * work.slots - work.running - len(work.queued)

    def _start_queued(self) -> None:
        configured = self._accounts()
        for work in self._work.values():
            if work.account.name not in configured:
                continue  # removed from the config meanwhile: see `_forget_removed`
            while work.queued and work.running < work.slots:
                job = work.queued.popleft()
                work.running += 1
                task = asyncio.create_task(
                    self._scan(job, work), name=f"regwatch-job-{job.repository}"
                )
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _work_for(self, account: DockerRegistryAccount) -> _AccountWork:
        work = self._work.get(account.name)
        if work is not None and (work.account == account or work.running or work.queued):
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
            self._finished.append((job, _outcome(result, work.requests_since_last())))
            if self._flushing is None:
                self._flushing = asyncio.create_task(self._flush(), name="regwatch-job-complete")
        finally:
            work.running -= 1
            self._start_queued()
            self._wake.set()

    async def _flush(self) -> None:
        """Complete the finished jobs, in batches, until none is left."""
        try:
            while self._finished:
                await asyncio.sleep(FLUSH_DELAY)
                batch, self._finished = self._finished, []
                try:
                    completions = await self.store.call(
                        Store.complete_scan_jobs, self.holder, batch
                    )
                except Exception as exc:  # their leases lapse: other instances scan them again
                    log.warning("cannot complete %d scan job(s): %s", len(batch), exc)
                    continue
                for (job, _), completion in zip(batch, completions, strict=True):
                    self.completed += completion.recorded
                    self.lost += not completion.recorded
                    if completion.finished_run:
                        log.info("account %s: pass %d finished", job.account, job.run_id)
        finally:
            self._flushing = None

    async def _heartbeat(self, stopping: asyncio.Event) -> None:
        """Renew the leases of this instance's jobs every ttl / 3 (also while stopping: the
        repositories in progress are still being finished)."""
        while True:
            await asyncio.sleep(self.ttl / 3.0)
            if not self._tasks and not any(work.queued for work in self._work.values()):
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
