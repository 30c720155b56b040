"""Shaping of /health's per-account state and of an account's status (regwatch.api.views)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from regwatch.api.views import account_state, account_status_view, iso, last_success
from regwatch.config.model import DockerRegistryAccount
from regwatch.indexer.scheduler import AccountSchedule
from regwatch.store import AccountStatus, RepositoryState, ScanRun

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@dataclass
class Run:
    status: str = "ok"
    account_error: str | None = None


def schedule(**fields: Any) -> AccountSchedule:
    acct = DockerRegistryAccount.model_validate({"name": "a", "address": "http://127.0.0.1:1"})
    entry = AccountSchedule(acct)
    for key, value in fields.items():
        setattr(entry, key, value)
    return entry


def test_account_state_follows_the_last_scan() -> None:
    assert account_state(schedule()) == "pending"
    assert account_state(schedule(last_result=Run())) == "ok"
    assert account_state(schedule(last_result=Run("partial"))) == "stale"
    assert account_state(schedule(last_result=Run("ok", "catalog failed"))) == "stale"
    assert account_state(schedule(last_result=Run("failed"), failures=2)) == "failing"
    assert account_state(schedule(failures=1)) == "failing"  # crashed before any result


def run(status: str, finished: datetime | None, **fields: Any) -> ScanRun:
    values: dict[str, Any] = {
        "id": 7,
        "account": "a",
        "started_at": T0,
        "finished_at": finished,
        "status": status,
        "requests": 12,
        "repositories_ok": 3,
        "repositories_failed": 1,
        "errors": ({"repository": "team/x", "error": "boom"},),
        "holder": "serve:h:1",
    }
    values.update(fields)
    return ScanRun(**values)


def status(last: ScanRun | None, finished: ScanRun | None) -> AccountStatus:
    stale = RepositoryState(
        account="a",
        name="team/x",
        status="stale",
        tag_count=4,
        last_ok_at=T0,
        last_scan_at=T0,
        last_error="boom",
        last_error_at=T0,
        changed_at=None,
    )
    return AccountStatus(
        account="a",
        registry="127.0.0.1:1",
        repositories=4,
        tags=40,
        catalog_ok_at=T0,
        catalog_error=None,
        catalog_error_at=None,
        last_run=last,
        last_finished_run=finished,
        stale=(stale,),
    )


def test_last_success_prefers_this_process_then_the_stores_last_good_run() -> None:
    done = run("partial", T0)
    assert last_success(schedule(last_success_at=5.0), status(done, done)) == 5.0
    assert last_success(schedule(), status(done, done)) == T0.timestamp()
    failed = run("failed", T0)
    assert last_success(None, status(failed, failed)) is None
    assert last_success(None, None) is None


def test_account_status_view() -> None:
    finished = run("partial", T0)
    running = run("running", None, id=8, requests=3, errors=())
    budget = {"limit": 100, "remaining": 40, "resetInSeconds": 12.5, "delaySeconds": 0.0}
    now = T0.timestamp() + 90
    view = account_status_view("a", None, status(running, finished), budget, now)
    assert view["lastSuccessAt"] == "2026-01-02T03:04:05Z"
    assert view["staleSeconds"] == 90.0
    assert (view["repositories"], view["tags"], view["state"]) == (4, 40, "pending")
    assert view["lastRun"]["status"] == "running"
    assert view["lastRun"]["finishedAt"] is None
    assert view["lastFinishedRun"] == {
        "runId": 7,
        "status": "partial",
        "startedAt": "2026-01-02T03:04:05Z",
        "finishedAt": "2026-01-02T03:04:05Z",
        "requests": 12,
        "repositoriesOk": 3,
        "repositoriesFailed": 1,
        "errors": [{"repository": "team/x", "error": "boom"}],
        "instance": "serve:h:1",
    }
    assert view["staleRepositories"] == [
        {
            "repository": "team/x",
            "error": "boom",
            "errorAt": "2026-01-02T03:04:05Z",
            "lastOkAt": "2026-01-02T03:04:05Z",
            "tags": 4,
        },
    ]
    assert view["rateLimit"] == budget
    assert view["catalog"]["okAt"] == "2026-01-02T03:04:05Z"


def test_account_status_of_an_account_never_scanned() -> None:
    view = account_status_view("a", schedule(next_scan_in=1.25), None, {}, 0.0)
    assert (view["state"], view["nextScanInSeconds"], view["lastRun"]) == ("pending", 1.25, None)
    assert (view["repositories"], view["staleSeconds"], view["staleRepositories"]) == (0, None, [])


def test_iso_times_are_utc_with_z() -> None:
    assert iso(0.0) == "1970-01-01T00:00:00Z"
    assert iso(None) is None
