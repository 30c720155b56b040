"""Shared passes and scan requests in the store (regwatch.store.scan_jobs), on SQLite and, with
REGWATCH_TEST_STORE=postgres, on PostgreSQL: publishing, claiming (disjoint, in listing order),
lease expiry and takeover, renewal, release, the last completion closing the run exactly once
(also when two instances complete concurrently), adoption, who-scanned-what, scan requests."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from regwatch.store import Store, open_store
from regwatch.store.scan_jobs import JobOutcome, ScanJob

LEASE = timedelta(seconds=30)


class Clock:
    """A settable wall clock for the store (lease expiry without sleeping)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def stores(store_url: str, clock: Clock) -> Iterator[Callable[[], Store]]:
    """Opens Store objects on one database (one per "instance"), closed at the end."""
    opened: list[Store] = []

    def new() -> Store:
        opened.append(open_store(store_url, clock=clock))
        return opened[-1]

    yield new
    for store in opened:
        store.close()


def a_pass(store: Store, names: list[str], account: str = "big", holder: str = "i1") -> int:
    store.ensure_account(account, "reg.example")
    store.replace_repositories(account, names)
    run_id = store.start_run(account, holder=holder)
    assert store.publish_scan_jobs(account, run_id, names, requests=2) == len(names)
    return run_id


def claim(store: Store, holder: str, limit: int = 100, account: str = "big") -> list[ScanJob]:
    return store.claim_scan_jobs(account, holder, lease=LEASE, limit=limit)


def done(store: Store, job: ScanJob, holder: str, **fields: object) -> bool:
    outcome = JobOutcome(**{"ok": True, "requests": 3, "tags": 1, **fields})  # type: ignore[arg-type]
    completion = store.complete_scan_job(job, holder, outcome)
    assert completion.recorded
    return completion.finished_run


def test_two_instances_claim_disjoint_jobs_in_order_and_the_last_completion_closes_the_run(
    stores: Callable[[], Store],
) -> None:
    one, two = stores(), stores()
    names = [f"app{i:02d}" for i in range(10)]
    run_id = a_pass(one, names)
    assert one.claimable_scan_accounts(["big", "other"]) == ["big"]
    first = claim(one, "i1", limit=4)
    second = claim(two, "i2", limit=4)
    assert [job.repository for job in first] == names[:4]
    assert [job.repository for job in second] == names[4:8]
    rest = claim(one, "i1")
    assert [job.repository for job in rest] == names[8:]
    assert claim(two, "i2") == []
    assert one.claimable_scan_accounts(["big"]) == []
    finished = [done(one, job, "i1") for job in first + rest[:1]]
    finished += [done(two, job, "i2", ok=False, error="tags/list: 500") for job in second[:1]]
    finished += [done(two, job, "i2", tag_errors=2, error="tag x: 404") for job in second[1:]]
    assert not any(finished)
    assert one.scan_pass(run_id).finished_at is None
    assert done(one, rest[1], "i1")  # the last one
    summary = one.scan_pass(run_id)
    assert summary is not None
    assert summary.finished_at is not None
    assert (summary.status, summary.ok, summary.failed, summary.done) == ("partial", 9, 1, 10)
    assert summary.requests == 2 + 10 * 3  # the listing's, plus every job's
    assert summary.totals["tags"] == 10
    assert summary.totals["tag_errors"] == 6
    assert summary.by_instance == {"i1": 6, "i2": 4}
    errors = {e["repository"]: e["error"] for e in summary.errors}
    assert errors["app04"] == "tags/list: 500"
    assert errors["app05"].startswith("2 tag(s) kept without fresh data")
    run = one.account_status("big").last_run  # type: ignore[union-attr]
    assert run is not None
    assert (run.status, run.repositories_ok, run.holder) == ("partial", 9, "i1")


def test_an_expired_claim_is_taken_over_and_the_late_completion_is_not_recorded(
    stores: Callable[[], Store], clock: Clock
) -> None:
    one, two = stores(), stores()
    run_id = a_pass(one, ["a", "b"])
    (mine, _) = claim(one, "i1")
    assert claim(two, "i2") == []  # both leased
    clock.advance(LEASE.total_seconds() + 0.001)
    taken = claim(two, "i2")
    assert sorted(job.repository for job in taken) == ["a", "b"]
    assert all(job.attempts == 2 for job in taken)
    late = one.complete_scan_job(mine, "i1", JobOutcome(ok=True))
    assert (late.recorded, late.finished_run) == (False, False)
    assert [done(two, job, "i2") for job in taken] == [False, True]
    assert one.scan_pass(run_id).by_instance == {"i2": 2}  # type: ignore[union-attr]


def test_renewed_claims_are_kept_and_released_ones_are_claimable_at_once(
    stores: Callable[[], Store], clock: Clock
) -> None:
    one, two = stores(), stores()
    a_pass(one, ["a", "b", "c"])
    held = claim(one, "i1")
    clock.advance(LEASE.total_seconds() - 1)
    assert one.renew_scan_jobs("i1", LEASE) == 3
    clock.advance(2)
    assert claim(two, "i2") == []  # renewed: not expired
    assert one.release_scan_jobs("i1", held[1:]) == 2
    assert [job.repository for job in claim(two, "i2")] == ["b", "c"]
    assert one.release_scan_jobs("i1", held[1:]) == 0  # no longer its own


def test_a_new_pass_replaces_the_jobs_and_keeps_who_scanned_each_repository(
    stores: Callable[[], Store],
) -> None:
    store = stores()
    first = a_pass(store, ["a", "b", "c"])
    for job in claim(store, "i1"):
        done(store, job, "i1")
    second = store.start_run("big", holder="i2")
    store.replace_repositories("big", ["b", "c", "d"])
    assert store.publish_scan_jobs("big", second, ["d", "c", "b", "d"]) == 3  # a name once
    summary = store.scan_pass(second)
    assert summary is not None
    assert (summary.jobs, summary.pending) == (3, 3)
    assert store.scan_pass(first).jobs == 0  # type: ignore[union-attr]
    scans = {scan.repository: scan for scan in store.repository_scans("big")}
    assert set(scans) == {"b", "c", "d"}
    assert (scans["b"].instance, scans["b"].run_id, scans["b"].shared) == ("i1", first, True)
    assert scans["d"].instance is None  # never scanned yet
    claimed = claim(store, "i2")
    assert [job.repository for job in claimed] == ["d", "c", "b"]  # the new listing's order
    assert all((job.run_id, job.attempts) == (second, 1) for job in claimed)


def test_who_scanned_a_repository_on_the_per_account_path_is_the_run_holder(
    stores: Callable[[], Store], clock: Clock
) -> None:
    store = stores()
    store.ensure_account("small", "reg.example")
    store.replace_repositories("small", ["x", "y"])
    runs = []
    for holder, repository in (("i1", "x"), ("i2", "y")):
        runs.append(store.start_run("small", holder=holder))
        clock.advance(1)
        scan = store.begin_repository_scan("small", repository)
        store.finish_repository_scan(scan)
        store.finish_run(runs[-1], requests=1, repositories_ok=1, repositories_failed=0)
        clock.advance(1)
    scans = {scan.repository: scan for scan in store.repository_scans("small")}
    assert (scans["x"].instance, scans["x"].run_id, scans["x"].shared) == ("i1", runs[0], False)
    assert (scans["y"].instance, scans["y"].run_id) == ("i2", runs[1])


def test_an_unfinished_pass_is_found_and_adopted(stores: Callable[[], Store]) -> None:
    store = stores()
    run_id = a_pass(store, ["a", "b"])
    assert store.unfinished_scan_pass("big") == run_id
    assert store.adopt_scan_pass(run_id, "i2")
    assert store.account_status("big").last_run.holder == "i2"  # type: ignore[union-attr]
    for job in claim(store, "i2"):
        done(store, job, "i2")
    assert store.unfinished_scan_pass("big") is None
    assert not store.adopt_scan_pass(run_id, "i3")  # finished: nothing to adopt


def test_an_empty_pass_is_closed_at_once_with_the_listing_error(
    stores: Callable[[], Store],
) -> None:
    store = stores()
    store.ensure_account("big", "reg.example")
    run_id = store.start_run("big", holder="i1")
    store.publish_scan_jobs("big", run_id, [], requests=1, error="catalog: 503")
    summary = store.scan_pass(run_id)
    assert summary is not None
    assert summary.finished_at is not None
    assert (summary.status, summary.requests) == ("failed", 1)
    assert summary.errors == ({"repository": None, "error": "catalog: 503"},)


def test_a_deleted_account_takes_its_pass_and_jobs_with_it(
    stores: Callable[[], Store],
) -> None:
    """Deleted mid-pass (a config edit): nothing of it is claimable any more, no pass of it is
    left to finish or adopt, and a completion arriving late is dropped; other accounts' passes
    go on."""
    one, two = stores(), stores()
    run_id = a_pass(one, ["a", "b", "c", "d"])
    other_run = a_pass(one, ["x"], account="other")
    (mine,) = claim(one, "i1", limit=1)
    assert one.delete_account("big")
    assert two.claimable_scan_accounts(["big", "other"]) == ["other"]
    assert claim(two, "i2") == []
    assert two.unfinished_scan_pass("big") is None
    assert two.scan_pass_finished(run_id) is None  # gone: its holder stops waiting
    assert two.scan_pass(run_id) is None
    late = one.complete_scan_job(mine, "i1", JobOutcome(ok=True))
    assert (late.recorded, late.finished_run) == (False, False)
    assert two.renew_scan_jobs("i1", LEASE) == 0
    (job,) = claim(two, "i2", account="other")
    assert done(two, job, "i2")
    assert two.scan_pass_finished(other_run) is True


def test_concurrent_completions_of_the_last_jobs_close_the_run_exactly_once(
    stores: Callable[[], Store],
) -> None:
    """Each instance completes one of the last two jobs at the same moment: the run's row lock
    serialises them, so exactly one sees no job left (without it, both could see one left)."""
    for _ in range(5):
        one, two = stores(), stores()
        run_id = a_pass(one, ["a", "b"], account="big")
        (job_a,) = claim(one, "i1", limit=1)
        (job_b,) = claim(two, "i2", limit=1)
        barrier = threading.Barrier(2)
        results: list[bool] = []
        threads = [
            threading.Thread(target=_complete, args=(one, job_a, "i1", barrier, results)),
            threading.Thread(target=_complete, args=(two, job_b, "i2", barrier, results)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results) == [False, True]
        assert one.scan_pass(run_id).status == "ok"  # type: ignore[union-attr]
        one.delete_account("big")


def _complete(
    store: Store, job: ScanJob, holder: str, barrier: threading.Barrier, results: list[bool]
) -> None:
    barrier.wait()
    results.append(store.complete_scan_job(job, holder, JobOutcome(ok=True)).finished_run)


def test_scan_requests_are_consumed_by_a_scan_that_starts_after_them(
    stores: Callable[[], Store], clock: Clock
) -> None:
    store = stores()
    store.request_scan("acc", "i2")
    asked = clock.now
    assert store.scan_requests() == {"acc": asked}
    assert not store.consume_scan_request("acc", asked - timedelta(seconds=1))  # started before
    clock.advance(1)
    store.request_scan("acc", "i3")  # asked again: the later time counts
    assert store.scan_requests() == {"acc": clock.now}
    assert not store.consume_scan_request("acc", asked)
    assert store.consume_scan_request("acc", clock.now)
    assert store.scan_requests() == {}
