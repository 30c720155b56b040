"""Store methods for shared passes and "scan now" requests (several instances on one database): a
mixin of `regwatch.store.store.Store`; the SQL and the records are in `regwatch.store.scan_jobs`
(writes) and `regwatch.store.pass_reads` (reads, scan requests).

The methods use the transaction helpers Store defines (`_read`, `_write`, `_now`); the stubs below
declare them for mypy only. Writers are marked `@writes` like Store's own.

On PostgreSQL the jobs' writes do not take the process's write lock (`_job_write`): it orders a
process's writes for SQLite's single writer, while PostgreSQL's row locks order these (claims
skip locked rows, completions lock their run's row). So claiming and completing never wait for
a repository's merge in the same process. On SQLite they go through `_write` like the others.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection

from regwatch.store import pass_reads as pr
from regwatch.store import scan_jobs as sj
from regwatch.store.engine import Engines
from regwatch.store.failures import store_errors
from regwatch.store.marks import writes
from regwatch.store.records import at_ms, duration_ms, to_ms


class ScanJobMethods:
    """Shared passes (publish, claim, renew, release, complete) and scan requests (see Store)."""

    if TYPE_CHECKING:
        url: str
        engines: Engines
        is_sqlite: bool
        _batch: threading.local

        def _read(self) -> AbstractContextManager[Connection]: ...

        def _write(self) -> AbstractContextManager[Connection]: ...

        def _now(self) -> int: ...

    @contextmanager
    def _job_write(self) -> Iterator[Connection]:
        """A write transaction for the jobs (see the module docstring)."""
        if self.is_sqlite or getattr(self._batch, "conn", None) is not None:
            with self._write() as conn:
                yield conn
            return
        with store_errors(self.url, "write"), self.engines.writer.connect() as conn, conn.begin():
            yield conn

    @writes
    def publish_scan_jobs(
        self,
        account: str,
        run_id: int,
        repositories: Sequence[str],
        *,
        requests: int = 0,
        error: str | None = None,
    ) -> int:
        """Publish the pass `run_id`: one pending job per repository (listing order); the run
        records the listing's `requests` and `error`. Returns the number of jobs."""
        with self._job_write() as conn:
            return sj.publish(
                conn, account, run_id, repositories, now=self._now(), requests=requests, error=error
            )

    def claimable_scan_accounts(self, accounts: Iterable[str]) -> list[str]:
        """Which of `accounts` have jobs to claim now (a read: cheap to poll)."""
        with self._read() as conn:
            return sj.claimable_accounts(conn, accounts, self._now())

    @writes
    def claim_scan_jobs(
        self, account: str, holder: str, *, lease: timedelta, limit: int
    ) -> list[sj.ScanJob]:
        with self._job_write() as conn:
            return sj.claim(
                conn, account, holder, now=self._now(), lease_ms=duration_ms(lease), limit=limit
            )

    @writes
    def renew_scan_jobs(self, holder: str, lease: timedelta) -> int:
        with self._job_write() as conn:
            return sj.renew(conn, holder, now=self._now(), lease_ms=duration_ms(lease))

    @writes
    def release_scan_jobs(self, holder: str, jobs: Iterable[sj.ScanJob]) -> int:
        with self._job_write() as conn:
            return sj.release(conn, holder, jobs)

    @writes
    def complete_scan_job(
        self, job: sj.ScanJob, holder: str, outcome: sj.JobOutcome
    ) -> sj.JobCompletion:
        with self._job_write() as conn:
            return sj.complete(conn, job, holder, outcome, self._now())

    @writes
    def complete_scan_jobs(
        self, holder: str, items: Sequence[tuple[sj.ScanJob, sj.JobOutcome]]
    ) -> list[sj.JobCompletion]:
        """Complete several jobs in one transaction (a completion per item, in order)."""
        with self._job_write() as conn:
            return sj.complete_many(conn, holder, items, self._now())

    def unfinished_scan_pass(self, account: str) -> int | None:
        with self._read() as conn:
            return pr.unfinished_pass(conn, account)

    @writes
    def adopt_scan_pass(self, run_id: int, holder: str) -> bool:
        with self._job_write() as conn:
            return sj.adopt(conn, run_id, holder)

    def scan_pass_finished(self, run_id: int) -> bool | None:
        """Whether the pass's run is closed (cheap to poll); None when it is gone."""
        with self._read() as conn:
            return pr.finished(conn, run_id)

    def scan_pass(self, run_id: int) -> pr.PassSummary | None:
        with self._read() as conn:
            return pr.summary(conn, run_id)

    def repository_scans(self, account: str) -> list[pr.ScannedBy]:
        with self._read() as conn:
            return pr.repository_scans(conn, account)

    @writes
    def request_scan(self, account: str, by: str | None = None) -> None:
        """Ask for a scan of `account` by whichever instance holds (or next takes) it."""
        with self._write() as conn:
            pr.request_scan(conn, account, by, self._now())

    def scan_requests(self) -> dict[str, datetime]:
        with self._read() as conn:
            return {name: at_ms(ms) for name, ms in pr.requested(conn).items()}

    @writes
    def consume_scan_request(self, account: str, started: datetime) -> bool:
        with self._write() as conn:
            return pr.consume_request(conn, account, to_ms(started))
