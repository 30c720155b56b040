"""Flat memory: `scan_account` over one repository of 100,000 tags (served page by page by a
synthetic registry) stays under 150 MB of peak RSS, on the first scan and on a rescan.

The peak is the child's VmHWM, not getrusage's ru_maxrss: Linux carries the parent's peak over the
exec into ru_maxrss, so a pytest process grown past 150 MB made every child "peak" that high."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.peak_memory import PEAK_MB_SOURCE

SERVER = Path(__file__).with_name("synthetic_registry.py")
TAGS = 100_000

SCAN = (
    PEAK_MB_SOURCE
    + r"""
import asyncio, sys
from regwatch.config.model import DockerRegistryAccount
from regwatch.indexer import scan_account
from regwatch.registry import Transport
from regwatch.store import AsyncStore, open_store

async def main():
    store = AsyncStore(open_store(sys.argv[1]))
    account = DockerRegistryAccount.model_validate(
        {"name": "big", "address": sys.argv[2], "paginateSize": 1000})
    before = peak_mb()
    async with Transport() as transport:
        runs = [await scan_account(account, store=store, transport=transport) for _ in range(2)]
    await store.aclose()
    first, second = runs
    print(first.status, first.tags, first.requests, second.status, second.tags_added,
          second.requests, round(before), round(peak_mb()))

asyncio.run(main())
"""
)


@pytest.fixture
def synthetic_registry() -> Iterator[str]:
    server = subprocess.Popen(
        [sys.executable, str(SERVER), "--tags", str(TAGS), "--repository", "big/repo"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.slow
def test_a_100k_tag_repository_scans_in_flat_memory(
    synthetic_registry: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCAN, f"sqlite:///{tmp_path}/big.db", synthetic_registry],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    fields = result.stdout.split()
    assert fields[0] == "ok"
    assert fields[3] == "ok"
    first_tags, first_requests, added_again, second_requests, before_mb, peak_mb = map(
        int, fields[1:3] + fields[4:]
    )
    assert first_tags == TAGS
    assert added_again == 0
    # 100 tags/list pages, one catalog page, the API version probe; nothing per tag
    assert first_requests == second_requests == TAGS // 1000 + 2
    assert peak_mb < 150, f"peak RSS {peak_mb} MB (after start-up: {before_mb} MB)"
