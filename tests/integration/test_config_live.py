"""The config commands against real registries: every auth mode, HTTP and TLS, validation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from harness import RegistryHandle, push_images, run_pusher
from regwatch.cli.main import cli

ACCOUNT = ["config", "provider", "docker-registry", "account"]
REGWATCH = str(Path(sys.executable).with_name("regwatch"))


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    return tmp_path / "config"


def run(
    config_file: Path, *args: str, secret: str | None = None, stdin: str | None = None
) -> Result:
    result = CliRunner().invoke(cli, [*args, "--config", str(config_file)], input=stdin)
    if secret:
        assert secret not in result.output
        assert secret not in result.stderr
    return result


def credentials(handle: RegistryHandle, *, tls_trust: bool = True) -> list[str]:
    """The flags that let an account reach `handle`: credentials and, over TLS, its CA."""
    args: list[str] = []
    if handle.username is not None and handle.password is not None:
        args += ["--username", handle.username, "--password", handle.password]
    if handle.ca_cert and tls_trust:
        args += ["--ca-cert", handle.ca_cert]
    return args


def add(config_file: Path, handle: RegistryHandle, name: str, *args: str, **kw: object) -> Result:
    return run(
        config_file,
        *ACCOUNT,
        "add",
        name,
        "--address",
        handle.url,
        *args,
        secret=handle.password,
        **kw,  # type: ignore[arg-type]
    )


def get(config_file: Path, name: str) -> dict[str, object]:
    result = run(config_file, *ACCOUNT, "get", name, "--json")
    assert result.exit_code == 0, result.output
    data: dict[str, object] = json.loads(result.stdout)
    return data


@pytest.fixture
def repo(registry_any: RegistryHandle, unique_name: str) -> str:
    name = f"{unique_name}app"
    push_images(registry_any, name, ["v1", "v2"])
    return name


def test_add_with_repositories_validates_in_every_mode(
    registry_any: RegistryHandle, repo: str, config_file: Path
) -> None:
    result = add(
        config_file, registry_any, "acct", "--repositories", repo, *credentials(registry_any)
    )
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    data = get(config_file, "acct")
    assert data["address"] == registry_any.url
    assert data["repositories"] == [repo]
    assert data["password"] == ("********" if registry_any.password else None)
    assert data["caCert"] == registry_any.ca_cert


def test_add_with_catalog_discovery_in_every_mode(
    registry_any: RegistryHandle, repo: str, config_file: Path
) -> None:
    if registry_any.mode == "token" and registry_any.username is None:  # pragma: no cover
        pytest.fail("token registries always have a user")
    result = add(config_file, registry_any, "acct", *credentials(registry_any))
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert get(config_file, "acct")["repositories"] == []


def test_a_missing_repository_is_an_error_naming_it(
    registry_any: RegistryHandle, repo: str, config_file: Path
) -> None:
    missing = repo + "-missing"
    result = add(
        config_file,
        registry_any,
        "acct",
        "--repositories",
        repo,
        missing,
        *credentials(registry_any),
    )
    assert result.exit_code == 1
    assert f"Error: repository '{missing}' does not exist on {registry_any.host}" in result.stderr
    assert "Error: account 'acct' was not saved — " in result.stderr
    assert repo + "'" not in result.stderr.replace(missing, "")
    assert not config_file.exists()


def test_edit_is_validated_and_an_error_leaves_the_file(
    registry_any: RegistryHandle, repo: str, config_file: Path
) -> None:
    assert (
        add(
            config_file, registry_any, "acct", "--repositories", repo, *credentials(registry_any)
        ).exit_code
        == 0
    )
    before = config_file.read_bytes()
    result = run(config_file, *ACCOUNT, "edit", "acct", "--add-repository", "no/such-repo")
    assert result.exit_code == 1
    assert "repository 'no/such-repo' does not exist" in result.stderr
    assert config_file.read_bytes() == before
    result = run(config_file, *ACCOUNT, "edit", "acct", "--track-digests", "--cache-threads", "2")
    assert result.exit_code == 0, result.output
    assert (get(config_file, "acct")["trackDigests"], get(config_file, "acct")["cacheThreads"]) == (
        True,
        2,
    )


def test_config_validate_reports_every_account(
    registry_any: RegistryHandle, repo: str, config_file: Path
) -> None:
    assert (
        add(
            config_file, registry_any, "good", "--repositories", repo, *credentials(registry_any)
        ).exit_code
        == 0
    )
    assert (
        add(
            config_file,
            registry_any,
            "bad",
            "--repositories",
            "no/such-repo",
            *credentials(registry_any),
            "--no-validate",
        ).exit_code
        == 0
    )
    result = run(config_file, "config", "validate")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == ["good: ok", "bad: 1 error"]
    assert "  Error: repository 'no/such-repo' does not exist" in result.stderr
    assert result.stderr.rstrip().endswith(
        "Error: validation found errors in account bad — fix them with "
        "`regwatch config provider docker-registry account edit`"
    )
    run(config_file, *ACCOUNT, "delete", "bad")
    assert run(config_file, "config", "validate").exit_code == 0


# --- TLS ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["anonymous", "basic", "token"])
def test_tls_without_the_ca_is_an_error_with_a_hint(
    mode: str, request: pytest.FixtureRequest, config_file: Path
) -> None:
    handle: RegistryHandle = request.getfixturevalue(f"registry_{mode}_tls")
    result = add(config_file, handle, "acct", *credentials(handle, tls_trust=False))
    assert result.exit_code == 1
    assert "TLS certificate verification failed" in result.stderr
    assert "--ca-cert FILE" in result.stderr
    assert not config_file.exists()


@pytest.mark.parametrize("mode", ["anonymous", "basic", "token"])
def test_tls_with_insecure_registry(
    mode: str, request: pytest.FixtureRequest, config_file: Path, unique_name: str
) -> None:
    handle: RegistryHandle = request.getfixturevalue(f"registry_{mode}_tls")
    push_images(handle, f"{unique_name}app", "v1")
    result = add(
        config_file,
        handle,
        "acct",
        "--insecure-registry",
        "--repositories",
        f"{unique_name}app",
        *credentials(handle, tls_trust=False),
    )
    assert result.exit_code == 0, result.output
    assert get(config_file, "acct")["insecureRegistry"] is True
    result = run(config_file, *ACCOUNT, "edit", "acct", "--insecure-registry", "false")
    assert result.exit_code == 1
    assert "--ca-cert" in result.stderr
    result = run(
        config_file,
        *ACCOUNT,
        "edit",
        "acct",
        "--insecure-registry=false",
        "--ca-cert",
        str(handle.ca_cert),
    )
    assert result.exit_code == 0, result.output


# --- credentials -------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["basic", "token"])
def test_a_wrong_password_is_refused_with_a_whitespace_hint(
    mode: str, request: pytest.FixtureRequest, config_file: Path
) -> None:
    handle: RegistryHandle = request.getfixturevalue(f"registry_{mode}")
    wrong = "Wr0ng-Secret-Value"
    result = add(
        config_file, handle, "acct", "--username", str(handle.username), "--password", wrong
    )
    assert wrong not in result.output
    assert wrong not in result.stderr
    assert result.exit_code == 1
    assert "refused the credentials" in result.stderr
    assert "whitespace" in result.stderr
    assert not config_file.exists()


@pytest.mark.parametrize("mode", ["basic", "token"])
def test_password_file_command_and_prompt(
    mode: str, request: pytest.FixtureRequest, config_file: Path, tmp_path: Path
) -> None:
    handle: RegistryHandle = request.getfixturevalue(f"registry_{mode}")
    password = str(handle.password)
    key = tmp_path / "password"
    key.write_text(password + "\n")  # a trailing newline, as editors write it
    user = ["--username", str(handle.username)]
    assert add(config_file, handle, "file", *user, "--password-file", str(key)).exit_code == 0
    command = f"cat {key}"
    assert add(config_file, handle, "cmd", *user, "--password-command", command).exit_code == 0
    result = add(config_file, handle, "prompt", *user, "--password", stdin=password + "\n")
    assert result.exit_code == 0, result.output
    key.write_text("not-it\n")
    result = run(config_file, *ACCOUNT, "edit", "file", "--email", "x@example.com", secret=password)
    assert result.exit_code == 1
    assert f"check the username and the password in {key}" in result.stderr
    assert "trailing newline" in result.stderr
    failing = "echo nope >&2; exit 4"
    result = run(config_file, *ACCOUNT, "edit", "cmd", "--password-command", failing)
    assert result.exit_code == 1
    assert "nope" in result.stderr
    assert get(config_file, "cmd")["passwordCommand"] == command


def test_a_registry_that_needs_credentials_says_so(
    registry_basic: RegistryHandle, config_file: Path
) -> None:
    result = add(config_file, registry_basic, "acct")
    assert result.exit_code == 1
    assert "requires credentials" in result.stderr
    assert "add --username and --password" in result.stderr


def test_a_refused_catalog_hints_at_repositories(
    registry_token: RegistryHandle, config_file: Path, unique_name: str
) -> None:
    push_images(registry_token, f"{unique_name}nginx", "1.25")
    assert registry_token.token_server is not None
    registry_token.token_server.allowed_actions = {"pull"}  # no catalog scope, as Docker Hub
    result = add(config_file, registry_token, "hub", *credentials(registry_token))
    assert result.exit_code == 1
    assert "refused to list its catalog" in result.stderr
    assert "Docker Hub" in result.stderr
    assert "--repositories" in result.stderr
    result = add(
        config_file,
        registry_token,
        "hub",
        "--repositories",
        f"{unique_name}nginx",
        *credentials(registry_token),
    )
    assert result.exit_code == 0, result.output


def test_repositories_without_tags_warn_and_save(
    registry_anonymous: RegistryHandle, config_file: Path, unique_name: str
) -> None:
    repo = f"{unique_name}emptied"
    (image,) = push_images(registry_anonymous, repo, "only")
    run_pusher(registry_anonymous, lambda pusher: pusher.delete(repo, image.digest))
    result = add(config_file, registry_anonymous, "acct", "--repositories", repo)
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(
        "Warning: none of the repositories of account 'acct' has any tag"
    )
    assert get(config_file, "acct")["repositories"] == [repo]


def test_regex_that_matches_nothing_warns(
    registry_anonymous: RegistryHandle, config_file: Path, unique_name: str
) -> None:
    push_images(registry_anonymous, f"{unique_name}app", "v1")
    result = add(config_file, registry_anonymous, "acct", "--repositories-regex", "zz-none/.*")
    assert result.exit_code == 0
    assert "matches repositoriesRegex 'zz-none/.*'" in result.stderr
    result = add(
        config_file, registry_anonymous, "acct2", "--repositories-regex", f"{unique_name}.*"
    )
    assert result.exit_code == 0
    assert result.stderr == ""


def test_an_unreachable_registry_is_an_error(config_file: Path) -> None:
    from harness import free_port

    result = run(
        config_file,
        *ACCOUNT,
        "add",
        "acct",
        "--address",
        f"http://127.0.0.1:{free_port()}",
        "--client-timeout-millis",
        "2000",
    )
    assert result.exit_code == 1
    assert "check --address" in result.stderr or "connect" in result.stderr
    assert not config_file.exists()


def test_concurrent_adds_in_separate_processes_all_land(
    registry_anonymous: RegistryHandle, config_file: Path, unique_name: str
) -> None:
    repo = f"{unique_name}app"
    push_images(registry_anonymous, repo, "v1")
    names = [f"acct{i}" for i in range(6)]
    env = {**os.environ, "REGWATCH_CONFIG": str(config_file)}
    procs = [
        subprocess.Popen(
            [
                REGWATCH,
                *ACCOUNT,
                "add",
                name,
                "--address",
                registry_anonymous.url,
                "--repositories",
                repo,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in names
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * len(names), outputs
    rows = json.loads(run(config_file, *ACCOUNT, "list", "--json").stdout)
    assert sorted(r["name"] for r in rows) == names
