"""Push-to-delivery latency (issue 6): polling at a 5 s interval vs registry push notifications.

For each mode, starts a CNCF distribution test registry (tests/harness), a webhook receiver on
127.0.0.1 and `regwatch serve` (a subprocess, its own SQLite store), pushes `--pushes` new tags
one at a time, `--spacing` seconds apart, and measures, per tag, from the end of the push (the
manifest PUT answered) to the receiver getting its event. Prints p50 / p99 / max per mode.

- polling: `cacheIntervalSeconds: 5`, no notifications: a tag waits for the next scan;
- push: the registry's `notifications.endpoints` point at `POST /webhooks/registry`, scans off
  (a one-day interval): each push is verified by a HEAD, indexed and delivered at once.

    .venv/bin/python bench/events.py [--pushes 200] [--spacing 0.1] [--interval 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the test harness: `import harness`

from harness import ImagePusher, RegistryHandle, RegistryProcess, free_port  # noqa: E402
from harness.webhook_receiver import WebhookReceiver  # noqa: E402

BIN = Path(sys.executable).parent / "regwatch"
TOKEN = "bench-token"
REPO = "bench/app"


def config(path: Path, registry: RegistryHandle, receiver: WebhookReceiver, interval: int) -> None:
    account = {"name": "bench", "address": registry.url, "repositories": [REPO],
               "cacheIntervalSeconds": interval}  # fmt: skip
    document = {
        "currentDeployment": "default",
        "deploymentConfigurations": [
            {"name": "default", "providers": {"dockerRegistry": {"enabled": True,
                                                                  "accounts": [account]}}}
        ],
        "regwatch": {
            "webhooks": [{"name": "bench", "url": receiver.url}],
            "notifications": {"token": TOKEN},
            "delivery": {"rateCap": {"perMinute": 100_000, "burst": 10_000}},
        },
    }  # fmt: skip
    path.write_text(json.dumps(document, indent=2))


def wait(check: Callable[[], bool], timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
            raise SystemExit(f"timed out waiting for {what}\n{tail}")
        time.sleep(0.05)


def serve(config_path: Path, port: int, workdir: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGWATCH_")}
    env.update(HOME=str(workdir), REGWATCH_STORE_URL=f"sqlite:///{workdir}/store.db")
    log = (workdir / "serve.log").open("wb")
    process = subprocess.Popen(
        [str(BIN), "serve", "--config", str(config_path), "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    return process


def scanned(port: int) -> bool:
    import urllib.request

    try:
        url = f"http://127.0.0.1:{port}/dockerRegistry/accounts/bench/status"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.loads(resp.read()).get("lastFinishedRun") is not None
    except OSError:
        return False


async def push_seed(registry: RegistryHandle) -> None:
    """The repository exists before the first scan, which is a silent baseline."""
    async with ImagePusher(registry) as pusher:
        await pusher.push(REPO, "seed")


async def push_all(registry: RegistryHandle, pushes: int, spacing: float) -> dict[str, float]:
    done: dict[str, float] = {}
    async with ImagePusher(registry) as pusher:
        for n in range(pushes):
            tag = f"t{n:04d}"
            await pusher.push(REPO, tag)
            done[tag] = time.monotonic()
            await asyncio.sleep(spacing)
    return done


def run_mode(mode: str, args: argparse.Namespace) -> list[float]:
    port = free_port()
    extra: dict[str, Any] = {}
    if mode == "push":
        extra = {"notifications": {"endpoints": [{
            "name": "regwatch", "url": f"http://127.0.0.1:{port}/webhooks/registry",
            "headers": {"Authorization": [f"Bearer {TOKEN}"]}, "timeout": "2s",
            "threshold": 5, "backoff": "200ms"}]}}  # fmt: skip
    process = RegistryProcess("anonymous", False, extra_config=extra)
    registry = process.start()
    receiver = WebhookReceiver().start()
    with tempfile.TemporaryDirectory(prefix="regwatch-bench-events-") as tmp:
        workdir = Path(tmp)
        interval = args.interval if mode == "polling" else 86_400
        config(workdir / "config", registry, receiver, interval)
        asyncio.run(push_seed(registry))
        service = serve(workdir / "config", port, workdir)
        try:
            wait(lambda: scanned(port), 60, "the first scan")
            time.sleep(1.0)
            pushed = asyncio.run(push_all(registry, args.pushes, args.spacing))
            wait(
                lambda: len(_arrivals(receiver).keys() & pushed.keys()) >= args.pushes,
                args.interval * 4 + 60,
                f"{args.pushes} deliveries ({mode})",
                workdir / "serve.log",
            )
        finally:
            if os.environ.get("BENCH_KEEP_LOGS"):
                print((workdir / "serve.log").read_text()[-5000:], registry.read_log()[-3000:])
            service.terminate()
            service.wait(30)
            receiver.stop()
            process.stop()
    arrived = _arrivals(receiver)
    return [arrived[tag] - at for tag, at in pushed.items()]


def _arrivals(receiver: WebhookReceiver) -> dict[str, float]:
    """tag -> when its event arrived (the first time)."""
    found: dict[str, float] = {}
    for request in receiver.delivered():
        found.setdefault(request.json()["content"]["tag"], request.at)
    return found


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
    return ordered[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pushes", type=int, default=200)
    parser.add_argument("--spacing", type=float, default=0.1, help="seconds between pushes")
    parser.add_argument("--interval", type=int, default=5, help="polling: cacheIntervalSeconds")
    parser.add_argument("--modes", default="polling,push", help="polling, push or both")
    args = parser.parse_args()
    print(f"{args.pushes} pushes, {args.spacing} s apart; latency = push answered -> webhook "
          "received")  # fmt: skip
    print(f"{'mode':<26}{'p50':>9}{'p99':>9}{'max':>9}")
    results = {}
    for mode in args.modes.split(","):
        latencies = run_mode(mode, args)
        results[mode] = latencies
        label = f"polling every {args.interval} s" if mode == "polling" else "push notifications"
        print(f"{label:<26}{percentile(latencies, 50):>8.3f}s{percentile(latencies, 99):>8.3f}s"
              f"{max(latencies):>8.3f}s")  # fmt: skip
    if len(results) == 2:
        ratio = statistics.median(results["polling"]) / statistics.median(results["push"])
        print(f"push notifications: p50 {ratio:.0f}x lower than polling")


if __name__ == "__main__":
    main()
