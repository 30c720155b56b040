"""Shared passes and scan-now forwarding with three `regwatch serve` on one PostgreSQL (issue 7).

An account with more repositories than REGWATCH_SHARE_REPOSITORIES_ABOVE is scanned one
repository per job: the holder of the account's lease publishes a pass, every instance claims
repositories. Counted at the registry (the fault proxy's request log): each repository listed
once per pass, passes once per interval across the three; the repositories of a pass are spread
over several instances; an instance killed mid-pass has its claimed repositories taken over
within one lease, and when it held the account its pass is adopted (not replaced) by another;
a catalog account's first pass (nothing stored yet) is listed once and shared too;
"scan now" on an instance that does not hold the account is scanned by the one that does.
Reuses the fixtures and helpers of test_instances_scale.py.
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import test_instances_scale as scale
from test_instances_scale import INTERVAL, LEASE, runs, tags_list_counts
from triggers_support import NEVER, Serve, ServeFactory, eventually, write_config

from harness import FaultProxy, RegistryHandle, fault_rules, push_images
from harness.postgres import PostgresServer

# the fixtures of the three-instance tests: one PostgreSQL database, serve processes on it, and
# the fault proxy in front of the registry that records the requests
database, serve, proxy = scale.database, scale.serve, scale.proxy

SHARE_ABOVE = 4
SLOW = 0.3  # seconds added to every tags/list: a pass outlasts one instance's polling period

Database = tuple[PostgresServer, str]


def big_account(
    path: Path, proxy: FaultProxy, repositories: list[str], interval: int = INTERVAL
) -> None:
    account = {"name": "big", "address": proxy.url, "repositories": repositories,
               "cacheIntervalSeconds": interval}  # fmt: skip
    write_config(path, [account], {})


def sharing(serve: ServeFactory, above: int = SHARE_ABOVE) -> ServeFactory:
    serve.env["REGWATCH_SHARE_REPOSITORIES_ABOVE"] = str(above)
    return serve


def fetch(database: Database, query: str) -> list[Any]:
    """The rows of one query on the database."""
    server, name = database
    with server.connect(name) as conn:
        return conn.execute(query).fetchall()


def jobs(database: Database) -> list[tuple[str, str, str | None, int | None, int]]:
    """(repository, status, holder, scanned_run, attempts) of every job."""
    rows = fetch(
        database,
        "SELECT repository, status, holder, scanned_run, attempts FROM scan_jobs ORDER BY position",
    )
    return [tuple(row) for row in rows]


def finished_passes(database: Database) -> list[tuple[int, float, float]]:
    """(run id, started, finished in epoch seconds) of the account big's finished runs."""
    rows = fetch(
        database,
        "SELECT id, started_at, finished_at FROM scan_runs WHERE account = 'big' "
        "AND finished_at IS NOT NULL ORDER BY id",
    )
    return [(int(run_id), started / 1000, finished / 1000) for run_id, started, finished in rows]


def big_runs(database: Database) -> list[tuple[int, str, str, float, float | None]]:
    """(id, holder, status, started, finished in epoch seconds) of the account big's runs."""
    rows = fetch(
        database,
        "SELECT id, holder, status, started_at, finished_at FROM scan_runs "
        "WHERE account = 'big' ORDER BY id",
    )
    return [(int(run_id), holder, status, started / 1000, None if end is None else end / 1000)
            for run_id, holder, status, started, end in rows]  # fmt: skip


@dataclass
class Cluster:
    """The setting of these tests: the registry behind the recording proxy, one database, and
    `regwatch serve` processes sharing passes above SHARE_ABOVE, all reading `config`."""

    registry: RegistryHandle
    unique_name: str
    config: Path
    proxy: FaultProxy
    serve: ServeFactory
    database: Database

    def pushed(self, count: int) -> list[str]:
        repositories = [f"{self.unique_name}svc{i:02d}" for i in range(count)]
        for repository in repositories:
            push_images(self.registry, repository, ["1.0"])
        return repositories

    def start(self) -> list[Serve]:
        """Three sharing instances on `config`."""
        return [sharing(self.serve)(self.config) for _ in range(3)]

    def start_big(self, repositories: list[str], interval: int = INTERVAL) -> list[Serve]:
        """Three sharing instances, once `config` holds the account big (`repositories`)."""
        big_account(self.config, self.proxy, repositories, interval)
        return self.start()

    def scanned_then_slowed(self, count: int, slow: float) -> dict[int, Serve]:
        """Three instances (by pid) on the account big of `count` repositories, once it was
        scanned; from then on a tags/list takes `slow` s more: a pass is in progress a while."""
        instances = {running.process.pid: running for running in self.start_big(self.pushed(count))}
        next(iter(instances.values())).wait_scanned("big")
        self.proxy.add(fault_rules.slow_headers(slow, path="/tags/list", times=None))
        return instances


@pytest.fixture
def cluster(
    registry_anonymous: RegistryHandle,
    unique_name: str,
    tmp_path: Path,
    proxy: FaultProxy,
    serve: ServeFactory,
    database: Database,
) -> Cluster:
    return Cluster(registry_anonymous, unique_name, tmp_path / "config", proxy, serve, database)


def kill_holder(instances: dict[int, Serve], holder: str) -> float:
    """Kill (SIGKILL) the instance `holder` names, dropped from `instances`; when, in epoch s."""
    victim = next(pid for pid in instances if holder.endswith(f":{pid}"))
    instances.pop(victim).kill()
    return time.time()


def test_a_large_account_is_scanned_once_per_interval_spread_over_the_instances(
    cluster: Cluster,
) -> None:
    proxy, database = cluster.proxy, cluster.database
    repositories = cluster.pushed(12)
    proxy.add(fault_rules.slow_headers(SLOW, path="/tags/list", times=None))
    instances = cluster.start_big(repositories)
    instances[0].wait_scanned("big")

    # count at the registry over exactly three passes: from just after one finished (the next
    # starts an interval later) to just after the third next one finished
    eventually(lambda: bool(finished_passes(database)), 30, "a finished pass")
    first = finished_passes(database)[-1][0]
    proxy.clear_requests()
    scanners: dict[int, set[str]] = {}  # pass -> instances that scanned its repositories

    def three_more() -> bool:
        for _, status, holder, scanned_run, _ in jobs(database):
            if status == "done" and scanned_run is not None and holder is not None:
                scanners.setdefault(scanned_run, set()).add(holder)
        return len([p for p in finished_passes(database) if p[0] > first]) >= 3

    eventually(three_more, 12 * INTERVAL, "three more passes")
    counts = tags_list_counts(proxy, repositories)
    passes = [p for p in finished_passes(database) if p[0] > first][:3]
    # each repository listed once per pass (three instances each on its own: three times)
    assert counts == [3] * len(repositories), counts
    # a pass once per interval across the three: a pass starts an interval after the last ended
    gaps = [later[1] - earlier[2] for earlier, later in itertools.pairwise(passes)]
    assert all(gap >= 0.85 * INTERVAL for gap in gaps), gaps
    assert any(len(holders) >= 2 for holders in scanners.values()), scanners

    status = instances[1].get("/dockerRegistry/accounts/big/status")
    by_repository = {scan["repository"]: scan for scan in status["repositoryScans"]}
    assert set(by_repository) == set(repositories)
    assert all(scan["shared"] and scan["instance"] for scan in by_repository.values())
    shared = status["sharedPass"]
    assert shared["repositories"] == 12
    assert shared["runId"] == status["lastRun"]["runId"]
    assert shared["instance"] == status["lastRun"]["instance"]


def test_repositories_claimed_by_an_instance_killed_mid_pass_are_taken_over_within_a_lease(
    cluster: Cluster,
) -> None:
    database = cluster.database
    instances = cluster.scanned_then_slowed(10, 1.5)

    def claimed() -> dict[str, str]:
        return {repo: holder for repo, status, holder, _, _ in jobs(database)
                if status == "claimed" and holder}  # fmt: skip

    eventually(lambda: len(set(claimed().values())) >= 2, 30, "a pass claimed by two instances")
    victim_holder = next(iter(claimed().values()))
    killed_at = kill_holder(instances, victim_holder)
    orphans = {repo for repo, holder in claimed().items() if holder == victim_holder}
    assert orphans

    taken: dict[str, float] = {}

    def all_taken() -> bool:
        for repo, _, holder, _, attempts in jobs(database):
            if repo in orphans and repo not in taken and holder != victim_holder and attempts:
                taken[repo] = time.time()
        return set(taken) == orphans

    eventually(all_taken, 3 * LEASE, "another instance claims the victim's repositories")
    assert max(taken.values()) - killed_at <= LEASE + 1.0, (taken, killed_at)

    def pass_finished() -> bool:
        return not any(status != "done" for _, status, _, _, _ in jobs(database))

    eventually(pass_finished, 30, "the pass finishes without the victim")
    survivor = next(iter(instances.values()))
    status = survivor.get("/dockerRegistry/accounts/big/status")
    assert victim_holder not in {scan["instance"] for scan in status["repositoryScans"]
                                 if scan["repository"] in orphans}  # fmt: skip


def test_the_pass_of_a_holder_killed_mid_pass_is_adopted_and_finished_by_another(
    cluster: Cluster,
) -> None:
    database = cluster.database
    instances = cluster.scanned_then_slowed(8, 1.0)

    def newest() -> tuple[int, str, str, float, float | None]:
        return big_runs(database)[-1]

    eventually(lambda: newest()[2] == "running", 30, "a pass in progress")
    (run_id, victim_holder, _, _, _) = newest()
    killed_at = kill_holder(instances, victim_holder)

    def the_pass() -> tuple[int, str, str, float, float | None]:
        return next(run for run in big_runs(database) if run[0] == run_id)

    eventually(lambda: the_pass()[1] != victim_holder, 3 * LEASE, "another adopts the pass")
    assert time.time() - killed_at <= LEASE + 2.0
    eventually(lambda: the_pass()[4] is not None, 30, "the pass finishes")
    (_, holder, status, _, finished) = the_pass()
    assert status == "ok"
    assert any(holder.endswith(f":{pid}") for pid in instances)  # a survivor
    # adopted, not replaced: no other pass of the account started before it finished
    assert all(run[3] >= (finished or 0) for run in big_runs(database) if run[0] > run_id)


def holder_and_other(instances: list[Serve], database: Database) -> tuple[Serve, Serve, str]:
    """The instance holding the account `big`'s lease (after its first scan), another one,
    and the holder's id."""
    holder_id = next(holder for account, holder, _, _ in runs(database) if account == "big")
    (holder,) = [i for i in instances if holder_id.endswith(f":{i.process.pid}")]
    other = next(i for i in instances if i is not holder)
    return holder, other, holder_id


@pytest.mark.parametrize("count", [2, 6], ids=["whole", "shared"])
def test_scan_now_on_an_instance_that_does_not_hold_the_account_is_scanned_by_the_holder(
    cluster: Cluster, count: int
) -> None:
    database = cluster.database
    repositories = cluster.pushed(count)
    instances = cluster.start_big(repositories, interval=NEVER)  # the first scan only, unless asked
    instances[0].wait_scanned("big")
    holder, other, holder_id = holder_and_other(instances, database)
    before = len(runs(database))

    asked_at = time.time()
    code, body = other.request("POST", "/dockerRegistry/accounts/big/scan")
    assert code == 202, body
    assert body["queued"] is True
    assert body["holder"] == holder_id
    assert body["instance"] != holder_id

    def scanned_again() -> bool:
        return len(runs(database)) > before and runs(database)[-1][2] != "running"

    eventually(scanned_again, 5.0 + 10, "the holder scans the account")  # retry_in is 5 s
    account, scanned_by, status, started = runs(database)[-1]
    assert (account, scanned_by, status) == ("big", holder_id, "ok")
    assert started - asked_at <= 5.0 + 1.0
    assert len(runs(database)) == before + 1  # scanned once, by the holder only
    server, name = database
    with server.connect(name) as conn:
        assert conn.execute("SELECT count(*) FROM scan_requests").fetchone() == (0,)
    code, body = holder.request("POST", "/dockerRegistry/accounts/big/scan")
    assert code == 202, body
    assert (body["queued"], body["holder"]) == (False, holder_id)


def test_the_first_pass_of_a_catalog_account_is_listed_once_and_spread_over_the_instances(
    cluster: Cluster,
) -> None:
    """Nothing stored about the account yet: its holder decides on the pass's own catalog
    listing (12 > SHARE_ABOVE) and publishes it as jobs; one run record, one listing, every
    repository scanned once, by more than one instance."""
    proxy, database = cluster.proxy, cluster.database
    repositories = cluster.pushed(12)
    proxy.add(fault_rules.slow_headers(1.0, path="/tags/list", times=None))
    write_config(cluster.config, [], {})
    instances = cluster.start()  # all up before the account exists
    account = {"name": "big", "address": proxy.url, "cacheIntervalSeconds": NEVER,
               "repositoriesRegex": f"{re.escape(cluster.unique_name)}svc.*"}  # fmt: skip
    write_config(cluster.config, [account], {})

    eventually(lambda: bool(finished_passes(database)), 60, "the first pass finishes")
    ((run_id, holder, status, _, _),) = big_runs(database)
    assert status == "ok"
    done = jobs(database)
    assert sorted(repo for repo, _, _, _, _ in done) == sorted(repositories)
    assert all(state == "done" and run == run_id for _, state, _, run, _ in done), done
    assert len({by for _, _, by, _, _ in done}) >= 2, done
    assert tags_list_counts(proxy, repositories) == [1] * len(repositories)
    catalog = [r.path_qs for r in proxy.requests if r.path_qs.startswith("/v2/_catalog")]
    first_pages = [path for path in catalog if "last=" not in path]
    assert len(first_pages) == 1, first_pages  # listed once, by the holder
    assert any(holder.endswith(f":{i.process.pid}") for i in instances)
