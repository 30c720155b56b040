"""Several instances (issue 7): scan throughput of 1 vs 3 instances, lookups on PostgreSQL.

1. Scan throughput. An anonymous test registry (tests/harness) holds 1,000 repositories (one tag
   each), in `--accounts` accounts (default 2 of 500 repositories, `repositories` lists,
   cacheThreads 5) scanned every second. 1, then 3, `regwatch serve` processes share them
   through one throwaway PostgreSQL: accounts above REGWATCH_SHARE_REPOSITORIES_ABOVE (100) are
   scanned as shared passes, one job per repository claimed by any instance (`--accounts 10`
   gives accounts of 100, each scanned whole by the holder of its lease, as before the shared
   passes). After every account's first scan, the runs started in a window (from the store's
   scan runs): their repositories per second from the window's start to the last one's end are
   the steady-state throughput (an account waits its 1 s interval between two passes). Prints
   both, the ratio, and how many instances scanned repositories. Every process runs on the same
   machine (the registry and PostgreSQL too), so the ratio is bounded by its cores.
2. Lookup API on PostgreSQL with 1,000,000 tagged images next to SQLite: the same store content
   (bench/store_find.py's loader, bench/api.py's endpoints and wrk driver), `regwatch serve
   --no-scan` on each, response cache off (`--cache-seconds 0`) so that the store is measured.

    .venv/bin/python bench/scale.py [--window 20] [--skip-api] [--seconds 5] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent / "tests"))  # the test harness: `import harness`

import api  # noqa: E402  (bench/api.py: endpoints, wrk driver, the 1M SQLite store)
from store_find import open_loaded  # noqa: E402  (the bulk loader, COPY on PostgreSQL)

from harness import RegistryProcess, populate  # noqa: E402
from harness.postgres import PostgresServer  # noqa: E402
from regwatch.service.instances import SHARE_ENV  # noqa: E402
from regwatch.store import upgrade  # noqa: E402

PREFIX = "scale/"
REPOS = 1_000
ACCOUNTS = 2
THREADS = 5  # cacheThreads: requests in flight per account and instance


def write_config(
    directory: Path, address: str, repos: list[str], interval: int, count: int = ACCOUNTS
) -> Path:
    accounts = [
        {"name": f"part{i}", "address": address, "repositories": repos[i::count],
         "cacheIntervalSeconds": interval, "cacheThreads": THREADS}
        for i in range(count)
    ]  # fmt: skip
    document = {
        "currentDeployment": "default",
        "deploymentConfigurations": [
            {"name": "default", "providers": {"dockerRegistry": {"enabled": True,
                                                                 "accounts": accounts}}}
        ],
    }  # fmt: skip
    path = directory / "config"
    path.write_text(json.dumps(document))
    return path


def wait_health(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"regwatch serve did not start; its log:\n{log.read_text()}")


@contextmanager
def instances(
    count: int,
    config: Path,
    url: str,
    workdir: Path,
    extra: tuple[str, ...] = (),
    settings: dict[str, str] | None = None,
) -> Iterator[list[int]]:
    """`count` `regwatch serve` processes on `url` (`settings`: more REGWATCH_* variables);
    yields their ports."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGWATCH_")}
    env.update(REGWATCH_STORE_URL=url, REGWATCH_SCAN_LEASE_SECONDS="10", **(settings or {}))
    processes: list[subprocess.Popen[bytes]] = []
    ports: list[int] = []
    try:
        for n in range(count):
            port, log = api.free_port(), workdir / f"serve-{n}.log"
            command = [str(api.REGWATCH), "serve", "--config", str(config), "--port", str(port)]
            with log.open("wb") as out:
                process = subprocess.Popen(
                    [*command, *extra], env=env, stdout=out, stderr=subprocess.STDOUT
                )
            processes.append(process)
            wait_health(port, process, log)
            ports.append(port)
        yield ports
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(60)


def finished_runs(server: PostgresServer, database: str) -> list[tuple[str, str, int, int, int]]:
    """(account, holder, started_at ms, finished_at ms, repositories_ok) of finished runs."""
    with server.connect(database) as conn:
        rows = conn.execute(
            "SELECT account, holder, started_at, finished_at, repositories_ok FROM scan_runs "
            "WHERE finished_at IS NOT NULL ORDER BY id"
        ).fetchall()
    return [tuple(row) for row in rows]  # type: ignore[misc]


def throughput(
    server: PostgresServer,
    config: Path,
    count: int,
    window: float,
    workdir: Path,
    accounts: int,
    settings: dict[str, str] | None = None,
) -> tuple[float, int]:
    """Repositories scanned per second by `count` instances in `window` seconds (steady state,
    after every account's first scan), and how many instances scanned repositories in the
    window (run holders, and the instances that finished jobs of shared passes)."""
    database = server.create_database()
    url = server.url(database)
    upgrade(url)
    try:
        with instances(count, config, url, workdir, settings=settings):
            deadline = time.monotonic() + 300
            while len({run[0] for run in finished_runs(server, database)}) < accounts:
                if time.monotonic() > deadline:
                    raise SystemExit("the first scans did not finish in 300 s")
                time.sleep(0.5)
            start_ms = time.time() * 1000
            time.sleep(window)
            end_ms = time.time() * 1000
            runs = runs_started(server, database, start_ms, end_ms)
            scanners = job_scanners(server, database, start_ms)
    finally:
        server.drop_database(database)
    seconds = (max(run[3] for run in runs) - start_ms) / 1000
    return sum(run[4] for run in runs) / seconds, len({run[1] for run in runs} | scanners)


def job_scanners(server: PostgresServer, database: str, since_ms: float) -> set[str]:
    """The instances that finished jobs of shared passes since `since_ms` (each job keeps its
    last scanner: a lower bound over the window)."""
    with server.connect(database) as conn:
        rows = conn.execute(
            "SELECT DISTINCT scanned_by FROM scan_jobs WHERE scanned_at >= %s", (since_ms,)
        ).fetchall()
    return {row[0] for row in rows if row[0]}


def runs_started(
    server: PostgresServer, database: str, start_ms: float, end_ms: float
) -> list[tuple[str, str, int, int, int]]:
    """The runs started in [start_ms, end_ms), once they have all finished."""
    deadline = time.monotonic() + 120
    while True:
        with server.connect(database) as conn:
            running = conn.execute(
                "SELECT count(*) FROM scan_runs WHERE finished_at IS NULL AND started_at < %s",
                (end_ms,),
            ).fetchone()
        if not running or not running[0] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    return [run for run in finished_runs(server, database) if start_ms <= run[2] < end_ms]


def scan_part(args: argparse.Namespace, server: PostgresServer, workdir: Path) -> None:
    with RegistryProcess("anonymous") as handle:
        started = time.perf_counter()
        populate(handle, REPOS, 1, prefix=PREFIX, concurrency=32)
        print(
            f"pushed {REPOS} repositories to {handle.url} in {time.perf_counter() - started:.0f} s"
        )
        repos = [f"{PREFIX}repo{i:04d}" for i in range(REPOS)]
        config = write_config(workdir, handle.url, repos, interval=1, count=args.accounts)
        results: dict[int, list[float]] = {1: [], 3: []}
        settings = {} if args.share_above is None else {SHARE_ENV: args.share_above}
        for _ in range(args.scan_rounds):  # interleaved: a noisy neighbour hits both alike
            for count in results:
                rate, scanning = throughput(
                    server, config, count, args.window, workdir, args.accounts, settings
                )
                results[count].append(rate)
                print(f"  {count} instance(s): {rate:7.1f} repositories/s ({scanning} scanning)")
        one, three = (statistics.median(results[n]) for n in (1, 3))
        per_account = REPOS // args.accounts
        above = args.share_above or "100"
        shared = above.isdigit() and per_account > int(above)
        how = "shared passes" if shared else "each scanned whole by its lease's holder"
        print(f"scan throughput, {args.accounts} account(s) x {per_account} repositories ({how}), "
              f"cacheThreads {THREADS}, median of {args.scan_rounds} rounds of "
              f"{args.window:.0f} s:")  # fmt: skip
        print(f"  1 instance  {one:7.1f} repositories/s")
        print(f"  3 instances {three:7.1f} repositories/s   ratio {three / one:.2f}")


def lookup_part(args: argparse.Namespace, server: PostgresServer, workdir: Path) -> None:
    api.ensure_db(args.db, api.ROWS)
    layout, refs = api.inventory(args.db)
    database = "lookup1m"
    url = server.url(database)
    if database not in databases(server):
        server.create_database(database)
    store, _ = open_loaded(url, workdir / "unused.db", api.ROWS, random.Random(42))
    store.close()  # the same loader and seed as the SQLite file: the same content
    sqlite_copy = workdir / "api.db"
    shutil.copyfile(args.db, sqlite_copy)
    config = api.write_config(workdir, list(layout))
    endpoints = api.paths(layout, refs, args.count, random.Random(7))
    for label, store_url in (("SQLite", f"sqlite:///{sqlite_copy}"), ("PostgreSQL", url)):
        with instances(1, config, store_url, workdir, ("--no-scan", "--cache-seconds", "0")) as (
            port,
        ):
            base = f"http://127.0.0.1:{port}"
            rounds: dict[str, list[api.Result]] = {name: [] for name in endpoints}
            for name, urls in endpoints.items():
                api.run_wrk(name, base, urls, 2, args.connections, workdir)  # warm-up
            for _ in range(args.rounds):
                for name, urls in endpoints.items():
                    rounds[name].append(
                        api.run_wrk(name, base, urls, args.seconds, args.connections, workdir)
                    )
        api.report(f"{label}, 1,000,000 tagged images, response cache off",
                   [api.combine(name, runs) for name, runs in rounds.items()])  # fmt: skip


def databases(server: PostgresServer) -> set[str]:
    with server.connect() as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database").fetchall()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=20.0, help="seconds of steady state")
    parser.add_argument("--scan-rounds", type=int, default=2)
    parser.add_argument(
        "--accounts", type=int, default=ACCOUNTS, help="accounts of the 1,000 repositories"
    )
    parser.add_argument("--share-above", help=f"{SHARE_ENV} for the instances (default 100)")
    parser.add_argument("--skip-api", action="store_true", help="only the scan throughput")
    parser.add_argument("--skip-scan", action="store_true", help="only the lookup API")
    parser.add_argument("--seconds", type=int, default=5, help="per endpoint and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--count", type=int, default=50, help="count= of the find lookups")
    parser.add_argument("--db", type=Path, default=api.DB, help="the 1M-image SQLite store")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        PostgresServer(settings={"shared_buffers": "1GB"}) as server,
    ):
        if not args.skip_scan:
            scan_part(args, server, Path(tmp))
        if not args.skip_api:
            lookup_part(args, server, Path(tmp))


if __name__ == "__main__":
    main()
