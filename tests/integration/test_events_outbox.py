"""The outbox worker against a real store and a real webhook receiver on 127.0.0.1: signed,
exactly-once-per-attempt-success delivery, retries with backoff, dead letters, order per
repository, trigger skips, crashed dispatchers, and a burst held by the rate cap."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import generate_latest

from harness.webhook_receiver import WebhookReceiver
from regwatch.config.settings import ServiceSettings, parse_settings
from regwatch.events.metrics import EventMetrics
from regwatch.events.outbox import OutboxWorker
from regwatch.events.views import outbox_json
from regwatch.store import TAG_ADDED, AsyncStore, StagedTag, Store
from regwatch.store.push import PushOutcome

SECRET = "wh-s3cret"
DIGEST = "sha256:" + "d" * 64


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    hook = WebhookReceiver().start()
    yield hook
    hook.stop()


class Config:
    """Settings the worker reads on every use (so a test can change them, as a reload would)."""

    def __init__(self, receiver: WebhookReceiver, **regwatch: Any) -> None:
        self.receiver = receiver
        self.set(**regwatch)

    def set(self, **regwatch: Any) -> None:
        delivery = {"retryBaseSeconds": 0.05, "retryMaxSeconds": 0.2, "timeoutSeconds": 2,
                    "leaseSeconds": 3, **regwatch.pop("delivery", {})}  # fmt: skip
        webhooks = regwatch.pop(
            "webhooks", [{"name": "ci", "url": self.receiver.url, "secret": SECRET}]
        )
        data = {"webhooks": webhooks, "delivery": delivery, **regwatch}
        self.settings = parse_settings(data, environ={})

    def __call__(self) -> ServiceSettings:
        return self.settings


@contextlib.asynccontextmanager
async def running(worker: OutboxWorker) -> AsyncIterator[OutboxWorker]:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def make_worker(astore: AsyncStore, config: Config, **kwargs: Any) -> OutboxWorker:
    return OutboxWorker(astore, config, holder="w1", poll_interval=0.1, **kwargs)


def push(store: Store, config: Config, tag: str, repo: str = "app") -> PushOutcome:
    return store.record_push(
        "hub", "reg.example", repo, StagedTag(tag, digest=DIGEST, metadata=False),
        track_digests=False, sinks=config().sink_names(),
    )  # fmt: skip


def deliveries(store: Store, event_id: str | None) -> list[tuple[str, str, int]]:
    assert event_id is not None
    view = store.find_event(event_id)
    assert view is not None
    return [(d.sink, d.status, d.attempts) for d in view.deliveries]


async def until(check: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_an_event_is_delivered_once_signed_with_its_id_as_idempotency_key(
    astore: AsyncStore, receiver: WebhookReceiver
) -> None:
    config = Config(receiver)
    outcome = push(astore.store, config, "v1")
    async with running(make_worker(astore, config)):
        (request,) = await receiver.wait_for_async(1)
        await asyncio.sleep(0.5)  # and nothing more arrives
    assert len(receiver.requests) == 1
    expected = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.header("X-Regwatch-Signature") == f"sha256={expected}"
    assert request.header("Idempotency-Key") == outcome.event_id
    assert request.header("Content-Type") == "application/json"
    payload = request.json()
    assert payload["details"]["source"] == "regwatch"
    assert payload["content"] == {
        "account": "hub", "registry": "reg.example", "repository": "app", "tag": "v1",
        "digest": DIGEST,
    }  # fmt: skip
    assert payload["id"] == outcome.event_id
    assert SECRET not in request.body.decode()
    assert deliveries(astore.store, outcome.event_id) == [("ci", "delivered", 1)]


async def test_a_failing_receiver_is_retried_with_backoff_until_delivered_once(
    astore: AsyncStore, receiver: WebhookReceiver
) -> None:
    config = Config(receiver)
    receiver.fail(3, status=503)
    outcome = push(astore.store, config, "v1")
    async with running(make_worker(astore, config)):
        await receiver.wait_for_async(1)
        await asyncio.sleep(0.3)
    assert [r.status for r in receiver.requests] == [503, 503, 503, 200]
    assert {r.header("Idempotency-Key") for r in receiver.requests} == {outcome.event_id}
    assert [r.header("X-Regwatch-Attempt") for r in receiver.requests] == ["1", "2", "3", "4"]
    gaps = [b.at - a.at for a, b in zip(receiver.requests, receiver.requests[1:], strict=False)]
    assert all(gap >= 0.02 for gap in gaps)  # waited (jittered 0.025-0.2 s), did not hammer
    assert deliveries(astore.store, outcome.event_id) == [("ci", "delivered", 4)]


async def test_a_receiver_down_for_several_retries_then_up_gets_the_event_once(
    astore: AsyncStore, receiver: WebhookReceiver
) -> None:
    config = Config(receiver)
    receiver.down()
    outcome = push(astore.store, config, "v1")
    async with running(make_worker(astore, config)):
        await until(lambda: deliveries(astore.store, outcome.event_id)[0][2] >= 3)
        view = astore.store.find_event(outcome.event_id or "")
        assert view is not None
        assert "cannot connect to 127.0.0.1" in (view.deliveries[0].last_error or "")
        assert receiver.url not in (view.deliveries[0].last_error or "")
        receiver.up()
        await receiver.wait_for_async(1)
        await asyncio.sleep(0.3)
    assert len(receiver.requests) == 1
    assert deliveries(astore.store, outcome.event_id)[0][:2] == ("ci", "delivered")


async def test_a_permanent_refusal_is_dead_lettered_and_can_be_redelivered(
    astore: AsyncStore, receiver: WebhookReceiver
) -> None:
    config = Config(receiver)
    receiver.fail(1, status=410)
    outcome = push(astore.store, config, "v1")
    async with running(make_worker(astore, config)) as worker:
        await until(lambda: deliveries(astore.store, outcome.event_id) == [("ci", "dead", 1)])
        view = astore.store.find_event(outcome.event_id or "")
        assert view is not None
        assert "HTTP 410" in (view.deliveries[0].last_error or "")
        astore.store.redeliver(view.event.seq, ["ci"])
        worker.wake()
        await receiver.wait_for_async(1)
    assert deliveries(astore.store, outcome.event_id) == [("ci", "delivered", 1)]


async def test_after_the_retry_window_a_delivery_is_dead_lettered(
    astore: AsyncStore, receiver: WebhookReceiver
) -> None:
    config = Config(receiver, delivery={"retryForHours": 0.2 / 3600})  # a 0.2 s window
    receiver.fail(100, status=502)
    outcome = push(astore.store, config, "v1")
    async with running(make_worker(astore, config)):
        await until(lambda: deliveries(astore.store, outcome.event_id)[0][1] == "dead")
    (_sink, _status, attempts) = deliveries(astore.store, outcome.event_id)[0]
    assert 2 <= attempts <= 6
    assert len(receiver.requests) == attempts


async def test_events_of_one_repository_arrive_in_order(
    astore: AsyncStore, receiver: WebhookReceiver
) -> None:
    config = Config(receiver, delivery={"concurrency": 8})
    receiver.hold(0.02)
    receiver.fail(2, status=503)  # the first two attempts fail: later events must wait
    for n in range(8):
        push(astore.store, config, f"a{n}", repo="a")
        push(astore.store, config, f"b{n}", repo="b")
    async with running(make_worker(astore, config)):
        await receiver.wait_for_async(16)
    tags = [r.json()["content"]["tag"] for r in receiver.delivered()]
    assert [t for t in tags if t.startswith("a")] == [f"a{n}" for n in range(8)]
    assert [t for t in tags if t.startswith("b")] == [f"b{n}" for n in range(8)]


async def test_triggers_decide_which_events_a_sink_receives(
    astore: AsyncStore, receiver: WebhookReceiver
) -> None:
    config = Config(
        receiver,
        triggers=[
            {"name": "any", "account": "hub", "repository": "app", "sink": "ci"},
            {"name": "rc", "account": "hub", "repository": "db", "tag": r"v\d+-rc", "sink": "ci"},
        ],
    )
    pushes = [("1.0", "app"), ("latest", "app"), ("v2-rc", "db"), ("v2", "db"), ("1.0", "web")]
    sent = [push(astore.store, config, tag, repo) for tag, repo in pushes]
    async with running(make_worker(astore, config)):
        await receiver.wait_for_async(2)
        await until(
            lambda: all(deliveries(astore.store, o.event_id)[0][1] != "pending" for o in sent)
        )
    received = sorted(r.json()["content"]["tag"] for r in receiver.delivered())
    assert received == ["1.0", "v2-rc"]
    statuses = [deliveries(astore.store, o.event_id)[0][1] for o in sent]
    assert statuses == ["delivered", "skipped", "delivered", "skipped", "skipped"]
    view = astore.store.find_event(sent[1].event_id or "")
    assert view is not None
    assert view.deliveries[0].last_error == "no trigger of sink 'ci' matches hub/app:latest"


async def test_cloudevents_format(astore: AsyncStore, receiver: WebhookReceiver) -> None:
    config = Config(
        receiver, webhooks=[{"name": "ce", "url": receiver.url, "format": "cloudevents"}]
    )
    outcome = push(astore.store, config, "v1")
    async with running(make_worker(astore, config)):
        (request,) = await receiver.wait_for_async(1)
    assert request.header("Content-Type") == "application/cloudevents+json; charset=utf-8"
    assert request.header("X-Regwatch-Signature") is None  # no secret configured
    body = request.json()
    assert (body["specversion"], body["id"], body["subject"]) == ("1.0", outcome.event_id, "app:v1")


async def test_a_crashed_dispatchers_deliveries_go_out_once_its_leases_expire(
    astore: AsyncStore, receiver: WebhookReceiver
) -> None:
    config = Config(receiver, delivery={"timeoutSeconds": 0.5, "leaseSeconds": 1})
    outcome = push(astore.store, config, "v1")
    lease = timedelta(seconds=2)
    assert astore.store.acquire_lease("outbox", "crashed", lease)  # it was dispatching...
    assert astore.store.claim_deliveries("crashed", lease=lease)  # ...and had claimed the event
    taken = time.monotonic()
    async with running(make_worker(astore, config)) as worker:
        await asyncio.sleep(taken + 1.0 - time.monotonic())  # half the crashed one's lease
        assert receiver.requests == []
        assert not worker.dispatching
        await receiver.wait_for_async(1, timeout=5)
        assert worker.dispatching
    assert deliveries(astore.store, outcome.event_id) == [("ci", "delivered", 2)]


async def test_a_burst_of_new_tags_is_held_by_the_rate_cap_not_lost(
    astore: AsyncStore, receiver: WebhookReceiver
) -> None:
    """The outbox worker alone, 1,000 events (tests/e2e/test_triggers_scan.py holds 5,000 back
    through `serve`, as issue 6 asks; this one runs on both stores)."""
    config = Config(
        receiver, delivery={"rateCap": {"perMinute": 600, "burst": 20}, "concurrency": 16}
    )
    store = astore.store
    store.ensure_account("hub", "reg.example")
    for r in range(10):  # 10 repositories x 100 new tags, recorded as scans record them
        scan = store.begin_repository_scan("hub", f"repo{r:02d}")
        store.stage_tags(scan, [StagedTag(f"v{t}", event=TAG_ADDED) for t in range(100)])
        store.finish_repository_scan(scan, sinks=["ci"])
    metrics = EventMetrics()
    worker = make_worker(astore, config, metrics=metrics, stats_interval=0.2)
    started = time.monotonic()
    async with running(worker):
        await receiver.wait_for_async(20, timeout=10)  # the burst goes out at once...
        await asyncio.sleep(2.0)
        sent = len(receiver.delivered())
        # ...then 10 a second at most since the worker started: held, not fired
        assert sent <= 20 + 10 * (time.monotonic() - started) + 10
        status = outbox_json(store.outbox_counts(), rate_caps=worker.rate_caps)
        (capped,) = status["rateCapped"]
        assert (capped["sink"], capped["account"], capped["perMinute"]) == ("ci", "hub", 600)
        assert capped["held"] >= 1000 - sent - 20
        text = generate_latest(metrics.registry).decode()
        assert 'regwatch_rate_cap_held{account="hub",sink="ci"}' in text
        assert 'regwatch_deliveries_total{outcome="held",sink="ci"}' in text
        assert store.outbox_counts().by_sink_status.get(("ci", "dead"), 0) == 0
        # the operator raises the cap (a config reload): the held events all go out, once each
        config.set(delivery={"rateCap": {"perMinute": 100_000, "burst": 1000}, "concurrency": 16})
        await receiver.wait_for_async(1000, timeout=60)
        await asyncio.sleep(0.3)
    ids = [r.header("Idempotency-Key") for r in receiver.requests]
    assert len(ids) == len(set(ids)) == 1000
    assert store.outbox_counts().by_sink_status == {}
    assert json.loads(receiver.requests[0].body)["content"]["account"] == "hub"
