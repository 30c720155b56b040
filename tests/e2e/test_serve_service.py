"""`regwatch serve` as a user runs it: a subprocess, accounts added and deleted with the
`regwatch config provider docker-registry account …` commands while it runs, the real registry,
a 1-second `cacheIntervalSeconds`, and SIGTERM at the end (exit 0, nothing half-written)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from triggers_support import eventually

from harness import FaultProxy, PushedImage, RegistryHandle, fault_rules, free_port, populate
from harness.clouddriver import expected_item
from regwatch.store import open_store

BIN = Path(sys.executable).parent / "regwatch"


@dataclass
class Serve:
    process: subprocess.Popen[str]
    base: str
    log: Path

    def get(self, path: str, **params: Any) -> tuple[int, Any]:
        url = self.base + path + ("?" + urllib.parse.urlencode(params) if params else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def post(self, path: str) -> int:
        request = urllib.request.Request(self.base + path, method="POST")
        with urllib.request.urlopen(request, timeout=10) as resp:
            return int(resp.status)

    def state(self, account: str) -> str | None:
        status, health = self.get("/health")
        assert status == 200
        return health["accounts"].get(account, {}).get("state")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("REGWATCH_")}
    return {**clean, "HOME": str(home), "REGWATCH_STORE_URL": f"sqlite:///{tmp_path}/store.db"}


def regwatch(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the `regwatch` command to the end (60 s at most), its output captured."""
    return subprocess.run(
        [str(BIN), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def cli(env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        result = regwatch(env, *args)
        assert result.returncode == 0, result.stderr
        return result

    return run


@pytest.fixture
def serve(env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., Serve]]:
    started: list[Serve] = []

    def start(*args: str) -> Serve:
        port = free_port()
        log = tmp_path / f"serve-{len(started)}.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                [str(BIN), "serve", "--port", str(port), *args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )
        running = Serve(process, f"http://127.0.0.1:{port}", log)
        started.append(running)

        def up() -> bool:
            assert process.poll() is None, log.read_text()
            try:
                return running.get("/health")[0] == 200
            except OSError:
                return False

        eventually(up, 30, "the service answers /health")
        return running

    yield start
    for running in started:
        if running.process.poll() is None:
            running.process.kill()
            running.process.wait(10)


def add_account(
    cli: Callable[..., subprocess.CompletedProcess[str]], name: str, address: str, *options: str
) -> None:
    """`regwatch config provider docker-registry account add NAME --address ADDRESS …`."""
    cli("config", "provider", "docker-registry", "account", "add", name, "--address", address,
        *options)  # fmt: skip


def test_serve_indexes_serves_reloads_and_stops_cleanly(
    registry_anonymous: RegistryHandle,
    unique_name: str,
    push_images: Callable[..., list[PushedImage]],
    cli: Callable[..., subprocess.CompletedProcess[str]],
    serve: Callable[..., Serve],
    env: dict[str, str],
) -> None:
    app, other = f"{unique_name}app", f"{unique_name}other"
    images = push_images(registry_anonymous, app, ["1.0", "1.1"])
    push_images(registry_anonymous, other, ["9"])
    cli("config", "provider", "docker-registry", "enable")
    add_account(cli, "local", registry_anonymous.url, "--repositories", app,
                "--cache-interval-seconds", "1", "--track-digests")  # fmt: skip
    service = serve()
    eventually(lambda: service.state("local") == "ok", what="the first scan")

    assert service.get("/dockerRegistry/images/find", account="local", repository=app) == (
        200,
        [expected_item(registry_anonymous, "local", i) for i in images],
    )
    assert service.get(
        "/images/tags", provider="dockerRegistry", account="local", repository=app
    ) == (200, ["1.0", "1.1"])
    status, credentials = service.get("/credentials/local")
    assert (status, credentials["registry"], credentials["cacheIntervalSeconds"]) == (
        200,
        registry_anonymous.host,
        1,
    )
    assert credentials["trackDigests"] is True

    newer = push_images(registry_anonymous, app, ["1.2"])[0]  # shows up after one interval

    def has_newer() -> bool:
        found = service.get(
            "/dockerRegistry/images/find", account="local", repository=app, tag="1.2"
        )[1]
        return found == [expected_item(registry_anonymous, "local", newer)]

    eventually(has_newer, 15, "the new tag")

    add_account(cli, "second", registry_anonymous.url, "--repositories", other,
                "--cache-interval-seconds", "1")  # fmt: skip
    eventually(lambda: service.get("/credentials/second")[0] == 200, 15, "the added account")
    eventually(
        lambda: (
            service.get("/dockerRegistry/images/tags", account="second", repository=other)[1]
            == ["9"]
        ),
        15,
        "its tags",
    )
    assert [c["name"] for c in service.get("/credentials")[1]] == ["local", "second"]

    cli("config", "provider", "docker-registry", "account", "delete", "second")
    eventually(lambda: service.get("/credentials/second")[0] == 404, 15, "the deleted account")
    assert service.get("/dockerRegistry/images/find", q=other) == (200, [])

    assert service.post("/dockerRegistry/accounts/local/scan") == 202
    assert service.stop() == 0
    log = service.log.read_text()
    assert "Traceback" not in log
    store = open_store(env["REGWATCH_STORE_URL"])
    try:
        assert store.accounts() == ["local"]  # the deleted account's data went with it
        status_after = store.account_status("local")
        assert status_after is not None
        assert status_after.last_run is not None
        assert status_after.last_run.status != "running"  # every run was closed
    finally:
        store.close()


def test_sigterm_mid_scan_stops_at_a_repository_boundary(
    registry_factory: Callable[..., RegistryHandle],
    serve: Callable[..., Serve],
    cli: Callable[..., subprocess.CompletedProcess[str]],
    env: dict[str, str],
) -> None:
    handle = registry_factory("anonymous")
    populate(handle, 8, 5, prefix="team/")
    with FaultProxy.for_registry(handle) as proxy:
        proxy.add(fault_rules.slow_headers(0.7, path=r"^/v2/.+/tags/list$", times=None))
        add_account(cli, "slow", proxy.url, "--cache-interval-seconds", "3600", "--no-validate")
        service = serve()

        def some_done() -> bool:
            return service.get("/dockerRegistry/accounts/slow/status")[1]["repositories"] >= 8 and (
                service.get("/dockerRegistry/images/find", account="slow")[1] != []
            )

        eventually(some_done, 30, "the first repositories")
        started = time.monotonic()
        assert service.stop() == 0
        assert time.monotonic() - started < 10  # it did not wait for the whole account
    assert "Traceback" not in service.log.read_text()
    store = open_store(env["REGWATCH_STORE_URL"])
    try:
        status = store.account_status("slow")
        assert status is not None
        assert status.last_run is not None
        run = status.last_run
        assert run.status == "partial"
        assert any("stopped" in str(e["error"]) for e in run.errors)
        complete = 0
        for repository in store.repositories("slow"):  # each one whole, or not at all
            tags = store.known_tags("slow", repository.name)
            if repository.status == "ok":
                assert sorted(tags) == [f"v{i:04d}" for i in range(5)]
                complete += 1
            else:
                assert (repository.status, tags) == ("new", {})
        assert 1 <= complete < 8
    finally:
        store.close()


def test_a_registry_that_is_down_keeps_health_up_and_its_data_served(
    registry_factory: Callable[..., RegistryHandle],
    push_images: Callable[..., list[PushedImage]],
    serve: Callable[..., Serve],
    cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    handle = registry_factory("anonymous")
    push_images(handle, "team/app", ["1.0"])
    add_account(cli, "flaky", handle.url, "--cache-interval-seconds", "1",
                "--client-timeout-millis", "2000")  # fmt: skip
    service = serve()
    eventually(lambda: service.state("flaky") == "ok", what="the first scan")
    assert handle.process is not None
    handle.process.down()
    eventually(lambda: service.state("flaky") == "failing", 30, "the failure")
    status, health = service.get("/health")
    assert (status, health["status"]) == (200, "UP")
    assert service.get("/dockerRegistry/images/tags", account="flaky", repository="team/app") == (
        200,
        ["1.0"],
    )
    assert service.stop() == 0


def test_start_up_errors_are_one_line_and_exit_1(env: dict[str, str], tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.write_text("currentDeployment: [unclosed\n")
    result = regwatch(env, "serve", "--config", str(broken))
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ")
    assert "not valid YAML" in result.stderr
    assert "Traceback" not in result.stderr

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = regwatch(env, "serve", "--port", str(port))
    assert result.returncode == 1
    assert f"Error: cannot listen on 127.0.0.1:{port}" in result.stderr
