"""The config file: Halyard files read as is, round trips, atomic locked writes, clear errors."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from regwatch.config import yamlfile
from regwatch.config.halconfig import (
    HalConfig,
    edit_config,
    load_config,
    resolve_config_path,
)
from regwatch.config.model import parse_account
from regwatch.errors import ConfigError

HALYARD_FILE = """\
# written by Halyard
currentDeployment: default
deploymentConfigurations:
- name: default
  version: 1.30.0   # pinned on purpose
  providers:
    kubernetes:
      enabled: false
      accounts: []
    dockerRegistry:
      enabled: true
      accounts:
      - name: my-docker-registry
        requiredGroupMembership: []
        providerVersion: V1
        permissions: {}
        address: https://index.docker.io
        username: bob
        password: 'p@ss: word'   # keep me
        email: fake.email@spinnaker.io
        cacheIntervalSeconds: 30
        clientTimeoutMillis: 60000
        cacheThreads: 1
        paginateSize: 100
        sortTagsByDate: false
        trackDigests: false
        insecureRegistry: false
        repositories:
        - library/nginx
      primaryAccount: my-docker-registry
  security:
    authn: {enabled: false}
regwatch:
  store: {url: 'sqlite:////var/lib/regwatch.db'}
  futureSetting: 42
"""


@pytest.fixture
def hal_file(tmp_path: Path) -> Path:
    path = tmp_path / "config"
    path.write_text(HALYARD_FILE)
    return path


def new_account(name: str, **extra: object):  # type: ignore[no-untyped-def]
    return parse_account({"name": name, "address": "registry.example.com", **extra})


def test_a_halyard_file_loads_as_is(hal_file: Path) -> None:
    config = load_config(hal_file)
    provider = config.provider()
    assert provider.enabled
    assert provider.primary_account == "my-docker-registry"
    (hub,) = provider.accounts
    assert hub.address == "https://index.docker.io"
    assert hub.repositories == ["library/nginx"]
    assert hub.password is not None
    assert hub.password.reveal() == "p@ss: word"
    assert hub.model_extra == {"providerVersion": "V1"}
    assert config.settings(environ={}).store.url == "sqlite:////var/lib/regwatch.db"


def test_an_untouched_round_trip_is_byte_for_byte(hal_file: Path) -> None:
    with edit_config(hal_file) as config:
        config.account("my-docker-registry")
    assert hal_file.read_text() == HALYARD_FILE
    assert load_config(hal_file).render() == HALYARD_FILE


def test_editing_one_key_keeps_comments_order_and_unknown_keys(hal_file: Path) -> None:
    with edit_config(hal_file) as config:
        hub = config.account("my-docker-registry")
        changed = parse_account({**hub.to_document(full=True), "cacheThreads": 4})
        config.update_account(changed)
    expected = HALYARD_FILE.replace("cacheThreads: 1", "cacheThreads: 4")
    assert hal_file.read_text() == expected


def test_a_new_key_lands_in_field_order_and_a_cleared_one_goes(hal_file: Path) -> None:
    with edit_config(hal_file) as config:
        hub = config.account("my-docker-registry").to_document(full=True)
        hub.pop("email")
        config.update_account(parse_account({**hub, "trackDigests": True, "skip": ["a/b"]}))
    text = hal_file.read_text()
    assert "email:" not in text
    assert "trackDigests: true" in text
    assert text.index("repositories:") < text.index("skip:")
    assert "# keep me" in text
    assert "providerVersion: V1" in text
    assert "futureSetting: 42" in text


def test_a_new_file_gets_the_halconfig_shape_and_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "config"
    with edit_config(path) as config:
        config.set_enabled(True)
        config.add_account(new_account("first"))
        config.add_account(new_account("second"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_config(path)
    assert again.root["currentDeployment"] == "default"
    assert [a.name for a in again.accounts()] == ["first", "second"]
    assert again.provider().primary_account == "first"


def test_primary_account_is_kept_right_on_delete(tmp_path: Path) -> None:
    path = tmp_path / "config"
    with edit_config(path) as config:
        for name in ("a", "b", "c"):
            config.add_account(new_account(name))
    with edit_config(path) as config:
        config.delete_account("a")
    assert load_config(path).provider().primary_account == "b"
    with edit_config(path) as config:
        config.delete_account("c")
        config.delete_account("b")
    assert load_config(path).provider().primary_account is None
    with edit_config(path) as config:
        config.add_account(new_account("d"))
    assert load_config(path).provider().primary_account == "d"


def test_unknown_and_duplicate_accounts(hal_file: Path) -> None:
    config = load_config(hal_file)
    with pytest.raises(ConfigError, match="account 'nope' does not exist") as caught:
        config.account("nope")
    assert caught.value.hint is not None
    assert "my-docker-registry" in caught.value.hint
    with pytest.raises(ConfigError, match="already exists"):
        config.add_account(new_account("my-docker-registry"))


def test_the_file_mode_is_kept(hal_file: Path) -> None:
    hal_file.chmod(0o640)
    with edit_config(hal_file) as config:
        config.set_enabled(False)
    assert stat.S_IMODE(hal_file.stat().st_mode) == 0o640


def test_writes_go_through_a_symlink(tmp_path: Path, hal_file: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(hal_file)
    with edit_config(link) as config:
        config.set_enabled(False)
    assert link.is_symlink()
    assert "enabled: false" in hal_file.read_text().split("dockerRegistry:")[1]


def test_deployments(hal_file: Path) -> None:
    config = load_config(hal_file)
    assert config.current_deployment == "default"
    assert config.deployment_names() == ["default"]
    with pytest.raises(ConfigError, match="no deployment 'staging'") as caught:
        config.provider("staging")
    assert caught.value.hint is not None
    assert "default" in caught.value.hint


def test_path_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("REGWATCH_CONFIG", raising=False)
    assert resolve_config_path() == tmp_path / ".regwatch" / "config"
    monkeypatch.setenv("REGWATCH_CONFIG", "~/elsewhere.yml")
    assert resolve_config_path() == tmp_path / "elsewhere.yml"
    assert resolve_config_path("/explicit") == Path("/explicit")


def test_a_missing_file_reads_as_empty(tmp_path: Path) -> None:
    config = load_config(tmp_path / "none")
    assert not config.exists
    assert config.accounts() == []
    assert not config.provider().enabled
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        (
            "currentDeployment: default\ndeploymentConfigurations:\n- name: x\n  bad: [1\n",
            5,
            "expected",
        ),
        ("a: 1\n  b: 2\n", 2, "mapping values are not allowed"),
        ("a:\n  password: s3cret\n  password: t0psecret\n", 3, "duplicate key 'password'"),
        ("password: *s3cret\n", 1, "undefined alias '…'"),
        ("- just\n- a list\n", 1, "must be a YAML mapping"),
    ],
)
def test_a_corrupt_file_is_a_clear_error_and_never_overwritten(
    tmp_path: Path, text: str, line: int, problem: str
) -> None:
    path = tmp_path / "config"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught, edit_config(path) as config:
        config.set_enabled(True)
    message = str(caught.value)
    assert f"{path}:{line}:" in message
    assert problem in message
    assert "s3cret" not in message
    assert "t0psecret" not in message
    assert "\n" not in message
    assert path.read_text() == text


def test_a_half_written_account_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "config"
    text = HALYARD_FILE.split("        email:")[0].replace(
        "        address: https://index.docker.io\n", ""
    )
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path).accounts()
    assert f"{path}:13: account 'my-docker-registry': address: is required" in str(caught.value)


def test_non_utf8_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_bytes(b"a: 1\nb: \xff\xfe\n")
    with pytest.raises(ConfigError, match=r":2: the config file is not UTF-8"):
        load_config(path)


def test_a_failed_write_leaves_the_file_and_no_temp(
    hal_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(src: str, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(yamlfile.os, "replace", refuse)
    with (
        pytest.raises(ConfigError, match=r"cannot write config file .*No space left"),
        edit_config(hal_file) as config,
    ):
        config.set_enabled(False)
    assert hal_file.read_text() == HALYARD_FILE
    assert sorted(p.name for p in hal_file.parent.iterdir()) == ["config", "config.lock"]


def test_an_unwritable_location_is_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with (
        pytest.raises(ConfigError, match="cannot write config file"),
        edit_config(blocker / "config") as config,
    ):
        config.set_enabled(True)


def test_a_held_lock_times_out_with_a_hint(hal_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlfile, "LOCK_TIMEOUT_SECONDS", 0.2)
    with yamlfile.locked(hal_file), pytest.raises(ConfigError, match="is locked") as caught:
        yamlfile.locked(hal_file, timeout=0.2).__enter__()
    assert caught.value.hint is not None
    assert "config.lock" in caught.value.hint


def test_concurrent_transactions_do_not_lose_updates(tmp_path: Path) -> None:
    path = tmp_path / "config"
    names = [f"acct{i}" for i in range(12)]
    barrier = threading.Barrier(len(names))
    errors: list[BaseException] = []

    def add(name: str) -> None:
        try:
            barrier.wait()
            with edit_config(path) as config:
                config.add_account(new_account(name))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(n,)) for n in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(a.name for a in load_config(path).accounts()) == sorted(names)


def test_settings_model_and_env_overrides(hal_file: Path) -> None:
    config: HalConfig = load_config(hal_file)
    settings = config.settings(environ={"REGWATCH_LISTEN_PORT": "8000"})
    assert settings.listen.port == 8000
    assert settings.listen.host == "127.0.0.1"
    assert settings.model_extra == {"futureSetting": 42}
    with pytest.raises(ConfigError, match=r"regwatch settings: listen.port"):
        config.settings(environ={"REGWATCH_LISTEN_PORT": "99999"})


def test_render_of_an_empty_config_is_empty(tmp_path: Path) -> None:
    assert load_config(tmp_path / "x").render() == ""
    assert os.listdir(tmp_path) == []


def test_accounts_go_to_the_chosen_deployment(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(
        "currentDeployment: staging\n"
        "deploymentConfigurations:\n"
        "- name: default\n  providers: {}\n"
        "- name: staging\n  providers: {}\n"
    )
    with edit_config(path) as config:
        config.add_account(new_account("current"))
        config.add_account(new_account("chosen"), "default")
    config = load_config(path)
    assert [a.name for a in config.accounts()] == ["current"]
    assert [a.name for a in config.accounts("staging")] == ["current"]
    assert [a.name for a in config.accounts("default")] == ["chosen"]
