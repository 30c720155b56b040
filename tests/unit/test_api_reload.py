"""Hot reload (regwatch.indexer.reload): which accounts a config asks for, last good versions,
and the file watcher (on a temporary file)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from regwatch.errors import ConfigError
from regwatch.indexer.reload import (
    ConfigSnapshot,
    ConfigWatcher,
    load_snapshot,
    snapshot_from_bytes,
)

HEADER = """\
currentDeployment: default
deploymentConfigurations:
- name: default
  providers:
    dockerRegistry:
      enabled: {enabled}
      {primary}
      accounts:
"""


def config_text(*accounts: str, enabled: bool = True, primary: str | None = None) -> str:
    head = HEADER.format(
        enabled=str(enabled).lower(), primary=f"primaryAccount: {primary}" if primary else ""
    )
    return head + "".join(f"      - {a}\n" for a in accounts)


def snap(text: str, previous: ConfigSnapshot | None = None) -> ConfigSnapshot:
    return snapshot_from_bytes(Path("/cfg"), text.encode(), previous, environ={})


HUB = "{name: hub, address: 'https://index.docker.io', repositories: [library/nginx]}"
LOCAL = "{name: local, address: 'http://127.0.0.1:5000'}"


def test_the_accounts_of_the_current_deployment_in_file_order() -> None:
    accounts = snap(config_text(LOCAL, HUB, primary="hub")).accounts
    assert list(accounts.accounts) == ["local", "hub"]
    assert accounts.accounts["hub"].repositories == ["library/nginx"]
    assert (accounts.enabled, accounts.primary, dict(accounts.errors)) == (True, "hub", {})


def test_primary_defaults_to_the_first_account() -> None:
    assert snap(config_text(LOCAL, HUB)).accounts.primary == "local"
    assert snap(config_text(LOCAL, HUB, primary="gone")).accounts.primary == "local"
    assert snap(config_text()).accounts.primary is None


def test_a_disabled_provider_is_still_indexed_and_says_so() -> None:
    accounts = snap(config_text(LOCAL, enabled=False)).accounts
    assert accounts.enabled is False
    assert list(accounts.accounts) == ["local"]


def test_an_invalid_entry_is_reported_and_keeps_its_last_good_version() -> None:
    good = snap(config_text(LOCAL, HUB))
    broken = snap(
        config_text(
            "{name: local, address: 'http://127.0.0.1:5000', cacheIntervalSeconds: never}", HUB
        ),
        good,
    )
    assert broken.accounts.accounts["local"] == good.accounts.accounts["local"]
    assert "cacheIntervalSeconds" in broken.accounts.errors["local"]
    new_and_broken = snap(config_text(HUB, "{name: fresh, cacheThreads: 2}"), good)
    assert "fresh" not in new_and_broken.accounts.accounts
    assert "address" in new_and_broken.accounts.errors["fresh"]


def test_a_second_definition_of_a_name_is_reported_and_ignored() -> None:
    accounts = snap(config_text(LOCAL, "{name: local, address: 'http://127.0.0.1:6000'}")).accounts
    assert accounts.accounts["local"].address == "http://127.0.0.1:5000"
    assert "defined twice" in accounts.errors["local"]


@pytest.mark.parametrize(
    "text",
    [
        "currentDeployment: [unclosed",
        "- just\n- a list\n",
        "regwatch: {listen: {port: -1}}\n",
        "deploymentConfigurations: {name: default}\n",
    ],
)
def test_a_broken_file_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError):
        snap(text)


def test_a_missing_file_is_an_empty_config(tmp_path: Path) -> None:
    snapshot = load_snapshot(tmp_path / "none", environ={})
    assert dict(snapshot.accounts.accounts) == {}
    assert snapshot.digest == ""


class Recorder:
    def __init__(self) -> None:
        self.applied: list[ConfigSnapshot] = []
        self.errors: list[str] = []

    async def apply(self, snapshot: ConfigSnapshot) -> None:
        self.applied.append(snapshot)


def write(path: Path, text: str, *, bump: int) -> None:
    """Write and move the mtime on, as a later edit would (filesystems with coarse mtimes)."""
    path.write_text(text)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + bump * 1_000_000_000))


async def test_the_watcher_applies_each_change_and_keeps_the_last_good_on_errors(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config"
    write(path, config_text(LOCAL), bump=0)
    recorder = Recorder()
    watcher = ConfigWatcher(
        path,
        load_snapshot(path, environ={}),
        recorder.apply,
        environ={},
        on_error=lambda exc: recorder.errors.append(str(exc)),
    )
    assert await watcher.check() is False  # nothing changed
    write(path, config_text(LOCAL, HUB), bump=1)
    assert await watcher.check() is True
    assert list(recorder.applied[-1].accounts.accounts) == ["local", "hub"]
    write(path, config_text(LOCAL, HUB), bump=2)  # touched, same content: nothing to apply
    assert await watcher.check() is False
    write(path, "currentDeployment: [broken", bump=3)
    assert await watcher.check() is False
    assert watcher.error is not None
    assert "not valid YAML" in watcher.error
    assert recorder.errors == [watcher.error]
    assert list(watcher.current.accounts.accounts) == ["local", "hub"]  # last good kept
    path.unlink()
    assert await watcher.check() is False
    assert "disappeared" in (watcher.error or "")
    write(path, config_text(HUB), bump=4)
    assert await watcher.check() is True
    assert watcher.error is None
    assert list(watcher.current.accounts.accounts) == ["hub"]
    assert (len(recorder.applied), watcher.reloads) == (2, 2)


async def test_a_failing_apply_is_retried_at_the_next_poll(tmp_path: Path) -> None:
    path = tmp_path / "config"
    write(path, config_text(LOCAL), bump=0)
    calls: list[ConfigSnapshot] = []

    async def flaky(snapshot: ConfigSnapshot) -> None:
        calls.append(snapshot)
        if len(calls) == 1:
            raise RuntimeError("store unavailable")

    watcher = ConfigWatcher(path, load_snapshot(path, environ={}), flaky, environ={})
    write(path, config_text(HUB), bump=1)
    with pytest.raises(RuntimeError):
        await watcher.check()
    assert list(watcher.current.accounts.accounts) == ["local"]
    assert await watcher.check() is True
    assert list(watcher.current.accounts.accounts) == ["hub"]
    assert len(calls) == 2
