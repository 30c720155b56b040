"""Reads about shared passes (`regwatch.store.scan_jobs`): a pass's progress and sums, who last
scanned each repository, and the "scan now" requests kept for any instance to answer."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Connection

from regwatch.store.dialect import upsert
from regwatch.store.records import RunStatus, at_ms, from_ms
from regwatch.store.scan_jobs import CLAIMED, DONE, PENDING, done_counts
from regwatch.store.schema import repositories, scan_jobs, scan_requests, scan_runs

j = scan_jobs


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


def finished(conn: Connection, run_id: int) -> bool | None:
    """Whether the run is closed (None: it is gone, e.g. its account was deleted)."""
    row = conn.execute(
        select(scan_runs.c.finished_at).where(scan_runs.c.id == run_id)
    ).one_or_none()
    return None if row is None else row.finished_at is not None


def summary(conn: Connection, run_id: int) -> PassSummary | None:
    run = conn.execute(select(scan_runs).where(scan_runs.c.id == run_id)).one_or_none()
    if run is None:
        return None
    counted = select(j.c.status, func.count()).where(j.c.run_id == run_id).group_by(j.c.status)
    states: dict[str, int] = {str(row[0]): int(row[1]) for row in conn.execute(counted)}
    ok, failed, totals = done_counts(conn, run_id)
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
    upsert(conn, scan_requests, [row], keys=["account"], update=["requested_at", "requested_by"])


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
