"""`regwatch trigger add|list|delete` on a config file (no registry, no store)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from regwatch.cli.main import cli
from regwatch.config.halconfig import load_config

CONFIG = """\
# my comment survives
currentDeployment: default
deploymentConfigurations:
- name: default
  providers:
    dockerRegistry:
      enabled: true
      accounts:
      - {name: hub, address: 'http://127.0.0.1:5000'}
regwatch:
  webhooks:
  - {name: ci, url: 'http://127.0.0.1:9/hook', secret: hunter2}
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config"
    path.write_text(CONFIG)
    return path


def run(config_file: Path, *args: str) -> Result:
    result = CliRunner().invoke(cli, ["trigger", *args, "--config", str(config_file)])
    assert "hunter2" not in result.output
    return result


def test_add_list_delete(config_file: Path) -> None:
    added = run(config_file, "add", "--account", "hub", "--repository", "library/nginx",
                "--tag", r"1\.25\..*")  # fmt: skip
    assert added.exit_code == 0, added.output
    assert added.output == ("Added trigger 'trigger-1': hub library/nginx, tag 1\\.25\\..* → ci.\n")
    second = run(config_file, "add", "--account", "hub", "--repository", "team/app",
                 "--name", "app", "--sink", "ci")  # fmt: skip
    assert second.exit_code == 0, second.output
    assert "any tag but latest" in second.output
    text = config_file.read_text()
    assert text.startswith("# my comment survives")
    assert "hunter2" in text  # the secret is kept in the file as it was
    triggers = load_config(config_file).settings().triggers
    assert [(t.name, t.account, t.repository, t.tag, t.sink) for t in triggers] == [
        ("trigger-1", "hub", "library/nginx", r"1\.25\..*", "ci"),
        ("app", "hub", "team/app", "", "ci"),
    ]
    listed = run(config_file, "list", "--json")
    assert [t["name"] for t in json.loads(listed.output)] == ["trigger-1", "app"]
    assert "app: hub team/app, any tag but latest → ci" in run(config_file, "list").output
    deleted = run(config_file, "delete", "trigger-1")
    assert deleted.exit_code == 0
    assert deleted.output == "Deleted trigger 'trigger-1'.\n"
    assert [t.name for t in load_config(config_file).settings().triggers] == ["app"]
    assert run(config_file, "add", "--account", "hub", "--repository", "x/y").output.startswith(
        "Added trigger 'trigger-1'"
    )  # the freed name is reused


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--account", "hub", "--repository", "a/b", "--tag", "v("],
            "not a valid regular expression",
        ),
        (["--account", "hub", "--repository", "a/b", "--sink", "nope"], "not a configured sink"),
        (["--account", "gcr", "--repository", "a/b"], "account 'gcr' does not exist"),
        (["--account", "hub", "--repository", "A/B"], "is not a repository name"),
    ],
)
def test_an_invalid_trigger_leaves_the_file_untouched(
    config_file: Path, args: list[str], message: str
) -> None:
    result = run(config_file, "add", *args)
    assert result.exit_code == 1
    assert message in result.output
    assert result.output.startswith("Error: ")
    assert config_file.read_text() == CONFIG


def test_the_sink_must_be_named_when_there_are_several(config_file: Path) -> None:
    config_file.write_text(
        CONFIG.replace("regwatch:\n", "regwatch:\n  echoUrl: http://127.0.0.1:8/\n")
    )
    result = run(config_file, "add", "--account", "hub", "--repository", "a/b")
    assert result.exit_code == 1
    assert "pass --sink with one of: echo, ci" in result.output


def test_deleting_an_unknown_trigger_fails(config_file: Path) -> None:
    result = run(config_file, "delete", "nope")
    assert result.exit_code == 1
    assert "trigger 'nope' does not exist" in result.output
    assert config_file.read_text() == CONFIG


def test_list_without_triggers(config_file: Path) -> None:
    assert run(config_file, "list").output == "No triggers are configured.\n"
