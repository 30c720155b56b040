"""Triggers end to end: `regwatch serve` (a subprocess) scanning the real registry, webhook
receivers on 127.0.0.1. A push reaches the receiver as exactly one signed Echo event after the
next scan; the first scan is silent; digest changes fire only with trackDigests; `latest` and
regular expressions match as in Echo; a receiver down for several retries gets the event once;
SIGKILL between the index commit and the delivery loses nothing; a burst of 5,000 new tags is
held by the rate cap and delivered, once each, when the cap is raised."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from triggers_support import (
    NEVER,
    SECRET,
    ServeFactory,
    clean_env,
    eventually,
    run_cli,
    signed,
    write_config,
)

from harness import RegistryHandle, fault_rules, push_images
from harness.webhook_receiver import WebhookReceiver

FAST = {"retryBaseSeconds": 0.2, "retryMaxSeconds": 0.5, "timeoutSeconds": 3, "leaseSeconds": 4}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return clean_env(tmp_path)


@pytest.fixture
def serve(env: dict[str, str], tmp_path: Path) -> Iterator[ServeFactory]:
    factory = ServeFactory(env, tmp_path)
    yield factory
    factory.cleanup()


@pytest.fixture
def receivers() -> Iterator[Callable[[], WebhookReceiver]]:
    started: list[WebhookReceiver] = []

    def make() -> WebhookReceiver:
        started.append(WebhookReceiver().start())
        return started[-1]

    yield make
    for receiver in started:
        receiver.stop()


def account(name: str, address: str, repository: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "address": address, "repositories": [repository],
            "cacheIntervalSeconds": NEVER, **fields}  # fmt: skip


def ci_config(
    tmp_path: Path, registry: RegistryHandle, repo: str, ci: WebhookReceiver, delivery: Any
) -> Path:
    """A config with the account "acct" indexing `repo` and the signed webhook "ci"."""
    config = tmp_path / "config"
    webhooks = [{"name": "ci", "url": ci.url, "secret": SECRET}]
    write_config(
        config, [account("acct", registry.url, repo)], {"webhooks": webhooks, "delivery": delivery}
    )
    return config


def tags_of(receiver: WebhookReceiver) -> list[str]:
    return [_content(r.json())["tag"] for r in receiver.delivered()]


def _content(payload: dict[str, Any]) -> dict[str, Any]:
    return dict(payload.get("content") or payload["data"])


def settle(receiver: WebhookReceiver, count: int) -> None:
    """Exactly `count` deliveries, and still `count` a moment later (nothing twice)."""
    receiver.wait_for(count, timeout=20)
    time.sleep(0.7)
    assert len(receiver.requests) == count, [r.json() for r in receiver.requests]


def test_new_tags_reach_the_matching_triggers_once_signed_after_the_next_scan(
    registry_anonymous: RegistryHandle,
    unique_name: str,
    tmp_path: Path,
    serve: ServeFactory,
    receivers: Callable[[], WebhookReceiver],
    env: dict[str, str],
) -> None:
    plain, tracked = f"{unique_name}plain", f"{unique_name}tracked"
    ci, everything = receivers(), receivers()
    push_images(registry_anonymous, plain, ["1.0"])
    push_images(registry_anonymous, tracked, ["v1.0", "latest"])
    config = tmp_path / "config"
    write_config(
        config,
        [
            account("plain", registry_anonymous.url, plain),
            account("tracked", registry_anonymous.url, tracked, trackDigests=True),
        ],
        {
            "webhooks": [
                {"name": "ci", "url": ci.url, "secret": SECRET},
                {"name": "all", "url": everything.url, "format": "cloudevents"},
            ],
            "triggers": [
                {"name": "plain-any", "account": "plain", "repository": plain, "sink": "ci"},
                {
                    "name": "tracked-v",
                    "account": "tracked",
                    "repository": tracked,
                    "tag": r"v\d+\.\d+|latest",
                    "sink": "ci",
                },
            ],
            "delivery": FAST,
        },
    )
    running = serve(config)
    running.wait_scanned("plain")
    running.wait_scanned("tracked")
    time.sleep(1.5)  # the first scans are a silent baseline: nothing is sent
    assert (ci.requests, everything.requests, running.events()) == ([], [], [])

    (new,) = push_images(registry_anonymous, plain, ["1.1"])
    running.scan("plain")
    settle(ci, 1)
    (request,) = ci.requests
    assert signed(request.body, request.header("X-Regwatch-Signature"))
    payload = request.json()
    assert payload["details"]["type"] == "docker"
    assert payload["details"]["source"] == "regwatch"
    assert payload["content"] == {"account": "plain", "registry": registry_anonymous.host,
                                  "repository": plain, "tag": "1.1", "digest": None}  # fmt: skip
    assert payload["artifacts"][0]["reference"] == f"{registry_anonymous.host}/{plain}:1.1"
    assert request.header("Idempotency-Key") == payload["id"]
    assert new.tag == "1.1"

    push_images(registry_anonymous, plain, ["latest"])  # blank trigger tag: not latest
    running.scan("plain")
    push_images(registry_anonymous, plain, ["1.1"])  # moved, but plain tracks no digests
    running.scan("plain")
    (v11,) = push_images(registry_anonymous, tracked, ["v1.1"])
    push_images(registry_anonymous, tracked, ["v1.1-rc"])  # the regex must match all of it
    running.scan("tracked")
    (moved_latest,) = push_images(registry_anonymous, tracked, ["latest"])  # moved, tracked
    (moved_v10,) = push_images(registry_anonymous, tracked, ["v1.0"])
    running.scan("tracked")

    settle(ci, 4)
    assert tags_of(ci) == ["1.1", "v1.1", "latest", "v1.0"]
    assert all(signed(r.body, r.header("X-Regwatch-Signature")) for r in ci.requests)
    by_tag = {_content(r.json())["tag"]: r.json() for r in ci.requests}
    assert by_tag["v1.1"]["content"]["digest"] == v11.digest
    assert by_tag["latest"]["details"]["attributes"]["kind"] == "digest_changed"
    assert by_tag["latest"]["content"]["digest"] == moved_latest.digest
    assert by_tag["v1.0"]["content"]["digest"] == moved_v10.digest
    settle(everything, 6)
    assert sorted(tags_of(everything)) == sorted(
        ["1.1", "latest", "v1.1", "v1.1-rc", "latest", "v1.0"]
    )
    assert everything.requests[0].header("Content-Type").startswith("application/cloudevents+json")

    skipped = [e for e in running.events() if e["deliveries"][1]["status"] == "skipped"]
    reasons = {e["tag"]: e["deliveries"][1]["lastError"] for e in skipped}
    assert reasons == {
        "latest": f"no trigger of sink 'ci' matches plain/{plain}:latest",
        "v1.1-rc": f"no trigger of sink 'ci' matches tracked/{tracked}:v1.1-rc",
    }
    listed = run_cli(env, "events", "list", "--config", str(config), "--json")
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)["events"]) == 6
    assert running.stop() == 0


def test_a_receiver_down_for_several_retries_then_up_gets_the_event_once(
    registry_anonymous: RegistryHandle,
    unique_name: str,
    tmp_path: Path,
    serve: ServeFactory,
    receivers: Callable[[], WebhookReceiver],
) -> None:
    repo = f"{unique_name}app"
    ci = receivers()
    ci.down()
    push_images(registry_anonymous, repo, ["1"])
    config = ci_config(tmp_path, registry_anonymous, repo, ci, FAST)
    running = serve(config)
    running.wait_scanned("acct")
    push_images(registry_anonymous, repo, ["2"])
    running.scan("acct")

    def attempts() -> int:
        events = running.events()
        return int(events[0]["deliveries"][0]["attempts"]) if events else 0

    eventually(lambda: attempts() >= 3, 20, "three failed attempts")
    (event,) = running.events()
    assert event["deliveries"][0]["status"] == "pending"
    assert "cannot connect" in event["deliveries"][0]["lastError"]
    ci.up()
    settle(ci, 1)
    assert tags_of(ci) == ["2"]
    (event,) = running.events()
    assert event["deliveries"][0]["status"] == "delivered"
    assert ci.requests[0].header("Idempotency-Key") == event["id"]


def test_sigkill_between_the_index_commit_and_the_delivery_loses_nothing(
    registry_anonymous: RegistryHandle,
    unique_name: str,
    tmp_path: Path,
    serve: ServeFactory,
    receivers: Callable[[], WebhookReceiver],
) -> None:
    repo = f"{unique_name}app"
    ci = receivers()
    ci.hold(20)  # the first attempt never gets its answer: the service dies before
    push_images(registry_anonymous, repo, ["1"])
    delivery = {**FAST, "timeoutSeconds": 4, "leaseSeconds": 5}
    config = ci_config(tmp_path, registry_anonymous, repo, ci, delivery)
    first = serve(config)
    first.wait_scanned("acct")
    push_images(registry_anonymous, repo, ["2"])
    first.scan("acct")  # the event is committed with the index...
    eventually(lambda: len(ci.arrivals) == 1, 10, "the delivery in flight")
    first.kill()  # ...and the service is killed before the delivery completes
    ci.hold(0)
    second = serve(config)
    # the claim of the killed instance expires (leaseSeconds), then the event goes out again
    eventually(
        lambda: second.events()[0]["deliveries"][0]["status"] == "delivered", 40, "redelivery"
    )
    answered = ci.wait_for(1, timeout=30)
    assert {r.header("Idempotency-Key") for r in answered} == {second.events()[0]["id"]}
    assert {_content(r.json())["tag"] for r in answered} == {"2"}
    assert len(second.events()) == 1  # one event, not re-recorded
    assert second.stop() == 0


def test_a_burst_of_5000_new_tags_is_held_by_the_rate_cap_not_lost(
    registry_anonymous: RegistryHandle,
    unique_name: str,
    tmp_path: Path,
    serve: ServeFactory,
    receivers: Callable[[], WebhookReceiver],
    fault_proxy_factory: Any,
) -> None:
    repos = [f"{unique_name}burst{n}" for n in range(10)]
    for repo in repos:
        push_images(registry_anonymous, repo, ["seed"])
    proxy = fault_proxy_factory(registry_anonymous)
    ci = receivers()
    config = tmp_path / "config"
    regwatch = {
        "webhooks": [{"name": "ci", "url": ci.url}],
        "delivery": {**FAST, "rateCap": {"perMinute": 600, "burst": 20}, "concurrency": 16},
    }
    acct = {"name": "acct", "address": proxy.url, "repositories": repos,
            "cacheIntervalSeconds": NEVER}  # fmt: skip
    write_config(config, [acct], regwatch)
    running = serve(config)
    running.wait_scanned("acct")  # baseline: only "seed"
    tags = [f"t{n:04d}" for n in range(500)]  # 10 repositories x 500 new tags, synthetic
    proxy.add(fault_rules.status(200, body={"name": "x", "tags": tags},
                                 path=fault_rules.TAGS_LIST, times=None))  # fmt: skip
    requested = time.monotonic()
    running.scan("acct")
    ci.wait_for(20, timeout=20)  # the burst goes out at once...
    time.sleep(2)
    sent = len(ci.delivered())
    # ...then 10 a second at most since the scan was asked for: held, not fired
    assert sent <= 20 + 10 * (time.monotonic() - requested) + 15
    outbox = running.get("/events", limit=1)["outbox"]
    (capped,) = outbox["rateCapped"]
    assert (capped["sink"], capped["account"], capped["perMinute"]) == ("ci", "acct", 600)
    assert capped["held"] > 4000
    assert outbox["dead"] == {}

    def held_metric() -> int:
        _, metrics = running.request("GET", "/metrics")
        found = re.search(r'regwatch_rate_cap_held\{account="acct",sink="ci"\} (\d+)', metrics)
        return int(found.group(1)) if found else 0

    eventually(lambda: held_metric() > 4000, 5, "the held deliveries in /metrics")
    # the operator raises the cap; the running service reloads the file and lets them all out
    regwatch["delivery"] = {**FAST, "rateCap": {"perMinute": 100_000, "burst": 5000},
                            "concurrency": 16}  # fmt: skip
    write_config(config, [acct], regwatch)
    ci.wait_for(5000, timeout=180)
    time.sleep(1)
    keys = [r.header("Idempotency-Key") for r in ci.requests]
    assert len(keys) == len(set(keys)) == 5000
    received = {(_content(r.json())["repository"], _content(r.json())["tag"]) for r in ci.requests}
    assert received == {(repo, tag) for repo in repos for tag in tags}
    assert running.get("/events", limit=1)["outbox"]["pending"] == {}
    assert running.stop() == 0
