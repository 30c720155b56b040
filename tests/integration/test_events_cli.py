"""`regwatch events list|show|redeliver` on a real store."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from regwatch.cli.main import cli
from regwatch.store import StagedTag, Store, open_store

DIGEST = "sha256:" + "e" * 64


@pytest.fixture
def config(tmp_path: Path, store_url: str) -> Path:
    path = tmp_path / "config"
    path.write_text(
        "regwatch:\n"
        f"  store: {{url: '{store_url}'}}\n"
        "  echoUrl: http://127.0.0.1:9/\n"
        "  webhooks: [{name: ci, url: 'http://127.0.0.1:9/hook', secret: hunter2}]\n"
    )
    return path


@pytest.fixture
def store(store_url: str) -> Store:
    opened = open_store(store_url)
    for tag in ("v1", "v2"):
        opened.record_push(
            "hub", "reg.example", "team/app", StagedTag(tag, digest=DIGEST, metadata=False),
            track_digests=False, sinks=["echo", "ci"],
        )  # fmt: skip
    return opened


def run(config: Path, *args: str) -> Result:
    result = CliRunner().invoke(cli, ["events", *args, "--config", str(config)])
    assert "hunter2" not in result.output
    return result


def test_list_and_show(config: Path, store: Store) -> None:
    listed = run(config, "list")
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert "reg.example/team/app:v2" in lines[1]  # newest first
    assert "echo:pending" in lines[1]
    assert "ci:pending" in lines[1]
    assert "outbox: 4 pending, 0 dead-lettered" in listed.output
    document = json.loads(run(config, "list", "--json", "--limit", "1").output)
    (event,) = document["events"]
    assert (event["tag"], event["digest"], event["kind"]) == ("v2", DIGEST, "tag_added")
    assert document["outbox"]["pending"] == {"ci": 2, "echo": 2}
    shown = run(config, "show", event["id"])
    assert shown.exit_code == 0, shown.output
    assert f"event {event['id']} (seq {event['seq']}): tag_added" in shown.output
    assert "→ ci:pending, 0 attempt(s)" in shown.output
    by_seq = json.loads(run(config, "show", str(event["seq"]), "--json").output)
    assert by_seq["id"] == event["id"]


def test_redeliver(config: Path, store: Store) -> None:
    for delivery in store.claim_next_deliveries("w", lease=timedelta(seconds=30)):
        store.fail_delivery(delivery.id, "w", "HTTP 410 Gone", retry_at=None)
    seq = store.events()[0].seq
    shown = run(config, "show", str(seq))
    assert "ci:dead" in shown.output
    assert "HTTP 410 Gone" in shown.output
    queued = run(config, "redeliver", str(seq), "--sink", "ci")
    assert queued.exit_code == 0, queued.output
    view = store.find_event(str(seq))
    assert view is not None
    assert {(d.sink, d.status) for d in view.deliveries} == {("ci", "pending"), ("echo", "dead")}
    everything = run(config, "redeliver", str(seq))
    assert "again for ci, echo (2)." in everything.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "nope"], "Error: no event 'nope'"),
        (["redeliver", "nope"], "Error: no event 'nope'"),
        (["redeliver", "1", "--sink", "gone"], "Error: sink 'gone' is not configured"),
    ],
)
def test_errors(config: Path, store: Store, args: list[str], message: str) -> None:
    result = run(config, *args)
    assert result.exit_code == 1
    assert result.output.startswith(message)
