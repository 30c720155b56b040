"""Registry client throughput against a bare aiohttp loop doing the same requests.

Starts an anonymous test registry (tests/harness), pushes 200 repositories x 20 tags, then for
concurrency 1, 8 and 32 runs the same work twice: `tags/list` of every repository and a manifest
HEAD (full Accept list) of every tag, once through `RegistryClient` and once through a bare
aiohttp loop with no logic (the registry's own ceiling on this box). Prints requests/s of both
and the ratio; the target is >= 60 % at concurrency 32.

    .venv/bin/python bench/client.py [--repos 200] [--tags 20] [--rounds 3]

Each figure is the best of `--rounds` alternating runs (the machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the test harness: `import harness`

from harness import RegistryProcess, populate  # noqa: E402
from regwatch.models import MANIFEST_ACCEPT, Endpoint  # noqa: E402
from regwatch.registry import RegistryClient, Transport  # noqa: E402

ACCEPT = ", ".join(MANIFEST_ACCEPT)
PREFIX = "bench/"


async def client_work(base_url: str, repos: list[str], concurrency: int) -> int:
    """tags/list + HEAD of every tag through RegistryClient; returns the number of requests."""
    semaphore = asyncio.Semaphore(concurrency)
    async with Transport() as transport:
        client = RegistryClient(Endpoint(base_url), transport=transport)
        await client.ping()  # learn the auth scheme outside the timed work, as a scan would

        async def head(repo: str, tag: str) -> None:
            async with semaphore:
                await client.head_manifest(repo, tag)

        async def one(repo: str) -> int:
            async with semaphore:
                tags = await client.tags(repo)
            await asyncio.gather(*(head(repo, tag) for tag in tags))
            return 1 + len(tags)

        started = client.stats.requests
        counts = await asyncio.gather(*(one(repo) for repo in repos))
        assert client.stats.requests - started == sum(counts), "unexpected extra requests"
        return sum(counts)


async def bare_work(base_url: str, repos: list[str], concurrency: int) -> int:
    """The same requests with a plain aiohttp session and no logic at all."""
    semaphore = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as session:

        async def head(repo: str, tag: str) -> None:
            async with semaphore:
                url = f"{base_url}/v2/{repo}/manifests/{tag}"
                async with session.head(url, headers={"Accept": ACCEPT}) as resp:
                    assert resp.status == 200
                    assert resp.headers["Docker-Content-Digest"]

        async def one(repo: str) -> int:
            url = f"{base_url}/v2/{repo}/tags/list?n=100"
            async with semaphore, session.get(url) as resp:
                tags = json.loads(await resp.read())["tags"]
            await asyncio.gather(*(head(repo, tag) for tag in tags))
            return 1 + len(tags)

        async with session.get(f"{base_url}/v2/") as resp:
            await resp.read()
        counts = await asyncio.gather(*(one(repo) for repo in repos))
        return sum(counts)


async def timed(work: Callable[[], Awaitable[int]]) -> float:
    started = time.perf_counter()
    requests = await work()
    return requests / (time.perf_counter() - started)


async def measure(
    base_url: str, repos: list[str], concurrency: int, rounds: int
) -> tuple[float, float]:
    """Best requests/s of the client and of the bare loop over alternating rounds."""
    best_client = best_bare = 0.0
    for _ in range(rounds):
        best_bare = max(best_bare, await timed(lambda: bare_work(base_url, repos, concurrency)))
        best_client = max(
            best_client, await timed(lambda: client_work(base_url, repos, concurrency))
        )
    return best_client, best_bare


async def run(base_url: str, repos: list[str], levels: list[int], rounds: int) -> list[str]:
    await bare_work(base_url, repos[:20], 8)  # warm up the registry (page cache, Go runtime)
    await client_work(base_url, repos[:20], 8)
    lines = []
    for level in levels:
        client_rps, bare_rps = await measure(base_url, repos, level, rounds)
        lines.append(
            f"{level:>11}  {client_rps:>12.0f}  {bare_rps:>10.0f}  {client_rps / bare_rps:>6.0%}"
        )
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repos", type=int, default=200)
    parser.add_argument("--tags", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()

    with RegistryProcess("anonymous") as handle:
        started = time.perf_counter()
        populate(handle, args.repos, args.tags, prefix=PREFIX, concurrency=32)
        print(f"pushed {args.repos} repositories x {args.tags} tags to {handle.url} "
              f"in {time.perf_counter() - started:.1f} s")  # fmt: skip
        repos = [f"{PREFIX}repo{r:04d}" for r in range(args.repos)]
        per_run = args.repos * (1 + args.tags)
        print(f"work per run: {args.repos} tags/list + {args.repos * args.tags} manifest HEADs "
              f"= {per_run} requests; best of {args.rounds} rounds")  # fmt: skip
        print(f"{'concurrency':>11}  {'client req/s':>12}  {'bare req/s':>10}  {'ratio':>6}")
        lines = asyncio.run(run(handle.url, repos, args.concurrency, args.rounds))
    last = lines[-1].split()
    ratio = float(last[-1].rstrip("%")) / 100
    verdict = "met" if ratio >= 0.6 else "MISSED"
    print(f"target (client >= 60 % of the bare loop at concurrency {last[0]}): {verdict}")


if __name__ == "__main__":
    main()
