"""A `regwatch scan` killed with SIGKILL mid-way leaves a consistent store, and the next scan
completes it (and closes the dead run); Ctrl-C stops it gracefully at repository boundaries."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from harness import FaultProxy, RegistryHandle, fault_rules, populate
from regwatch.store import Store, open_store
from regwatch.store.schema import scan_runs

REPOS, TAGS = 24, 8
ACCOUNT = "victim"


def write_config(path: Path, address: str, store_url: str) -> Path:
    account = {"name": ACCOUNT, "address": address, "trackDigests": True, "cacheThreads": 2}
    document = {
        "currentDeployment": "default",
        "deploymentConfigurations": [
            {"name": "default",
             "providers": {"dockerRegistry": {"enabled": True, "accounts": [account]}}},
        ],
        "regwatch": {"store": {"url": store_url}},
    }  # fmt: skip
    path.write_text(json.dumps(document))
    return path


SlowRegistry = Callable[[tuple[int, int, str], float], tuple[dict[str, dict[str, str]], FaultProxy]]


@pytest.fixture
def slow_registry(
    registry_factory: Callable[..., RegistryHandle],
    fault_proxy_factory: Callable[..., FaultProxy],
) -> SlowRegistry:
    """`slow_registry((repositories, tags each, name prefix), tags_list_delay)`: a private
    registry so populated, behind a proxy that delays every tags/list; what was pushed
    (repository -> tag -> digest), and the proxy."""

    def make(
        shape: tuple[int, int, str], tags_list_delay: float
    ) -> tuple[dict[str, dict[str, str]], FaultProxy]:
        repos, tags, prefix = shape
        handle = registry_factory()
        expected: dict[str, dict[str, str]] = {}
        for image in populate(handle, repos, tags, prefix=prefix):
            expected.setdefault(image.repository, {})[image.tag] = image.digest
        proxy = fault_proxy_factory(handle)
        proxy.add(fault_rules.slow_headers(tags_list_delay, path=r"/tags/list$", times=None))
        return expected, proxy

    return make


def regwatch(*args: str) -> list[str]:
    return [sys.executable, "-m", "regwatch", *args]


def clean_env() -> dict[str, str]:
    return {
        k: v for k, v in os.environ.items() if k not in ("REGWATCH_STORE_URL", "REGWATCH_CONFIG")
    }


def wait_for_merged_repositories(store: Store, count: int, process: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "the scan finished before it could be killed"
        done = sum(1 for r in store.repositories(ACCOUNT) if r.status == "ok")
        if done >= count:
            return done
        time.sleep(0.02)
    raise AssertionError("the scan made no progress")


def assert_consistent(store: Store, expected: dict[str, dict[str, str]]) -> int:
    """Every repository is either fully merged (exactly the registry's tags) or untouched."""
    complete = total = 0
    for repository in store.repositories(ACCOUNT):
        tags = store.known_tags(ACCOUNT, repository.name)
        assert repository.tag_count == len(tags)
        total += len(tags)
        if repository.status == "ok":
            assert tags == expected[repository.name]
            complete += 1
        else:
            assert (repository.status, tags) == ("new", {})
    assert len(store.find_images(account=ACCOUNT)) == total
    return complete


def run_record(store: Store, run_id: int) -> tuple[str, list[dict[str, object]]]:
    with store.engines.reader.connect() as conn:
        row = conn.execute(select(scan_runs).where(scan_runs.c.id == run_id)).one()
    return row.status, list(row.errors or [])


def test_sigkill_mid_scan_leaves_a_consistent_store_that_the_next_scan_completes(
    slow_registry: SlowRegistry, store_url: str, tmp_path: Path
) -> None:
    expected, proxy = slow_registry((REPOS, TAGS, "kill/"), 0.15)
    config = write_config(tmp_path / "config", proxy.url, store_url)
    store = open_store(store_url)

    process = subprocess.Popen(
        regwatch("scan", "--config", str(config)),
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_merged_repositories(store, 3, process)
        time.sleep(0.1)  # well inside the next repositories' tags/list and HEADs
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL

    complete = assert_consistent(store, expected)
    assert 3 <= complete < REPOS
    status = store.account_status(ACCOUNT)
    assert status is not None
    assert status.last_run is not None
    killed_run = status.last_run
    assert killed_run.status == "running"

    proxy.clear()
    rerun = subprocess.run(
        regwatch("scan", "--json", "--config", str(config)),
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert rerun.returncode == 0, rerun.stderr
    [record] = json.loads(rerun.stdout)
    assert (record["status"], record["repositoriesOk"]) == ("ok", REPOS)
    assert assert_consistent(store, expected) == REPOS
    assert store.events(account=ACCOUNT) == []  # the first full listing is still a baseline
    closed = store.account_status(ACCOUNT)
    assert closed is not None
    assert closed.last_finished_run is not None
    assert closed.last_finished_run.status == "ok"
    assert closed.last_finished_run.id != killed_run.id
    status_of_killed, errors = run_record(store, killed_run.id)
    assert status_of_killed == "failed"  # closed by the next `regwatch scan` on this host
    assert "abandoned" in str(errors[0]["error"])
    store.close()


def test_ctrl_c_stops_after_the_repositories_in_progress(
    slow_registry: SlowRegistry, store_url: str, tmp_path: Path
) -> None:
    expected, proxy = slow_registry((12, 3, "int/"), 0.2)
    config = write_config(tmp_path / "config", proxy.url, store_url)
    store = open_store(store_url)

    process = subprocess.Popen(
        regwatch("scan", "--json", "--config", str(config)),
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_merged_repositories(store, 2, process)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)

    assert process.returncode == 130, stderr
    assert "Stopping after the repositories in progress" in stderr
    [record] = json.loads(stdout)
    assert record["stopped"] is True
    assert record["status"] == "partial"
    assert 2 <= record["repositoriesOk"] < 12
    assert assert_consistent(store, expected) == record["repositoriesOk"]
    status = store.account_status(ACCOUNT)
    assert status is not None
    assert status.last_run is not None
    assert status.last_run.status == "partial"  # recorded, not left "running"
    store.close()
