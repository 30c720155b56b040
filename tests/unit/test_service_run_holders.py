"""Which "running" scan runs a process may close as abandoned (regwatch.service.instances):
only this host's, and only when their process is gone."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime

from regwatch.service.instances import dead_holder_pid, failed_run
from regwatch.store.records import ScanRun

HOST = socket.gethostname()


def exited_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_run_of_a_process_of_this_host_that_is_gone_is_abandoned() -> None:
    pid = exited_pid()
    assert dead_holder_pid(f"cli:{HOST}:{pid}", "cli:") == str(pid)


def test_runs_of_live_processes_other_hosts_and_other_kinds_are_left_alone() -> None:
    pid = exited_pid()
    assert dead_holder_pid(f"cli:{HOST}:{os.getpid()}", "cli:") is None  # alive
    assert dead_holder_pid(f"cli:{HOST}x:{pid}", "cli:") is None  # another host
    assert dead_holder_pid(f"serve:{HOST}:{pid}", "cli:") is None  # a service's run
    assert dead_holder_pid(f"cli:{HOST}:not-a-pid", "cli:") is None
    assert dead_holder_pid(None, "cli:") is None


def test_a_failed_run_keeps_its_counts() -> None:
    run = ScanRun(
        id=7, account="hub", started_at=datetime(2024, 5, 1, tzinfo=UTC), finished_at=None,
        status="running", requests=12, repositories_ok=3, repositories_failed=1, errors=(),
        holder="cli:h:1",
    )  # fmt: skip
    assert failed_run(run, "abandoned") == {
        "requests": 12,
        "repositories_ok": 3,
        "repositories_failed": 1,
        "status": "failed",
        "errors": [{"repository": None, "error": "abandoned"}],
    }
