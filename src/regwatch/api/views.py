"""Pure shaping of regwatch's own endpoints: `/health` and an account's status.

An account's state, as /health reports it:
- `pending`: no scan has finished since the service started;
- `ok`: the last scan listed every repository;
- `stale`: the last scan left some repositories (or the catalog) failing — their last good data
  is served and marked stale;
- `failing`: the last scan failed entirely (or could not run); the last good data is served.
None of these makes the service unhealthy: `/health` says UP while the process serves.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from regwatch.indexer.scheduler import AccountSchedule
from regwatch.store import AccountStatus, ScanRun


def iso(moment: datetime | float | None) -> str | None:
    """An ISO 8601 UTC time from a datetime or epoch seconds."""
    if moment is None:
        return None
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def account_state(schedule: AccountSchedule) -> str:
    if schedule.failures:
        return "failing"
    result = schedule.last_result
    if result is None:
        return "pending"
    if getattr(result, "status", "ok") != "ok" or getattr(result, "account_error", None):
        return "stale"
    return "ok"


def schedule_view(schedule: AccountSchedule) -> dict[str, Any]:
    result = schedule.last_result
    return {
        "state": account_state(schedule),
        "scanning": schedule.state == "scanning",
        "scans": schedule.scans,
        "consecutiveFailures": schedule.failures,
        "lastScanStartedAt": iso(schedule.last_started_at),
        "lastScanFinishedAt": iso(schedule.last_finished_at),
        "lastSuccessAt": iso(schedule.last_success_at),
        "lastStatus": getattr(result, "status", None) if result is not None else None,
        "lastError": schedule.last_error,
        "nextScanInSeconds": _round(schedule.next_scan_in)
        if schedule.state != "scanning"
        else None,
        "leaseHolder": schedule.lease_holder,  # several instances: who holds the scan lease
        "leaseCheckedAt": iso(schedule.lease_checked_at),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def run_view(run: ScanRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "runId": run.id,
        "status": run.status,
        "startedAt": iso(run.started_at),
        "finishedAt": iso(run.finished_at),
        "requests": run.requests,
        "repositoriesOk": run.repositories_ok,
        "repositoriesFailed": run.repositories_failed,
        "errors": [dict(error) for error in run.errors],
        "instance": run.holder,
    }


def last_success(schedule: AccountSchedule | None, status: AccountStatus | None) -> float | None:
    """Epoch seconds of the last scan that listed at least something (this process's, else the
    store's newest finished run that did not fail)."""
    if schedule is not None and schedule.last_success_at is not None:
        return schedule.last_success_at
    run = status.last_finished_run if status is not None else None
    if run is not None and run.finished_at is not None and run.status != "failed":
        return run.finished_at.timestamp()
    return None


def account_status_view(
    name: str,
    schedule: AccountSchedule | None,
    status: AccountStatus | None,
    budget: Mapping[str, Any],
    now: float,
) -> dict[str, Any]:
    """`GET /dockerRegistry/accounts/{account}/status`."""
    success = last_success(schedule, status)
    view: dict[str, Any] = {
        "account": name,
        "registry": status.registry if status is not None else None,
        "lastSuccessAt": iso(success),
        "staleSeconds": None if success is None else round(max(0.0, now - success), 3),
        "repositories": status.repositories if status is not None else 0,
        "tags": status.tags if status is not None else 0,
    }
    view.update(schedule_view(schedule) if schedule is not None else {"state": "pending"})
    view["lastSuccessAt"] = iso(success)
    view["catalog"] = {
        "okAt": iso(status.catalog_ok_at) if status else None,
        "error": status.catalog_error if status else None,
        "errorAt": iso(status.catalog_error_at) if status else None,
    }
    view["lastRun"] = run_view(status.last_run) if status else None
    view["lastFinishedRun"] = run_view(status.last_finished_run) if status else None
    view["staleRepositories"] = [
        {
            "repository": repo.name,
            "error": repo.last_error,
            "errorAt": iso(repo.last_error_at),
            "lastOkAt": iso(repo.last_ok_at),
            "tags": repo.tag_count,
        }
        for repo in (status.stale if status else ())
    ]
    view["rateLimit"] = dict(budget)
    return view
