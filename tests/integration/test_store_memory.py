"""Flat memory: a 100,000-tag repository streamed page by page through a scan, twice.

The peak is the child's VmHWM (its own address space's high-water mark), not getrusage's
ru_maxrss: subprocess starts children with vfork, and Linux carries the parent's peak RSS over
the exec into ru_maxrss, so a pytest process grown to 230 MB made the child "peak" at 230 MB.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.peak_memory import PEAK_MB_SOURCE

SCRIPT = (
    PEAK_MB_SOURCE
    + r"""
import sys
from regwatch.store import DIGEST_CHANGED, StagedTag, open_store

store = open_store(sys.argv[1])
store.ensure_account("big", "reg.example")
store.replace_repositories("big", ["huge/repo"])
before = peak_mb()
for rescan in range(2):
    scan = store.begin_repository_scan("big", "huge/repo")
    for page_start in range(0, 100_000, 1_000):
        page = [StagedTag(f"build-{i}", digest=f"sha256:{i + rescan:064x}",
                          labels={"commitId": f"{i:040x}", "branch": "main"},
                          event=DIGEST_CHANGED if rescan else None)
                for i in range(page_start, page_start + 1_000)]
        store.stage_tags(scan, page)
    outcome = store.finish_repository_scan(scan, sinks=["echo"])
print(outcome.tags, outcome.changed, outcome.events, round(before), round(peak_mb()))
"""
)


@pytest.mark.slow
def test_a_100k_tag_repository_stays_under_150_mb(store_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, store_url],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    tags, changed, events, before_mb, peak_mb = map(int, result.stdout.split())
    assert (tags, changed, events) == (100_000, 100_000, 100_000)
    assert peak_mb < 150, f"peak RSS {peak_mb} MB (after start-up: {before_mb} MB)"
