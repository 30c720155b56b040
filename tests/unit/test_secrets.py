"""Credential sources: static, password file, password command, docker config and helpers."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import stat
from pathlib import Path

import pytest

from regwatch.config.secrets import (
    IDENTITY_TOKEN_USERNAME,
    DockerConfigCredentials,
    PasswordCommandCredentials,
    PasswordFileCredentials,
    StaticCredentials,
    credentials_from_options,
    server_key,
)
from regwatch.errors import ConfigError, CredentialError
from regwatch.models import Secret

JSON_KEY = json.dumps(
    {
        "type": "service_account",
        "project_id": "p",
        "private_key": "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
        "client_email": "x@p.iam.gserviceaccount.com",
    },
    indent=2,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_static() -> None:
    source = StaticCredentials("ci", Secret("pw"))
    creds = await source.get()
    assert creds is not None
    assert creds.username == "ci"
    assert creds.password.reveal() == "pw"
    source.invalidate()
    assert await source.get() is creds
    assert "pw" not in repr(source)
    assert "pw" not in repr(creds)


async def test_password_file_trailing_newline_is_trimmed(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text("  s3cret\n")
    creds = await PasswordFileCredentials("ci", path).get()
    assert creds is not None
    assert creds.password.reveal() == "s3cret"


async def test_password_file_multiline_json_key_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    path.write_text(JSON_KEY + "\n\n")
    creds = await PasswordFileCredentials("_json_key", path).get()
    assert creds is not None
    assert json.loads(creds.password.reveal())["client_email"] == "x@p.iam.gserviceaccount.com"
    assert creds.password.reveal() == JSON_KEY


async def test_password_file_is_re_read_when_it_changes_or_after_invalidate(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "pw"
    path.write_text("one")
    source = PasswordFileCredentials("ci", path, clock=clock)
    first = await source.get()
    path.write_text("two!")  # another size: a change even within the same mtime tick
    assert await source.get() is first  # checked at most once per interval
    clock.now += 1.5
    second = await source.get()
    assert second is not None
    assert second.password.reveal() == "two!"
    os.utime(path, ns=(0, 0))
    clock.now += 1.5
    third = await source.get()
    assert third is not None
    assert third.password.reveal() == "two!"
    source.invalidate()
    assert (await source.get()) is not third


@pytest.mark.parametrize(("content", "message"), [(None, "cannot read"), ("  \n", "is empty")])
async def test_password_file_errors(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "pw"
    if content is not None:
        path.write_text(content)
    with pytest.raises(CredentialError, match=message):
        await PasswordFileCredentials("ci", path).get()


def _counting_command(tmp_path: Path, output: str = "tok3n") -> tuple[str, Path]:
    counter = tmp_path / "runs"
    return f"echo run >> {counter}; printf '%s\\n' '{output}'", counter


def _runs(counter: Path) -> int:
    return len(counter.read_text().splitlines()) if counter.exists() else 0


async def test_password_command_is_cached_for_its_ttl(tmp_path: Path) -> None:
    clock = Clock()
    command, counter = _counting_command(tmp_path)
    source = PasswordCommandCredentials("AWS", command, ttl=100, clock=clock)
    first = await source.get()
    assert first is not None
    assert first.password.reveal() == "tok3n"
    clock.now = 99
    assert await source.get() is first
    assert _runs(counter) == 1
    clock.now = 100.5
    await source.get()
    assert _runs(counter) == 2


async def test_password_command_re_runs_after_invalidate(tmp_path: Path) -> None:
    command, counter = _counting_command(tmp_path)
    source = PasswordCommandCredentials("AWS", command)
    await source.get()
    await source.get()
    source.invalidate()
    await source.get()
    assert _runs(counter) == 2
    assert source.runs == 2


async def test_password_command_single_flight(tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    source = PasswordCommandCredentials("AWS", f"echo run >> {counter}; sleep 0.2; echo pw")
    results = await asyncio.gather(*(source.get() for _ in range(20)))
    assert _runs(counter) == 1
    assert all(r is results[0] for r in results)


async def test_password_command_pipeline_runs_in_bash(tmp_path: Path) -> None:
    encoded = base64.b64encode(b"AWS:ecr-token-123").decode()
    command = f"echo {encoded} | base64 -d | cut -d: -f2"
    creds = await PasswordCommandCredentials("AWS", command).get()
    assert creds is not None
    assert creds.password.reveal() == "ecr-token-123"


async def test_failing_password_command_shows_its_stderr_but_not_the_command() -> None:
    source = PasswordCommandCredentials(
        "AWS", "echo 'hunter2' >/dev/null; echo 'no creds' >&2; exit 3"
    )
    with pytest.raises(CredentialError) as info:
        await source.get()
    text = str(info.value)
    assert "no creds" in text
    assert "exit status 3" in text
    assert "hunter2" not in text
    assert "hunter2" not in repr(source)


async def test_password_command_printing_nothing_is_an_error() -> None:
    with pytest.raises(CredentialError, match="printed nothing"):
        await PasswordCommandCredentials("AWS", "true").get()


async def test_password_command_timeout() -> None:
    source = PasswordCommandCredentials("AWS", "sleep 5", timeout=0.3)
    with pytest.raises(CredentialError, match="did not finish"):
        await source.get()


def _auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def _write_config(tmp_path: Path, config: dict[str, object]) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


async def test_docker_config_auths_forms(tmp_path: Path) -> None:
    path = _write_config(tmp_path, {"auths": {
        "https://index.docker.io/v1/": {"auth": _auth("hubuser", "hub:pw")},
        "reg.example:5000": {"username": "u2", "password": "p2"},
        "http://other.example/v2/": {"auth": _auth("u3", "p3")},
        "token.example": {"auth": "", "identitytoken": "refresh-123"},
    }})  # fmt: skip
    hub = await DockerConfigCredentials("index.docker.io", path).get()
    assert hub is not None
    assert (hub.username, hub.password.reveal()) == ("hubuser", "hub:pw")
    via_alias = await DockerConfigCredentials("docker.io", path).get()
    assert via_alias == hub
    second = await DockerConfigCredentials("reg.example:5000", path).get()
    assert second is not None
    assert second.username == "u2"
    third = await DockerConfigCredentials("other.example", path).get()
    assert third is not None
    assert third.password.reveal() == "p3"
    token = await DockerConfigCredentials("token.example", path).get()
    assert token is not None
    assert token.username == IDENTITY_TOKEN_USERNAME
    assert token.password.reveal() == "refresh-123"


async def test_docker_config_without_entry_or_unreadable(tmp_path: Path) -> None:
    path = _write_config(tmp_path, {"auths": {"a.example": {"auth": _auth("u", "p")}}})
    with pytest.raises(CredentialError, match=r"no credentials for b\.example"):
        await DockerConfigCredentials("b.example", path).get()
    with pytest.raises(CredentialError, match="cannot read"):
        await DockerConfigCredentials("a.example", tmp_path / "missing.json").get()
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CredentialError, match="not valid JSON"):
        await DockerConfigCredentials("a.example", bad).get()


HELPER = """#!/usr/bin/env bash
# A fake docker credential helper: logs each call, answers for two servers.
read -r server
echo "$1 $server" >> "{log}"
case "$server" in
  helped.example|https://index.docker.io/v1/)
    printf '{{"ServerURL":"%s","Username":"helper-user","Secret":"helper-pw"}}' "$server" ;;
  broken.example) echo "helper exploded" >&2; exit 2 ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
"""


@pytest.fixture
def helper_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "helper.log"
    script = bin_dir / "docker-credential-test"
    script.write_text(HELPER.format(log=log))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


async def test_cred_helpers_per_registry(tmp_path: Path, helper_on_path: Path) -> None:
    path = _write_config(tmp_path, {"credHelpers": {"helped.example": "test"}, "auths": {}})
    source = DockerConfigCredentials("helped.example", path)
    creds = await source.get()
    assert creds is not None
    assert (creds.username, creds.password.reveal()) == (
        "helper-user",
        "helper-pw",
    )
    assert await source.get() is creds  # cached
    source.invalidate()
    await source.get()
    assert helper_on_path.read_text().splitlines() == ["get helped.example"] * 2


async def test_creds_store_then_auths_fallback(tmp_path: Path, helper_on_path: Path) -> None:
    path = _write_config(tmp_path, {
        "credsStore": "test",
        "auths": {"https://index.docker.io/v1/": {}, "plain.example": {"auth": _auth("u", "p")}},
    })  # fmt: skip
    hub = await DockerConfigCredentials("registry-1.docker.io", path).get()
    assert hub is not None
    assert hub.username == "helper-user"
    plain = await DockerConfigCredentials("plain.example", path).get()  # store has nothing
    assert plain is not None
    assert plain.username == "u"
    assert "get https://index.docker.io/v1/" in helper_on_path.read_text()


async def test_failing_or_missing_helper(tmp_path: Path, helper_on_path: Path) -> None:
    path = _write_config(tmp_path, {"credHelpers": {"broken.example": "test", "x.example": "nope"}})
    with pytest.raises(CredentialError, match="helper exploded"):
        await DockerConfigCredentials("broken.example", path).get()
    with pytest.raises(CredentialError, match="docker-credential-nope is not on PATH"):
        await DockerConfigCredentials("x.example", path).get()


def test_server_key() -> None:
    assert server_key("https://index.docker.io/v1/") == "index.docker.io"
    assert server_key("docker.io") == "index.docker.io"
    assert server_key("HTTP://Reg.Example:5000/v2/") == "reg.example:5000"


def test_credentials_from_options(tmp_path: Path) -> None:
    assert credentials_from_options(None, None, None, None, None, "r") is None
    assert credentials_from_options("user", None, None, None, None, "r") is None
    static = credentials_from_options("u", "p", None, None, None, "r")
    assert isinstance(static, StaticCredentials)
    secret = credentials_from_options("u", Secret("p"), None, None, None, "r")
    assert isinstance(secret, StaticCredentials)
    assert isinstance(
        credentials_from_options("u", None, str(tmp_path / "f"), None, None, "r"),
        PasswordFileCredentials,
    )
    assert isinstance(
        credentials_from_options("u", None, None, "echo x", None, "r"), PasswordCommandCredentials
    )
    docker = credentials_from_options(None, None, None, None, "~/.docker/config.json", "r:5000")
    assert isinstance(docker, DockerConfigCredentials)
    assert "~" not in str(docker.path)


def test_credentials_from_options_refuses_two_sources_and_a_password_without_user() -> None:
    with pytest.raises(ConfigError, match="password, passwordFile"):
        credentials_from_options("u", "p", "/f", None, None, "r")
    with pytest.raises(ConfigError, match="passwordCommand, dockerconfigFile"):
        credentials_from_options("u", None, None, "cmd", "/c.json", "r")
    with pytest.raises(ConfigError, match="without a username"):
        credentials_from_options(None, "p", None, None, None, "r")
