"""`regwatch registry ping|catalog|tags|manifest` against the real registry."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from harness import PASSWORD, PushedImage, RegistryHandle
from regwatch.cli.main import cli

Push = Callable[..., list[PushedImage]]


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(cli, ["registry", *args], env=env, catch_exceptions=False)
    for text in (result.stdout, result.stderr):
        assert PASSWORD not in text
    return result


def auth_args(handle: RegistryHandle, password: str | None = None) -> list[str]:
    args = ["--ca-cert", handle.ca_cert] if handle.ca_cert else []
    if handle.username:
        args += ["--username", handle.username, "--password", password or handle.password or ""]
    return args


@pytest.fixture
def pushed(registry_any: RegistryHandle, unique_name: str, push_images: Push) -> dict[str, str]:
    repo = f"{unique_name}cli"
    [image] = push_images(registry_any, repo, "v1", labels={"team": "core"})
    [index] = push_images(registry_any, repo, "multi", kind="docker-list")
    return {"repo": repo, "digest": image.digest, "config": image.config_digest or "",
            "index": index.digest}  # fmt: skip


def test_ping_tags_catalog_plain(registry_any: RegistryHandle, pushed: dict[str, str]) -> None:
    ping = run("ping", registry_any.url, *auth_args(registry_any))
    assert ping.exit_code == 0
    assert ping.stdout.startswith(f"OK {registry_any.host} (auth: ")

    tags = run("tags", registry_any.url, pushed["repo"], *auth_args(registry_any))
    assert tags.exit_code == 0
    assert sorted(tags.stdout.splitlines()) == ["multi", "v1"]

    catalog = run("catalog", registry_any.url, "--page-size", "2", *auth_args(registry_any))
    assert catalog.exit_code == 0
    assert pushed["repo"] in catalog.stdout.splitlines()


def test_manifest_plain_and_json(registry_any: RegistryHandle, pushed: dict[str, str]) -> None:
    args = auth_args(registry_any)
    plain = run("manifest", registry_any.url, pushed["repo"], "v1", *args)
    assert plain.exit_code == 0
    lines = plain.stdout.splitlines()
    assert lines[0] == f"digest {pushed['digest']}"
    assert f"config {pushed['config']}" in lines
    assert "label team=core" in lines

    as_json = run("manifest", registry_any.url, pushed["repo"], "multi", "--json", *args)
    assert as_json.exit_code == 0
    document = json.loads(as_json.stdout)
    assert document["digest"] == pushed["index"]
    assert [p["architecture"] for p in document["platforms"]] == ["amd64", "arm64"]

    tags = json.loads(run("tags", registry_any.url, pushed["repo"], "--json", *args).stdout)
    assert tags["repository"] == pushed["repo"]
    assert sorted(tags["tags"]) == ["multi", "v1"]


@pytest.mark.parametrize("mode", ["basic", "token"])
def test_wrong_password_is_one_error_line_without_the_password(
    mode: str, request: pytest.FixtureRequest
) -> None:
    handle: RegistryHandle = request.getfixturevalue(f"registry_{mode}")
    wrong = PASSWORD + "-wrong"
    result = run("ping", handle.url, *auth_args(handle, wrong))
    assert result.exit_code == 1
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: ")
    assert " — " in line
    assert "check the username and password" in line
    assert wrong not in result.stderr


def test_missing_repository_error(registry_anonymous: RegistryHandle, unique_name: str) -> None:
    result = run("tags", registry_anonymous.url, f"{unique_name}nothing")
    assert result.exit_code == 1
    assert f"repository {unique_name}nothing not found" in result.stderr


def test_tls_error_hints_at_ca_cert(registry_anonymous_tls: RegistryHandle) -> None:
    result = run("ping", registry_anonymous_tls.url)
    assert result.exit_code == 1
    assert "--ca-cert" in result.stderr
    insecure = run("ping", registry_anonymous_tls.url, "--insecure-registry")
    assert insecure.exit_code == 0


def test_password_file_and_env_password(
    tmp_path: Path, registry_basic: RegistryHandle, pushed_basic: str
) -> None:
    path = tmp_path / "pw"
    path.write_text(PASSWORD + "\n")
    user = ["--username", registry_basic.username or ""]
    from_file = run("tags", registry_basic.url, pushed_basic, *user, "--password-file", str(path))
    assert from_file.stdout.splitlines() == ["v1"]
    from_env = run(
        "tags",
        registry_basic.url,
        pushed_basic,
        *user,
        env={"REGWATCH_REGISTRY_PASSWORD": PASSWORD},
    )
    assert from_env.stdout.splitlines() == ["v1"]


@pytest.fixture
def pushed_basic(registry_basic: RegistryHandle, unique_name: str, push_images: Push) -> str:
    repo = f"{unique_name}basiccli"
    push_images(registry_basic, repo, "v1")
    return repo


def test_failing_password_command_shows_its_stderr(registry_basic: RegistryHandle) -> None:
    command = "echo 'token expired, run aws sso login' >&2; exit 255"
    result = run("ping", registry_basic.url, "--username", "AWS", "--password-command", command)
    assert result.exit_code == 1
    assert "aws sso login" in result.stderr
    assert "exit status 255" in result.stderr


def test_usage_errors_exit_2(registry_anonymous: RegistryHandle) -> None:
    two_sources = run("ping", registry_anonymous.url, "--username", "u", "--password", "p",
                      "--password-command", "echo p")  # fmt: skip
    assert two_sources.exit_code == 1
    assert "more than one password source" in two_sources.stderr
    assert run("tags", registry_anonymous.url).exit_code == 2  # missing REPOSITORY
    assert run("ping", "ftp://x").exit_code == 1


def test_real_process_exit_code_and_streams(registry_basic: RegistryHandle) -> None:
    """The installed console script: stderr for the error, nothing on stdout, exit 1."""
    regwatch = Path(sys.executable).with_name("regwatch")
    wrong = PASSWORD + "x"
    proc = subprocess.run(
        [str(regwatch), "registry", "ping", registry_basic.url,
         "--username", registry_basic.username or "", "--password", wrong],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.startswith("Error: registry ")
    assert "Traceback" not in proc.stderr
    assert wrong not in proc.stderr
