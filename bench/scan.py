"""Indexing benchmark (issue 4): regwatch's scan against its ceiling, a peer, and its targets.

Starts an anonymous test registry (tests/harness) holding 200 repositories x 50 tags, then prints:

1. a full scan with digests (catalog, every tags/list, a manifest HEAD per tag, everything
   stored): wall time and requests; the same requests made by a bare aiohttp loop with no logic
   and no store (the ceiling); the ratio (target <= 1.5);
2. a full tags-only scan against `skopeo list-tags` run once per repository (target: regwatch
   >= 10x faster), with how long the store's writer thread was busy and the CPU time regwatch
   and the registry used during the scan (on a machine of N cores, their sum / N is a floor);
3. the request count of an unchanged rescan, seen by a fault proxy (target: one tags/list per
   repository, nothing per tag);
4. the peak RSS of a subprocess scanning one repository of 100,000 tags, served page by page by a
   synthetic registry (tests/integration/synthetic_registry.py), since pushing 100k real tags
   takes too long and distribution 2.8 does not paginate tags/list (target < 150 MB).

    .venv/bin/python bench/scan.py [--repos 200] [--tags 50] [--concurrency 16] [--rounds 3]
                                   [--only-tags]

skopeo comes from Debian (`apt-get install -y skopeo`); set BENCH_INSTALL_SKOPEO=1 to let this
script install it when it is missing. Timed figures are the best of `--rounds` runs; regwatch
and what it is compared with (the bare loop in 1., skopeo in 2.) run alternately, so that the
load of a shared machine weighs on both.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the test harness: `import harness`

from harness import FaultProxy, RegistryProcess, populate  # noqa: E402
from harness.peak_memory import PEAK_MB_SOURCE  # noqa: E402
from regwatch.config.model import DockerRegistryAccount  # noqa: E402
from regwatch.indexer import ScanRun, scan_account  # noqa: E402
from regwatch.models import MANIFEST_ACCEPT  # noqa: E402
from regwatch.registry import RegistryClient, Transport  # noqa: E402
from regwatch.store import AsyncStore, Store, open_store  # noqa: E402

ACCEPT = ", ".join(MANIFEST_ACCEPT)
PREFIX = "bench/"
SYNTHETIC = ROOT / "tests" / "integration" / "synthetic_registry.py"
BIG_TAGS = 100_000
CLIENT_SETUP: list[float] = []  # seconds to make each scan's RegistryClient (outside its timing)
REGISTRY_PID: list[int] = []  # the registry process, for its CPU time
# The child reports its own peak RSS: VmHWM, not ru_maxrss (see tests/harness/peak_memory.py).
RSS_SCRIPT = (
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
    async with Transport() as transport:
        run = await scan_account(account, store=store, transport=transport)
    await store.aclose()
    print(run.status, run.tags, run.requests, round(run.seconds, 1), round(peak_mb()))

asyncio.run(main())
"""
)


def account(address: str, concurrency: int, **flags: Any) -> DockerRegistryAccount:
    return DockerRegistryAccount.model_validate(
        {"name": "bench", "address": address, "cacheThreads": concurrency, **flags}
    )


class TimedStore(AsyncStore):
    """An AsyncStore that adds up the time spent inside Store methods (SQL and row handling),
    and how long its single writer thread was busy (wall clock, and CPU of that thread)."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.seconds = 0.0
        self.writer_busy = 0.0
        self.writer_cpu = 0.0
        self.process_cpu = 0.0  # this process, every thread, during the scan
        self.registry_cpu = 0.0  # the registry process during the scan

    def _drain(self) -> None:
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            super()._drain()
        finally:
            self.writer_busy += time.perf_counter() - started
            self.writer_cpu += time.thread_time() - cpu

    async def call(self, method: Any, /, *args: Any, **kwargs: Any) -> Any:
        @functools.wraps(method)  # keeps the writer mark, so writes still go to the writer
        def timed(*a: Any, **k: Any) -> Any:
            started = time.perf_counter()
            try:
                return method(*a, **k)
            finally:
                self.seconds += time.perf_counter() - started

        return await super().call(timed, *args, **kwargs)


async def regwatch_scan(
    address: str, concurrency: int, **flags: Any
) -> tuple[float, tuple[ScanRun, TimedStore]]:
    """One full scan into a fresh SQLite store; (seconds, (run, the store's timings)).

    The account's RegistryClient is made before the clock starts, as the bare loop's session
    is: making one builds its Transport's SSL context (~20 ms: Python's default context loads
    the system CA store, even for an http:// registry), once per process; the service keeps
    its clients from run to run. `client_setup_seconds` reports that cost."""
    bench_account = account(address, concurrency, **flags)
    with tempfile.TemporaryDirectory() as scratch:
        store = TimedStore(open_store(f"sqlite:///{scratch}/bench.db"))
        async with Transport() as transport:
            started = time.perf_counter()
            client = RegistryClient(
                bench_account.endpoint(), bench_account.credentials(), transport=transport
            )
            CLIENT_SETUP.append(time.perf_counter() - started)
            cpu, registry = time.process_time(), registry_cpu()
            started = time.perf_counter()
            run = await scan_account(bench_account, store=store, transport=transport, client=client)
            seconds = time.perf_counter() - started
            store.process_cpu = time.process_time() - cpu
            store.registry_cpu = registry_cpu() - registry
        await store.aclose()
    assert run.status == "ok", run.to_dict()
    return seconds, (run, store)


def registry_cpu() -> float:
    """CPU seconds the registry process used so far (user + system), 0 when unknown."""
    if not REGISTRY_PID:
        return 0.0
    fields = Path(f"/proc/{REGISTRY_PID[0]}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def bare_scan(address: str, concurrency: int, *, heads: bool = True) -> tuple[float, int]:
    """The same requests with a plain aiohttp session: no auth logic, no checks, no store
    (`heads=False`: those of a tags-only scan, no manifest HEADs)."""
    semaphore = asyncio.Semaphore(concurrency)
    requests = 0
    async with aiohttp.ClientSession() as session:

        async def get_json(url: str) -> tuple[Any, str | None]:
            nonlocal requests
            async with semaphore, session.get(url) as resp:
                requests += 1
                following = resp.links.get("next")  # its url is resolved against the request
                link = following.get("url") if following else None
                return json.loads(await resp.read()), str(link) if link else None

        async def head(repo: str, tag: str) -> None:
            nonlocal requests
            url = f"{address}/v2/{repo}/manifests/{tag}"
            async with semaphore, session.head(url, headers={"Accept": ACCEPT}) as resp:
                requests += 1
                assert resp.headers["Docker-Content-Digest"]

        async def repository(repo: str) -> None:
            data, _ = await get_json(f"{address}/v2/{repo}/tags/list?n=100")
            if heads:
                await asyncio.gather(*(head(repo, tag) for tag in data["tags"]))

        started = time.perf_counter()
        await get_json(f"{address}/v2/")
        repos: list[str] = []
        url: str | None = f"{address}/v2/_catalog?n=100"
        while url:
            data, link = await get_json(url)
            repos += data["repositories"]
            url = link
        await asyncio.gather(*(repository(repo) for repo in repos))
        return time.perf_counter() - started, requests


Timed = Callable[[], Awaitable[tuple[float, Any]]]


async def best(rounds: int, work: Timed) -> tuple[float, Any]:
    results = [await work() for _ in range(rounds)]
    return min(results, key=lambda r: r[0])


async def best_of_pairs(
    rounds: int, first: Timed, second: Timed
) -> tuple[tuple[float, Any], tuple[float, Any]]:
    """The best of each, run alternately (first, second, first, …): the machine is shared, and
    a load that comes and goes then weighs on both rather than on whichever ran during it."""
    ones: list[tuple[float, Any]] = []
    twos: list[tuple[float, Any]] = []
    for _ in range(rounds):
        ones.append(await first())
        twos.append(await second())
    return min(ones, key=lambda r: r[0]), min(twos, key=lambda r: r[0])


def find_skopeo() -> str | None:
    found = shutil.which("skopeo")
    if found or os.environ.get("BENCH_INSTALL_SKOPEO") != "1":
        return found
    print("installing skopeo (BENCH_INSTALL_SKOPEO=1): apt-get install -y skopeo", flush=True)
    subprocess.run(["apt-get", "install", "-y", "skopeo"], check=True, capture_output=True)
    return shutil.which("skopeo")


def skopeo_list_tags(skopeo: str, host: str, repos: list[str]) -> float:
    started = time.perf_counter()
    for repo in repos:
        subprocess.run([skopeo, "list-tags", "--tls-verify=false", f"docker://{host}/{repo}"],
                       check=True, capture_output=True)  # fmt: skip
    return time.perf_counter() - started


async def rescan_requests(handle_url: str, upstream: Any, concurrency: int) -> dict[str, int]:
    """Scan, then rescan the unchanged registry through a counting proxy."""
    with tempfile.TemporaryDirectory() as scratch, FaultProxy.for_registry(upstream) as proxy:
        store = AsyncStore(open_store(f"sqlite:///{scratch}/bench.db"))
        bench = account(proxy.url, concurrency)
        async with Transport() as transport:
            await scan_account(bench, store=store, transport=transport)
            proxy.clear_requests()
            run = await scan_account(bench, store=store, transport=transport)
        await store.aclose()
        return {
            "total": run.requests,
            "seen by proxy": len(proxy.requests),
            "tags/list": proxy.count("GET", r"/tags/list$"),
            "catalog": proxy.count("GET", r"/_catalog$"),
            "manifests and blobs": proxy.count(path_regex=r"/manifests/|/blobs/"),
        }


def peak_rss_100k() -> str:
    server = subprocess.Popen([sys.executable, str(SYNTHETIC), "--tags", str(BIG_TAGS)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert server.stdout is not None
        address = f"http://127.0.0.1:{int(server.stdout.readline())}"
        with tempfile.TemporaryDirectory() as scratch:
            result = subprocess.run(
                [sys.executable, "-c", RSS_SCRIPT, f"sqlite:///{scratch}/big.db", address],
                capture_output=True, text=True, check=True, timeout=900,
            )  # fmt: skip
        return result.stdout.strip()
    finally:
        server.terminate()
        server.wait(timeout=10)


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


async def tags_only(handle: Any, repos: list[str], c: int, rounds: int) -> None:
    """Section 2: regwatch's tags-only scan and skopeo, best of `rounds` each, alternately."""
    url, skopeo = handle.url, find_skopeo()

    async def peer() -> tuple[float, None]:
        assert skopeo is not None
        return skopeo_list_tags(skopeo, handle.host, repos), None

    async def scans() -> tuple[float, tuple[ScanRun, TimedStore]]:
        return await regwatch_scan(url, c)

    if skopeo is None:
        (tags_s, (tags_run, tags_store)), peer_s = await best(rounds, scans), None
    else:
        (tags_s, (tags_run, tags_store)), (peer_s, _) = await best_of_pairs(rounds, scans, peer)
    inside = tags_store.seconds
    print(f"\n2. full tags-only scan: regwatch {tags_s:.2f} s ({tags_run.requests} requests, "
          f"{tags_run.tags} tags stored; {inside:.2f} s of it inside the store)")  # fmt: skip
    print(f"   the store's single writer thread: busy {tags_store.writer_busy:.2f} s, "
          f"of which {tags_store.writer_cpu:.2f} s of its own CPU")  # fmt: skip
    total_cpu = tags_store.process_cpu + tags_store.registry_cpu
    cores = os.cpu_count() or 1
    print(f"   CPU used: regwatch {tags_store.process_cpu:.2f} s (all threads), registry "
          f"{tags_store.registry_cpu:.2f} s: {total_cpu:.2f} s on {cores} cores, "
          f">= {total_cpu / cores:.2f} s of wall time if nothing else ran")  # fmt: skip
    setup_ms = sorted(CLIENT_SETUP)[len(CLIENT_SETUP) // 2] * 1000
    print(f"   (not timed: making the account's RegistryClient, {setup_ms:.0f} ms, once per "
          f"process; the bare loop's session is made outside its timing too)")  # fmt: skip
    floor_s, floor_requests = await best(rounds, lambda: bare_scan(url, c, heads=False))
    print(f"   bare aiohttp loop, same {floor_requests} requests, no store: {floor_s:.2f} s")
    if peer_s is None:
        print("   skopeo not installed: apt-get install -y skopeo (or BENCH_INSTALL_SKOPEO=1)")
        return
    speedup = peer_s / tags_s
    print(f"   skopeo list-tags, once per repository, best of {rounds}: {peer_s:.2f} s")
    print(f"   regwatch is {speedup:.1f}x faster (target >= 10x: {verdict(speedup >= 10)})")


async def run(args: argparse.Namespace, handle: Any) -> None:
    url, c, rounds = handle.url, args.concurrency, args.rounds
    repos = [f"{PREFIX}repo{r:04d}" for r in range(args.repos)]
    await regwatch_scan(url, c, trackDigests=True)  # warm up the registry and the imports
    await bare_scan(url, c)
    if args.only_tags:
        await tags_only(handle, repos, c, rounds)
        return

    (full_s, (full, full_store)), (bare_s, bare_requests) = await best_of_pairs(
        rounds, lambda: regwatch_scan(url, c, trackDigests=True), lambda: bare_scan(url, c)
    )
    ratio = full_s / bare_s
    print(f"\n1. full scan with digests (concurrency {c}), best of {rounds}, run alternately")
    print(f"   regwatch scan_account  {full_s:6.2f} s  {full.requests} requests  "
          f"{full.tags} tags stored ({full_store.seconds:.2f} s inside the store)")  # fmt: skip
    print(f"   bare aiohttp loop      {bare_s:6.2f} s  {bare_requests} requests (no store)")
    print(f"   ratio {ratio:.2f}  (target <= 1.5: {verdict(ratio <= 1.5)})")

    await tags_only(handle, repos, c, rounds)

    counts = await rescan_requests(url, handle, c)
    per_repo = counts["tags/list"] / args.repos
    print(f"\n3. unchanged rescan (tags only): {counts}")
    print(f"   tags/list per repository {per_repo:.2f}, per-tag requests "
          f"{counts['manifests and blobs']} (target one per repository: "
          f"{verdict(per_repo == 1 and counts['manifests and blobs'] == 0)})")  # fmt: skip

    status, tags, requests, seconds, peak = peak_rss_100k().split()
    print(f"\n4. one repository of {BIG_TAGS} tags (synthetic registry, pages of 1000): "
          f"{status}, {tags} tags, {requests} requests, {seconds} s; peak RSS (VmHWM) {peak} MB "
          f"(target < 150 MB: {verdict(int(peak) < 150)})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repos", type=int, default=200)
    parser.add_argument("--tags", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--only-tags", action="store_true", help="only 2. (the tags-only scan against skopeo)"
    )
    args = parser.parse_args()
    registry = RegistryProcess("anonymous")
    with registry as handle:
        if registry._proc is not None:  # the harness keeps the process private; its CPU time
            REGISTRY_PID.append(registry._proc.pid)
        started = time.perf_counter()
        populate(handle, args.repos, args.tags, prefix=PREFIX, concurrency=32)
        print(f"pushed {args.repos} repositories x {args.tags} tags to {handle.url} "
              f"in {time.perf_counter() - started:.1f} s")  # fmt: skip
        asyncio.run(run(args, handle))


if __name__ == "__main__":
    main()
