"""Helpers for the trigger end-to-end tests (test_triggers_*.py): a config file written as a user
would, `regwatch serve` as a subprocess, scans on request, HMAC checks done independently."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import free_port

BIN = Path(sys.executable).parent / "regwatch"
SECRET = "webhook-s3cret"
TOKEN = "notify-t0ken"
NEVER = 86_400  # cacheIntervalSeconds: no scan but the first, unless asked


def write_config(path: Path, accounts: list[dict[str, Any]], regwatch: dict[str, Any]) -> None:
    document = {
        "currentDeployment": "default",
        "deploymentConfigurations": [
            {
                "name": "default",
                "providers": {"dockerRegistry": {"enabled": True, "accounts": accounts}},
            }
        ],
        "regwatch": regwatch,
    }
    path.write_text(json.dumps(document, indent=2))  # JSON is YAML


def eventually(check: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not in time: {what}")
        time.sleep(0.05)


def signed(body: bytes, header: str | None, secret: str = SECRET) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return header is not None and hmac.compare_digest(expected, header)


@dataclass
class Serve:
    process: subprocess.Popen[str]
    base: str
    port: int
    log: Path

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.base + path, data=body, method=method, headers=headers or {}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                raw = resp.read()
                status = int(resp.status)
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        text = raw.decode()
        return status, json.loads(text) if text.startswith(("{", "[")) else text

    def get(self, path: str, **params: Any) -> Any:
        query = "?" + urllib.parse.urlencode(params) if params else ""
        status, body = self.request("GET", path + query)
        assert status == 200, body
        return body

    def events(self, **params: Any) -> list[dict[str, Any]]:
        return list(self.get("/events", **params)["events"])

    def last_run(self, account: str) -> str | None:
        status = self.get(f"/dockerRegistry/accounts/{account}/status")
        run = status.get("lastFinishedRun")
        return run["finishedAt"] if run else None

    def wait_scanned(self, account: str, timeout: float = 30.0) -> None:
        eventually(lambda: self.last_run(account) is not None, timeout, f"{account} scanned")

    def scan(self, account: str, timeout: float = 30.0) -> None:
        """Ask for a scan of the account and wait until it finished."""
        before = self.last_run(account)
        status, body = self.request("POST", f"/dockerRegistry/accounts/{account}/scan")
        assert status == 202, body
        eventually(lambda: self.last_run(account) != before, timeout, f"a new scan of {account}")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


class ServeFactory:
    def __init__(self, env: dict[str, str], tmp_path: Path) -> None:
        self.env = env
        self.tmp_path = tmp_path
        self.started: list[Serve] = []

    def __call__(self, config: Path, port: int | None = None) -> Serve:
        port = port or free_port()
        log = self.tmp_path / f"serve-{len(self.started)}.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                [str(BIN), "-v", "serve", "--config", str(config), "--port", str(port)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )
        running = Serve(process, f"http://127.0.0.1:{port}", port, log)
        self.started.append(running)

        def up() -> bool:
            assert process.poll() is None, log.read_text()
            try:
                return running.request("GET", "/health")[0] == 200
            except OSError:
                return False

        eventually(up, 30, "the service answers /health")
        return running

    def cleanup(self) -> None:
        for running in self.started:
            if running.process.poll() is None:
                running.process.kill()
                running.process.wait(10)


def clean_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGWATCH_")}
    return {**env, "HOME": str(home), "REGWATCH_STORE_URL": f"sqlite:///{tmp_path}/store.db"}


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
