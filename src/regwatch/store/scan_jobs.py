"""SQL of shared passes (a large account's repositories scanned by several instances) and of
"scan now" requests that any instance may receive.

A pass is a scan run (`scan_runs`) whose repositories are published as jobs, one `scan_jobs` row
per repository (the row is reused by the next pass). Any instance claims pending jobs — `SELECT …
FOR UPDATE SKIP LOCKED` on PostgreSQL, the single writer on SQLite — with a lease it renews while
it scans; a job whose lease expired (its instance died) is claimable again. Completing a job
locks its run's row first, so that exactly one completer sees that no job is left and closes
the run with the jobs' sums. `scanned_by`/`scanned_at` survive the next publication: they say
which instance last scanned the repository.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from regwatch.store.accounts import clip
from regwatch.store.records import RunStatus, at_ms, from_ms
from regwatch.store.schema import repositories, scan_jobs, scan_requests, scan_runs

PENDING, CLAIMED, DONE = "pending", "claimed", "done"
CHUNK = 200  # rows per multi-row statement (SQLite caps the number of bound parameters)
MAX_RUN_ERRORS = 100  # repository errors kept in a run record
COUNTS = ("requests", "tags", "added", "changed", "removed", "events", "tag_errors")
j = scan_jobs


@dataclass(frozen=True)
class ScanJob:
    """One claimed repository of a pass."""

    account: str
    repository: str
    run_id: int
    attempts: int


@dataclass(frozen=True)
class JobOutcome:
    """What scanning a job's repository gave (the indexer's RepositoryResult, plus requests)."""

    ok: bool
    error: str | None = None
    requests: int = 0
    tags: int = 0
    added: int = 0
    changed: int = 0
    removed: int = 0
    events: int = 0
    tag_errors: int = 0


@dataclass(frozen=True)
class JobCompletion:
    recorded: bool  # False: the job's lease was lost (another instance took it over)
    finished_run: bool  # this completion was the pass's last: the run is closed


@dataclass(frozen=True)
class PassSummary:
    """A pass as the store has it: its run record and its jobs' counts."""

    run_id: int
    account: str
    holder: str | None
    status: RunStatus
    started_at: datetime
    finished_at: datetime | None
    requests: int  # the run's: the listing's, plus the jobs' once the run is closed
    jobs: int
    pending: int
    claimed: int
    done: int
    ok: int
    failed: int
    totals: Mapping[str, int] = field(default_factory=dict)  # COUNTS summed over done jobs
    by_instance: Mapping[str, int] = field(default_factory=dict)  # done jobs per instance
    errors: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class ScannedBy:
    """Who last scanned a repository, and in which run (`shared`: as a job of a pass)."""

    repository: str
    instance: str | None
    at: datetime | None
    run_id: int | None
    shared: bool


def _insert(conn: Connection, table: Any) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


def _claimable(now: int) -> ColumnElement[bool]:
    return or_(j.c.status == PENDING, and_(j.c.status == CLAIMED, j.c.lease_expires_at <= now))


# --- publishing ----------------------------------------------------------------------------------
def publish(
    conn: Connection,
    account: str,
    run_id: int,
    names: Sequence[str],
    *,
    now: int,
    requests: int,
    error: str | None,
) -> int:
    """Make `names` the pass `run_id`'s jobs (rows of other repositories go); the run records
    the listing's requests and error. A pass without repositories is closed at once."""
    listed = set(names)
    stored = conn.execute(select(j.c.repository).where(j.c.account == account)).scalars()
    gone = [name for name in stored if name not in listed]
    for start in range(0, len(gone), CHUNK):
        chunk = gone[start : start + CHUNK]
        conn.execute(delete(j).where(j.c.account == account, j.c.repository.in_(chunk)))
    rows = [_job_row(account, name, run_id, position) for position, name in enumerate(names)]
    for start in range(0, len(rows), CHUNK):
        insert = _insert(conn, j).values(rows[start : start + CHUNK])
        kept = {"account", "repository", "scanned_by", "scanned_at", "scanned_run"}
        fresh = {c.name: insert.excluded[c.name] for c in j.c if c.name not in kept}
        conn.execute(insert.on_conflict_do_update(index_elements=["account", "repository"],
                                                  set_=fresh))  # fmt: skip
    errors = [] if error is None else [{"repository": None, "error": clip(error)}]
    conn.execute(
        update(scan_runs).where(scan_runs.c.id == run_id).values(requests=requests, errors=errors)
    )
    if not names:
        _finish_if_done(conn, run_id, now)
    return len(rows)


def _job_row(account: str, name: str, run_id: int, position: int) -> dict[str, Any]:
    row: dict[str, Any] = {
        "account": account, "repository": name, "run_id": run_id, "position": position,
        "status": PENDING, "holder": None, "lease_expires_at": None, "attempts": 0, "ok": None,
        "error": None, "scanned_by": None, "scanned_at": None, "scanned_run": None,
    }  # fmt: skip
    row.update({name: 0 for name in COUNTS})
    return row


# --- claiming ------------------------------------------------------------------------------------
def claimable_accounts(conn: Connection, accounts: Iterable[str], now: int) -> list[str]:
    wanted = list(accounts)
    if not wanted:
        return []
    query = select(j.c.account).where(j.c.account.in_(wanted), _claimable(now)).distinct()
    return sorted(conn.execute(query).scalars())


def claim(
    conn: Connection, account: str, holder: str, *, now: int, lease_ms: int, limit: int
) -> list[ScanJob]:
    """Lease up to `limit` claimable jobs of `account`, in listing order."""
    due = (
        select(j.c.repository)
        .where(j.c.account == account, _claimable(now))
        .order_by(j.c.run_id, j.c.position)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    names = list(conn.execute(due).scalars())
    if not names:
        return []
    claimed = (
        update(j)
        .where(j.c.account == account, j.c.repository.in_(names))
        .values(
            status=CLAIMED,
            holder=holder,
            lease_expires_at=now + lease_ms,
            attempts=j.c.attempts + 1,
        )
        .returning(j.c.repository, j.c.run_id, j.c.attempts, j.c.position)
    )
    rows = list(conn.execute(claimed))
    rows.sort(key=lambda row: (row.run_id, row.position))
    return [ScanJob(account, row.repository, int(row.run_id), int(row.attempts)) for row in rows]


def renew(conn: Connection, holder: str, *, now: int, lease_ms: int) -> int:
    """Extend every job `holder` has claimed; how many."""
    result = conn.execute(
        update(j)
        .where(j.c.holder == holder, j.c.status == CLAIMED)
        .values(lease_expires_at=now + lease_ms)
    )
    return int(result.rowcount or 0)


def release(conn: Connection, holder: str, jobs: Iterable[ScanJob]) -> int:
    """Give claimed jobs back (not started): claimable at once by any instance."""
    released = 0
    for job in jobs:
        result = conn.execute(
            update(j)
            .where(_held(job, holder))
            .values(status=PENDING, holder=None, lease_expires_at=None)
        )
        released += int(result.rowcount or 0)
    return released


def _held(job: ScanJob, holder: str) -> ColumnElement[bool]:
    return and_(
        j.c.account == job.account,
        j.c.repository == job.repository,
        j.c.run_id == job.run_id,
        j.c.status == CLAIMED,
        j.c.holder == holder,
    )


# --- completing ----------------------------------------------------------------------------------
def complete(
    conn: Connection, job: ScanJob, holder: str, outcome: JobOutcome, now: int
) -> JobCompletion:
    """Mark a claimed job done; the last job of its pass closes the run (see the module doc)."""
    running = conn.execute(
        select(scan_runs.c.status).where(scan_runs.c.id == job.run_id).with_for_update()
    ).scalar_one_or_none()  # the run's row lock: one completer at a time per pass
    values: dict[str, Any] = {name: getattr(outcome, name) for name in COUNTS}
    values.update(
        status=DONE, lease_expires_at=None, ok=outcome.ok, scanned_by=holder, scanned_at=now,
        scanned_run=job.run_id, error=None if outcome.error is None else clip(outcome.error),
    )  # fmt: skip
    recorded = bool(conn.execute(update(j).where(_held(job, holder)).values(values)).rowcount)
    finished = recorded and running == "running" and _finish_if_done(conn, job.run_id, now)
    return JobCompletion(recorded, finished)


def _finish_if_done(conn: Connection, run_id: int, now: int) -> bool:
    left = conn.execute(
        select(func.count()).where(j.c.run_id == run_id, j.c.status != DONE)
    ).scalar_one()
    if left:
        return False
    run = conn.execute(select(scan_runs).where(scan_runs.c.id == run_id)).one()
    ok, failed, totals = _done_counts(conn, run_id)
    errors = [dict(e) for e in (run.errors or ())] + _job_errors(conn, run_id)
    result = conn.execute(
        update(scan_runs)
        .where(scan_runs.c.id == run_id, scan_runs.c.status == "running")
        .values(
            finished_at=now,
            status=_status(ok, failed, bool(run.errors), totals.get("tag_errors", 0)),
            requests=int(run.requests) + totals.get("requests", 0),
            repositories_ok=ok,
            repositories_failed=failed,
            errors=errors,
        )
    )
    return bool(result.rowcount)


def _status(ok: int, failed: int, account_error: bool, tag_errors: int) -> RunStatus:
    """As a per-account run's (indexer.jobs): failed when nothing succeeded."""
    if ok == 0 and (failed or account_error):
        return "failed"
    return "partial" if failed or account_error or tag_errors else "ok"


def _done_counts(conn: Connection, run_id: int) -> tuple[int, int, dict[str, int]]:
    sums = [func.coalesce(func.sum(j.c[name]), 0) for name in COUNTS]
    ok_count = func.coalesce(func.sum(case((j.c.ok.is_(True), 1), else_=0)), 0)
    row = conn.execute(
        select(ok_count, func.count(), *sums).where(j.c.run_id == run_id, j.c.status == DONE)
    ).one()
    ok, done = int(row[0]), int(row[1])
    return ok, done - ok, {name: int(value) for name, value in zip(COUNTS, row[2:], strict=True)}


def _job_errors(conn: Connection, run_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(j.c.repository, j.c.ok, j.c.error, j.c.tag_errors)
        .where(j.c.run_id == run_id, j.c.status == DONE, j.c.error.is_not(None))
        .order_by(j.c.position)
        .limit(MAX_RUN_ERRORS)
    )
    errors: list[dict[str, Any]] = []
    for row in rows:
        text = row.error
        if row.ok:
            text = f"{row.tag_errors} tag(s) kept without fresh data; first: {row.error}"
        errors.append({"repository": row.repository, "error": clip(text)})
    return errors


# --- passes --------------------------------------------------------------------------------------
def unfinished_pass(conn: Connection, account: str) -> int | None:
    """The account's newest run, when it is a pass still running with jobs left."""
    newest = conn.execute(
        select(scan_runs.c.id, scan_runs.c.status)
        .where(scan_runs.c.account == account)
        .order_by(scan_runs.c.id.desc())
        .limit(1)
    ).one_or_none()
    if newest is None or newest.status != "running":
        return None
    left = select(j.c.repository).where(j.c.run_id == newest.id, j.c.status != DONE).limit(1)
    return int(newest.id) if conn.execute(left).first() is not None else None


def adopt(conn: Connection, run_id: int, holder: str) -> bool:
    """The account's lease passed to `holder`: it now coordinates the running pass."""
    result = conn.execute(
        update(scan_runs)
        .where(scan_runs.c.id == run_id, scan_runs.c.status == "running")
        .values(holder=holder)
    )
    return bool(result.rowcount)


def summary(conn: Connection, run_id: int) -> PassSummary | None:
    run = conn.execute(select(scan_runs).where(scan_runs.c.id == run_id)).one_or_none()
    if run is None:
        return None
    counted = select(j.c.status, func.count()).where(j.c.run_id == run_id).group_by(j.c.status)
    states: dict[str, int] = {str(row[0]): int(row[1]) for row in conn.execute(counted)}
    ok, failed, totals = _done_counts(conn, run_id)
    by_instance = conn.execute(
        select(j.c.scanned_by, func.count())
        .where(j.c.run_id == run_id, j.c.status == DONE)
        .group_by(j.c.scanned_by)
    ).all()
    return PassSummary(
        run_id=run_id, account=run.account, holder=run.holder, status=run.status,
        started_at=at_ms(run.started_at), finished_at=from_ms(run.finished_at),
        requests=int(run.requests), jobs=sum(states.values()),
        pending=int(states.get(PENDING, 0)), claimed=int(states.get(CLAIMED, 0)),
        done=int(states.get(DONE, 0)), ok=ok, failed=failed, totals=totals,
        by_instance={str(name): int(count) for name, count in by_instance},
        errors=tuple(run.errors or ()),
    )  # fmt: skip


def repository_scans(conn: Connection, account: str) -> list[ScannedBy]:
    """Per repository, who scanned it last: its job's instance when a pass scanned it last,
    else the holder of the account's run that was running at its last scan."""
    repos = conn.execute(
        select(repositories.c.name, repositories.c.last_scan_at)
        .where(repositories.c.account == account)
        .order_by(repositories.c.name)
    ).all()
    jobs = {
        row.repository: row
        for row in conn.execute(
            select(j.c.repository, j.c.scanned_by, j.c.scanned_at, j.c.scanned_run).where(
                j.c.account == account, j.c.scanned_at.is_not(None)
            )
        )
    }
    runs = _runs_covering(conn, account, [r.last_scan_at for r in repos if r.last_scan_at])
    starts = [run[0] for run in runs]
    answer: list[ScannedBy] = []
    for repo in repos:
        job = jobs.get(repo.name)
        if job is not None and job.scanned_at >= (repo.last_scan_at or 0):
            answer.append(ScannedBy(repo.name, job.scanned_by, at_ms(job.scanned_at),
                                    int(job.scanned_run), shared=True))  # fmt: skip
            continue
        index = bisect_right(starts, repo.last_scan_at) - 1 if repo.last_scan_at else -1
        run = runs[index] if index >= 0 else None
        answer.append(ScannedBy(repo.name, run[2] if run else None, from_ms(repo.last_scan_at),
                                run[1] if run else None, shared=False))  # fmt: skip
    return answer


def _runs_covering(
    conn: Connection, account: str, moments: list[int]
) -> list[tuple[int, int, str | None]]:
    """(started_at, id, holder) of the runs that may have been running at `moments`: those
    started between the newest start before the earliest moment and the latest moment."""
    if not moments:
        return []
    first, last = min(moments), max(moments)
    mine = scan_runs.c.account == account
    floor = conn.execute(
        select(func.max(scan_runs.c.started_at)).where(mine, scan_runs.c.started_at <= first)
    ).scalar_one_or_none()
    rows = conn.execute(
        select(scan_runs.c.started_at, scan_runs.c.id, scan_runs.c.holder)
        .where(mine, scan_runs.c.started_at >= (floor or first), scan_runs.c.started_at <= last)
        .order_by(scan_runs.c.started_at, scan_runs.c.id)
    )
    return [(int(r.started_at), int(r.id), r.holder) for r in rows]


# --- scan requests -------------------------------------------------------------------------------
def request_scan(conn: Connection, account: str, by: str | None, now: int) -> None:
    row = {"account": account, "requested_at": now, "requested_by": by}
    insert = _insert(conn, scan_requests).values(row)
    conn.execute(insert.on_conflict_do_update(index_elements=["account"], set_=row))


def requested(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(scan_requests.c.account, scan_requests.c.requested_at))
    return {row.account: int(row.requested_at) for row in rows}


def consume_request(conn: Connection, account: str, before: int) -> bool:
    """A scan of `account` started at `before`: requests made until then are answered."""
    result = conn.execute(
        delete(scan_requests).where(
            scan_requests.c.account == account, scan_requests.c.requested_at <= before
        )
    )
    return bool(result.rowcount)
