"""`regwatch scan`, `regwatch images find|tags` and `regwatch db status|upgrade` end to end
(in-process click runner, real registry, real store)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from harness import PASSWORD, ImagePusher, RegistryHandle, free_port
from regwatch.cli.main import cli

CLEAN_ENV = {"REGWATCH_STORE_URL": None, "REGWATCH_CONFIG": None}
WRONG_PASSWORD = "Wr0ng-S3cret-do-not-print"


def write_config(path: Path, store_url: str, accounts: list[dict[str, Any]]) -> str:
    """A halconfig file (JSON is YAML) with `accounts` and the store URL."""
    document = {
        "currentDeployment": "default",
        "deploymentConfigurations": [
            {"name": "default",
             "providers": {"dockerRegistry": {"enabled": True, "accounts": accounts}}},
        ],
        "regwatch": {"store": {"url": store_url}},
    }  # fmt: skip
    path.write_text(json.dumps(document))
    return str(path)


def run(*args: str, secrets: tuple[str, ...] = ()) -> Result:
    result = CliRunner().invoke(cli, list(args), env=CLEAN_ENV, catch_exceptions=False)
    for secret in (PASSWORD, WRONG_PASSWORD, *secrets):
        assert secret not in result.stdout
        assert secret not in result.stderr
    return result


@pytest.fixture
async def repos(registry_anonymous: RegistryHandle, unique_name: str) -> list[str]:
    names = [f"{unique_name}app", f"{unique_name}db"]
    async with ImagePusher(registry_anonymous) as pusher:
        for tag in ("1.2.0", "1.10.0", "1.9.0"):
            await pusher.push(names[0], tag)
        await pusher.push(names[1], "15")
    return names


@pytest.fixture
def config(
    tmp_path: Path, store_url: str, registry_anonymous: RegistryHandle, repos: list[str]
) -> str:
    account = {"name": "local", "address": registry_anonymous.url, "repositories": repos,
               "trackDigests": True}  # fmt: skip
    return write_config(tmp_path / "config", store_url, [account])


def test_scan_prints_a_summary_and_the_images_commands_read_the_store(
    config: str, repos: list[str], registry_anonymous: RegistryHandle
) -> None:
    result = run("scan", "--config", config)

    assert result.exit_code == 0, result.stderr
    header, row = result.stdout.splitlines()[:2]
    assert header.split()[:4] == ["ACCOUNT", "STATUS", "REPOSITORIES", "FAILED"]
    assert row.split()[:5] == ["local", "ok", "2/2", "0", "4"]
    assert "local: scanning 2 repositories" in result.stderr
    assert "local: ok in" in result.stderr

    found = run("images", "find", repos[0].split("/")[0], "--config", config, "--json")
    assert found.exit_code == 0
    images = json.loads(found.stdout)
    assert {i["tag"] for i in images} == {"1.2.0", "1.10.0", "1.9.0", "15"}
    assert all(i["digest"].startswith("sha256:") for i in images)
    assert images[0]["reference"].startswith(f"{registry_anonymous.host}/")

    table = run("images", "find", "--account", "local", "--repository", repos[0],
                "--count", "2", "--config", config)  # fmt: skip
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ACCOUNT", "IMAGE", "DIGEST", "CREATED"]
    assert len(lines) == 3
    assert "(first 2; --count N for more)" in table.stderr

    tags = run("images", "tags", "local", repos[0], "--sort", "semver", "--config", config)
    assert tags.stdout.splitlines() == ["1.2.0", "1.9.0", "1.10.0"]
    as_json = run("images", "tags", "local", repos[0], "--json", "--config", config)
    assert json.loads(as_json.stdout)["tags"] == ["1.10.0", "1.2.0", "1.9.0"]


def test_scan_json_prints_the_run_records(config: str) -> None:
    result = run("scan", "local", "--json", "--config", config)

    assert result.exit_code == 0
    [record] = json.loads(result.stdout)
    assert record["account"] == "local"
    assert record["status"] == "ok"
    assert (record["repositoriesOk"], record["tagsAdded"]) == (2, 4)
    assert record["runId"] >= 1
    assert record["requests"] == 1 + 2 + 4  # probe, two tags/list, a HEAD per tag


def test_partial_failure_warns_and_total_failure_exits_1(
    tmp_path: Path, store_url: str, registry_anonymous: RegistryHandle, repos: list[str]
) -> None:
    partial = {"name": "partial", "address": registry_anonymous.url,
               "repositories": [repos[0], "no/such-repo"]}  # fmt: skip
    dead = {"name": "dead", "address": f"http://127.0.0.1:{free_port()}"}
    config = write_config(tmp_path / "config", store_url, [partial, dead])

    result = run("scan", "--json", "--config", config)

    assert result.exit_code == 1
    runs = {r["account"]: r for r in json.loads(result.stdout)}
    assert runs["partial"]["status"] == "partial"
    assert runs["dead"]["status"] == "failed"
    assert "Warning: partial: no/such-repo: repository no/such-repo not found" in result.stderr
    assert "Error: dead: listing repositories failed" in result.stderr

    only_partial = run("scan", "partial", "--config", config)
    assert only_partial.exit_code == 0
    assert "Warning: partial: no/such-repo" in only_partial.stderr


def test_unknown_or_invalid_accounts_are_errors(
    tmp_path: Path, store_url: str, registry_anonymous: RegistryHandle, repos: list[str]
) -> None:
    good = {"name": "good", "address": registry_anonymous.url, "repositories": repos[:1]}
    bad = {"name": "Not_Valid", "address": registry_anonymous.url}
    config = write_config(tmp_path / "config", store_url, [good, bad])

    unknown = run("scan", "nope", "--config", config)
    assert unknown.exit_code == 1
    assert unknown.stderr.startswith("Error: unknown account 'nope' — configured accounts: good")

    everything = run("scan", "--config", config)
    assert everything.exit_code == 1  # the invalid entry is reported…
    assert "Error: account 'Not_Valid' is not valid" in everything.stderr
    assert everything.stdout.splitlines()[1].split()[:2] == ["good", "ok"]  # …the rest scanned

    for args in (("find", "--account", "nope"), ("tags", "nope", "x"), ("tags", "good", "x/y")):
        result = run("images", *args, "--config", config)
        assert result.exit_code == 1
        assert result.stderr.startswith("Error: ")
        assert " — " in result.stderr


def test_credentials_never_appear_in_output(
    tmp_path: Path, store_url: str, registry_basic: RegistryHandle, unique_name: str
) -> None:
    repo = f"{unique_name}private"
    account = {"name": "private", "address": registry_basic.url, "repositories": [repo],
               "username": registry_basic.username, "password": WRONG_PASSWORD}  # fmt: skip
    config = write_config(tmp_path / "config", store_url, [account])

    refused = run("scan", "--config", config)
    refused_json = run("scan", "--json", "--config", config)

    assert refused.exit_code == 1
    assert "denied" in refused.stderr or "refused" in refused.stderr
    assert json.loads(refused_json.stdout)[0]["status"] == "failed"


def test_db_status_and_upgrade(tmp_path: Path, empty_store_url: str) -> None:
    config = write_config(tmp_path / "config", empty_store_url, [])

    before = run("db", "status", "--config", config)
    assert before.exit_code == 1
    assert "run `regwatch db upgrade`" in before.stdout

    missing = run("images", "find", "--config", config)
    if empty_store_url.startswith("sqlite"):  # a missing file is not created by a read
        assert missing.exit_code == 1
        assert "does not exist yet" in missing.stderr

    upgraded = run("db", "upgrade", "--config", config)
    assert upgraded.exit_code == 0
    assert "upgraded from an empty database to" in upgraded.stdout

    after = run("db", "status", "--json", "--config", config)
    assert after.exit_code == 0
    status = json.loads(after.stdout)
    assert status["upToDate"] is True
    assert status["current"] == status["head"]
    assert run("db", "upgrade", "--config", config).stdout.startswith("store ")


def test_the_terminal_progress_bar_shows_repositories_tags_requests_and_errors() -> None:
    from datetime import UTC, datetime
    from io import StringIO

    from rich.console import Console

    from regwatch.cli.scan_cmd import BarProgress, _bar
    from regwatch.indexer import RepositoryResult, ScanRun

    out = StringIO()
    terminal = Console(file=out, force_terminal=True, width=160, color_system=None)
    with _bar(terminal) as bar:
        progress = BarProgress(bar, ["hub"])
        progress.account_started("hub", 3)
        progress.repository_done("hub", RepositoryResult("a/x", ok=True, tags=40), 41)
        progress.repository_done("hub", RepositoryResult("a/y", ok=False, error="boom"), 43)
        progress.account_error("hub", "listing repositories failed")
        now = datetime.now(UTC)
        progress.account_finished(ScanRun(
            run_id=1, account="hub", registry="r", started_at=now, finished_at=now,
            status="partial", requests=44, retries=0, rate_limited=0, token_fetches=0,
            repositories=3, repositories_ok=2, repositories_failed=1, tags=42, tags_added=0,
            tags_changed=0, tags_removed=0, events=0, tag_errors=0,
        ))  # fmt: skip
        task = bar.tasks[0]
        assert (task.completed, task.total) == (3, 3)
        assert task.fields == {"tags": 40, "requests": 44, "errors": 2}
    rendered = out.getvalue()
    assert "warning hub: listing repositories failed" in rendered
    assert "3/3" in rendered
