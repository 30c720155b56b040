"""The config commands without a registry (`--no-validate`): files, output, errors, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from regwatch.cli.main import cli

ACCOUNT = ["config", "provider", "docker-registry", "account"]
PROVIDER = ["config", "provider", "docker-registry"]
SECRET = "pa55-w0rd-never-shown"


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    return tmp_path / "regwatch" / "config"


def run(config_file: Path, *args: str, stdin: str | None = None) -> Result:
    result = CliRunner().invoke(cli, [*args, "--config", str(config_file)], input=stdin)
    assert SECRET not in result.output
    assert SECRET not in result.stderr
    return result


def add(config_file: Path, name: str, *args: str, stdin: str | None = None) -> Result:
    return run(config_file, *ACCOUNT, "add", name, *args, "--no-validate", stdin=stdin)


def get(config_file: Path, name: str) -> dict[str, object]:
    result = run(config_file, *ACCOUNT, "get", name, "--json")
    assert result.exit_code == 0, result.output
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_enable_and_disable(config_file: Path) -> None:
    result = run(config_file, *PROVIDER, "enable")
    assert result.exit_code == 0
    assert result.stdout == "Enabled the docker-registry provider.\n"
    assert "enabled: true" in config_file.read_text()
    result = run(config_file, *PROVIDER, "disable", "--deployment", "default")
    assert result.exit_code == 0
    assert "enabled: false" in config_file.read_text()


def test_add_with_every_flag_then_get_shows_it(config_file: Path, tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("")
    result = add(
        config_file,
        "full",
        "--address",
        "registry.example.com:5000/v2/",
        "--repositories",
        "team/app",
        "team/web,team/db",
        "--username",
        "robot",
        "--password",
        SECRET,
        "--email",
        "ops@example.com",
        "--cache-interval-seconds",
        "45",
        "--client-timeout-millis=2500",
        "--cache-threads",
        "2",
        "--paginate-size",
        "50",
        "--insecure-registry",
        "false",
        "--sort-tags-by-date",
        "--track-digests",
        "true",
        "--inspect-digests=true",
        "--ca-cert",
        str(tmp_path / "ca.pem"),
        "--environment",
        "prod",
        "--skip",
        "team/old",
        "--read-permissions",
        "dev",
        "qa",
        "--write-permissions",
        "ops",
        "--required-group-membership",
        "legacy",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "Added account full.\n"
    data = get(config_file, "full")
    assert data["address"] == "https://registry.example.com:5000"
    assert data["repositories"] == ["team/app", "team/web", "team/db"]
    assert (data["username"], data["password"], data["email"]) == (
        "robot",
        "********",
        "ops@example.com",
    )
    assert (data["cacheIntervalSeconds"], data["clientTimeoutMillis"]) == (45, 2500)
    assert (data["cacheThreads"], data["paginateSize"]) == (2, 50)
    assert data["insecureRegistry"] is False
    assert data["sortTagsByDate"] is data["trackDigests"] is data["inspectDigests"] is True
    assert data["caCert"] == str(tmp_path / "ca.pem")
    assert (data["environment"], data["accountType"]) == ("prod", "full")
    assert data["skip"] == ["team/old"]
    assert data["permissions"] == {"READ": ["dev", "qa"], "WRITE": ["ops"]}
    assert data["requiredGroupMembership"] == ["legacy"]
    assert SECRET in config_file.read_text()  # stored in the file, as Halyard does


def test_the_other_password_sources_and_catalog_flags(config_file: Path, tmp_path: Path) -> None:
    assert (
        add(
            config_file,
            "file",
            "--address",
            "a.io",
            "--username",
            "_json_key",
            "--password-file",
            "key.json",
        ).exit_code
        == 0
    )
    assert get(config_file, "file")["passwordFile"] == str(Path.cwd() / "key.json")
    assert (
        add(
            config_file,
            "cmd",
            "--address",
            "a.io",
            "--username",
            "AWS",
            "--password-command",
            "aws ecr get-login-password",
        ).exit_code
        == 0
    )
    assert get(config_file, "cmd")["passwordCommand"] == "aws ecr get-login-password"
    assert (
        add(
            config_file,
            "dcfg",
            "--address",
            "a.io",
            "--docker-config-file",
            str(tmp_path / "config.json"),
            "--repositories-regex",
            "team/.*",
        ).exit_code
        == 0
    )
    data = get(config_file, "dcfg")
    assert data["dockerconfigFile"] == str(tmp_path / "config.json")
    assert data["repositoriesRegex"] == "team/.*"
    assert add(config_file, "cat", "--address", "a.io", "--catalog-file", "/c.json").exit_code == 0
    assert get(config_file, "cat")["catalogFile"] == "/c.json"


def test_a_bare_password_is_read_from_stdin_and_never_shown(config_file: Path) -> None:
    result = add(
        config_file,
        "hub",
        "--address",
        "index.docker.io",
        "--username",
        "bob",
        "--password",
        stdin=SECRET + "\n",
    )
    assert result.exit_code == 0, result.output
    assert f"password: {SECRET}\n" in config_file.read_text()
    result = run(config_file, *ACCOUNT, "get", "hub")
    assert "password: '********'" in result.stdout


def test_an_empty_prompted_password_is_an_error(config_file: Path) -> None:
    result = add(config_file, "hub", "--address", "x.io", "--username", "u", "--password", stdin="")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: no password entered — ")
    assert not config_file.exists()


def test_list_and_primary_account(config_file: Path) -> None:
    assert (
        run(config_file, *ACCOUNT, "list").stdout == "No docker-registry accounts are configured.\n"
    )
    for name in ("one", "two"):
        assert add(config_file, name, "--address", "x.io").exit_code == 0
    result = run(config_file, *ACCOUNT, "list")
    assert result.stdout.splitlines() == [
        "Accounts for docker-registry (disabled, primary: one):",
        "  - one",
        "  - two",
    ]
    rows = json.loads(run(config_file, *ACCOUNT, "list", "--json").stdout)
    assert [(r["name"], r["primaryAccount"]) for r in rows] == [("one", True), ("two", False)]
    assert run(config_file, *ACCOUNT, "delete", "one").stdout == "Deleted account one.\n"
    rows = json.loads(run(config_file, *ACCOUNT, "list", "--json").stdout)
    assert [(r["name"], r["primaryAccount"]) for r in rows] == [("two", True)]


def test_edit_changes_only_what_it_names(config_file: Path) -> None:
    add(
        config_file,
        "hub",
        "--address",
        "x.io",
        "--repositories-regex",
        "team/.*",
        "--username",
        "u",
        "--password",
        SECRET,
    )
    result = run(config_file, *ACCOUNT, "edit", "hub", "--track-digests", "--no-validate")
    assert result.exit_code == 0
    assert result.stdout == "Edited account hub.\n"
    data = get(config_file, "hub")
    assert data["trackDigests"] is True
    assert data["repositoriesRegex"] == "team/.*"
    assert data["password"] == "********"


def test_edit_switches_password_source_and_lists(config_file: Path) -> None:
    add(
        config_file,
        "hub",
        "--address",
        "x.io",
        "--username",
        "u",
        "--password",
        SECRET,
        "--repositories",
        "a/b",
        "c/d",
        "--read-permissions",
        "dev",
    )
    result = run(
        config_file,
        *ACCOUNT,
        "edit",
        "hub",
        "--password-file",
        "/k.json",
        "--add-repository",
        "e/f",
        "--remove-repository",
        "a/b",
        "--add-read-permission",
        "qa",
        "--remove-read-permission",
        "dev",
        "--add-write-permission",
        "ops",
        "--no-validate",
    )
    assert result.exit_code == 0, result.output
    data = get(config_file, "hub")
    assert data["password"] is None
    assert data["passwordFile"] == "/k.json"
    assert data["repositories"] == ["c/d", "e/f"]
    assert data["permissions"] == {"READ": ["qa"], "WRITE": ["ops"]}
    assert SECRET not in config_file.read_text()
    result = run(
        config_file, *ACCOUNT, "edit", "hub", "--remove-write-permission", "ops", "--no-validate"
    )
    assert get(config_file, "hub")["permissions"] == {"READ": ["qa"], "WRITE": []}


@pytest.mark.parametrize(
    "args",
    [[], ["--username", "u"], ["--remove-repository", "not/there"], ["--cache-threads", "1"]],
)
def test_a_no_op_edit_says_so_and_leaves_the_file(config_file: Path, args: list[str]) -> None:
    add(config_file, "hub", "--address", "x.io", "--username", "u")
    before = config_file.read_bytes()
    result = run(config_file, *ACCOUNT, "edit", "hub", *args)
    assert result.exit_code == 0
    assert result.stderr == "No changes supplied.\n"
    assert config_file.read_bytes() == before


def one_line_error(result: Result, code: int, *needles: str) -> None:
    assert result.exit_code == code, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert " — " in lines[0]
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["add", "new", "--bogus", "x"], 2, "No such option '--bogus'"),
        (["add", "new"], 2, "Missing option '--address'"),
        (
            ["add", "new", "--address", "x.io", "--cache-threads", "zero"],
            2,
            "'zero' is not a valid integer",
        ),
        (
            ["add", "new", "--address", "x.io", "--track-digests", "perhaps"],
            2,
            "Got unexpected extra argument (perhaps)",
        ),
        (
            ["add", "new", "--address", "x.io", "--password", SECRET, "--password-file", "/f"],
            1,
            "password and passwordFile are both set",
        ),
        (
            ["add", "new", "--address", "x.io", "--password-command", "c", "--password-file", "/f"],
            1,
            "passwordFile and passwordCommand are both set",
        ),
        (["add", "Bad_Name", "--address", "x.io"], 1, "not a valid account name"),
        (["add", "new", "--address", "ftp://x.io"], 1, "unsupported scheme"),
        (
            ["add", "new", "--address", "x.io", "--repositories", "a/b", "--catalog-file", "/c"],
            1,
            "repositories and catalogFile",
        ),
        (
            ["add", "new", "--address", "x.io", "--repositories-regex", "("],
            1,
            "not a valid regular expression",
        ),
        (["add", "hub", "--address", "x.io"], 1, "account 'hub' already exists"),
        (["edit", "nope", "--email", "a@b"], 1, "account 'nope' does not exist"),
        (
            ["edit", "hub", "--repositories", "a/b", "--add-repository", "c/d"],
            2,
            "cannot be combined",
        ),
        (["get", "nope"], 1, "account 'nope' does not exist"),
        (["delete", "nope"], 1, "account 'nope' does not exist"),
        (["list", "--deployment", "staging"], 1, "no deployment 'staging'"),
    ],
)
def test_bad_input_is_one_line_and_leaves_the_file(
    config_file: Path, args: list[str], code: int, needle: str
) -> None:
    add(config_file, "hub", "--address", "x.io")
    before = config_file.read_bytes()
    result = run(config_file, *ACCOUNT, *args, "--no-validate")
    one_line_error(result, code, needle)
    assert config_file.read_bytes() == before


@pytest.mark.parametrize(
    "text", ["currentDeployment: [unclosed\n", "deploymentConfigurations:\n- name: x\n\tbad\n"]
)
def test_a_corrupt_file_is_reported_and_untouched(config_file: Path, text: str) -> None:
    config_file.parent.mkdir(parents=True)
    config_file.write_text(text)
    for args in (["list"], ["add", "x", "--address", "x.io", "--no-validate"]):
        result = run(config_file, *ACCOUNT, *args)
        one_line_error(result, 1, str(config_file), "not valid YAML")
    one_line_error(run(config_file, *PROVIDER, "enable"), 1, "not valid YAML")
    assert config_file.read_text() == text


def test_a_file_that_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    result = run(blocker / "config", *PROVIDER, "enable")
    one_line_error(result, 1, "cannot write config file")


def test_regwatch_config_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "from-env"
    monkeypatch.setenv("REGWATCH_CONFIG", str(path))
    result = CliRunner().invoke(cli, [*PROVIDER, "enable"])
    assert result.exit_code == 0
    assert "enabled: true" in path.read_text()


def test_validate_with_no_accounts_and_skipped(config_file: Path) -> None:
    result = run(config_file, "config", "validate")
    assert result.exit_code == 0
    assert "No docker-registry accounts are configured" in result.stdout
    add(config_file, "hub", "--address", "x.io")
    assert run(config_file, "config", "validate", "--no-validate").exit_code == 0


def test_help_shows_upstream_defaults() -> None:
    result = CliRunner().invoke(cli, [*ACCOUNT, "add", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "--cache-interval-seconds N Seconds between scans. [default: 30]" in text
    assert "--password [PASSWORD]" in text
