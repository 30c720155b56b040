"""SQL of shared passes: a large account's repositories scanned by several instances.

A pass is a scan run (`scan_runs`) whose repositories are published as jobs, one `scan_jobs` row
per repository (the row is reused by the next pass). Any instance claims pending jobs — `SELECT …
FOR UPDATE SKIP LOCKED` on PostgreSQL, the single writer on SQLite — with a lease it renews while
it scans; a job whose lease expired (its instance died) is claimable again. Completing a job
locks its run's row first, so that exactly one completer sees that no job is left and closes
the run with the jobs' sums. `scanned_by`/`scanned_at` survive the next publication: they say
which instance last scanned the repository. Reads (a pass's progress, who scanned what) and the
"scan now" requests are in `regwatch.store.pass_reads`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, case, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from regwatch.store.accounts import clip
from regwatch.store.records import RunStatus
from regwatch.store.schema import scan_jobs, scan_runs

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
    the listing's requests and error. A pass without repositories is closed at once.

    The account's rows are reset with one UPDATE (new rows inserted, moved ones renumbered):
    an unchanged list of 500 repositories costs a few statements, not 500 upserts."""
    listed = {name: position for position, name in enumerate(dict.fromkeys(names))}
    stored = dict(
        conn.execute(select(j.c.repository, j.c.position).where(j.c.account == account)).all()
    )
    gone = [name for name in stored if name not in listed]
    for start in range(0, len(gone), CHUNK):
        chunk = gone[start : start + CHUNK]
        conn.execute(delete(j).where(j.c.account == account, j.c.repository.in_(chunk)))
    fresh = {name: 0 for name in COUNTS}
    conn.execute(
        update(j)
        .where(j.c.account == account)
        .values(
            run_id=run_id,
            status=PENDING,
            holder=None,
            lease_expires_at=None,
            attempts=0,
            ok=None,
            error=None,
            **fresh,
        )
    )
    moved = [
        {"k_account": account, "k_repository": name, "v_position": position}
        for name, position in listed.items()
        if name in stored and stored[name] != position
    ]
    if moved:
        conn.execute(_MOVED, moved)
    new = [_job_row(account, name, run_id, listed[name]) for name in listed if name not in stored]
    for start in range(0, len(new), CHUNK):
        conn.execute(insert(j).values(new[start : start + CHUNK]))
    errors = [] if error is None else [{"repository": None, "error": clip(error)}]
    conn.execute(
        update(scan_runs).where(scan_runs.c.id == run_id).values(requests=requests, errors=errors)
    )
    if not listed:
        _finish_if_done(conn, run_id, now)
    return len(listed)


_MOVED = (
    update(j)
    .where(j.c.account == bindparam("k_account"), j.c.repository == bindparam("k_repository"))
    .values(position=bindparam("v_position"))
)


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
    return complete_many(conn, holder, [(job, outcome)], now)[0]


def complete_many(
    conn: Connection, holder: str, items: Sequence[tuple[ScanJob, JobOutcome]], now: int
) -> list[JobCompletion]:
    """`complete` for several jobs in one transaction (their runs' rows locked in id order):
    one SELECT of those still held, one UPDATE executed for all (pipelined by psycopg)."""
    runs = sorted({job.run_id for job, _ in items})
    running = {
        run_id: conn.execute(
            select(scan_runs.c.status).where(scan_runs.c.id == run_id).with_for_update()
        ).scalar_one_or_none()  # the run's row lock: one completer at a time per pass
        for run_id in runs
    }
    held = _still_held(conn, holder, [job for job, _ in items])
    recorded = [(job.account, job.repository, job.run_id) in held for job, _ in items]
    rows = [_done_params(*item) for item, ok in zip(items, recorded, strict=True) if ok]
    if rows:
        conn.execute(_DONE.values(scanned_by=holder, scanned_at=now), rows)
    last = {job.run_id: index for index, (job, _) in enumerate(items) if recorded[index]}
    finished = {
        run_id
        for run_id, index in last.items()
        if running[run_id] == "running" and _finish_if_done(conn, run_id, now)
    }
    return [
        JobCompletion(done, done and job.run_id in finished and last[job.run_id] == index)
        for index, ((job, _), done) in enumerate(zip(items, recorded, strict=True))
    ]


def _still_held(
    conn: Connection, holder: str, jobs: Sequence[ScanJob]
) -> set[tuple[str, str, int]]:
    """(account, repository, run_id) of `jobs` that `holder` still has claimed."""
    held: set[tuple[str, str, int]] = set()
    for account in {job.account for job in jobs}:
        names = [job.repository for job in jobs if job.account == account]
        rows = conn.execute(
            select(j.c.repository, j.c.run_id).where(
                j.c.account == account,
                j.c.repository.in_(names),
                j.c.status == CLAIMED,
                j.c.holder == holder,
            )
        )
        held.update((account, row.repository, int(row.run_id)) for row in rows)
    return held


_DONE = (
    update(j)
    .where(j.c.account == bindparam("k_account"), j.c.repository == bindparam("k_repository"))
    .values(
        status=DONE,
        lease_expires_at=None,
        ok=bindparam("v_ok"),
        error=bindparam("v_error"),
        scanned_run=bindparam("v_run"),
        **{name: bindparam(f"v_{name}") for name in COUNTS},
    )
)


def _done_params(job: ScanJob, outcome: JobOutcome) -> dict[str, Any]:
    params: dict[str, Any] = {f"v_{name}": getattr(outcome, name) for name in COUNTS}
    params.update(
        k_account=job.account, k_repository=job.repository, v_ok=outcome.ok, v_run=job.run_id,
        v_error=None if outcome.error is None else clip(outcome.error),
    )  # fmt: skip
    return params


def _finish_if_done(conn: Connection, run_id: int, now: int) -> bool:
    left = conn.execute(
        select(func.count()).where(j.c.run_id == run_id, j.c.status != DONE)
    ).scalar_one()
    if left:
        return False
    run = conn.execute(select(scan_runs).where(scan_runs.c.id == run_id)).one()
    ok, failed, totals = done_counts(conn, run_id)
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


def done_counts(conn: Connection, run_id: int) -> tuple[int, int, dict[str, int]]:
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
def adopt(conn: Connection, run_id: int, holder: str) -> bool:
    """The account's lease passed to `holder`: it now coordinates the running pass."""
    result = conn.execute(
        update(scan_runs)
        .where(scan_runs.c.id == run_id, scan_runs.c.status == "running")
        .values(holder=holder)
    )
    return bool(result.rowcount)
