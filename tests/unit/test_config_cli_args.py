"""Halyard's argument forms, rewritten into click's before parsing."""

from __future__ import annotations

import click
import pytest
from hypothesis import given
from hypothesis import strategies as st

from regwatch.cli.config_account import add, edit
from regwatch.cli.config_flags import ACCOUNT_FLAGS
from regwatch.cli.config_options import PROMPT, rewrite_args, split_list


def parse(command: click.Command, args: list[str]) -> dict[str, object]:
    ctx = command.make_context(command.name, args)
    return dict(ctx.params)


def test_value_runs_and_commas() -> None:
    params = parse(add, ["hub", "--address", "x", "--repositories", "a/b", "c/d,e/f", "--email=m"])
    assert split_list(params["repositories"]) == ["a/b", "c/d", "e/f"]  # type: ignore[arg-type]
    assert params["email"] == "m"


def test_equals_form_and_repeated_flags() -> None:
    params = parse(add, ["hub", "--address=x", "--repositories=a/b,c/d", "--repositories", "e/f"])
    assert split_list(params["repositories"]) == ["a/b", "c/d", "e/f"]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--track-digests"], True),
        (["--track-digests", "true"], True),
        (["--track-digests", "false"], False),
        (["--track-digests=false"], False),
        (["--track-digests", "False", "--no-validate"], False),
        (["--track-digests", "--no-validate"], True),
    ],
)
def test_booleans_take_an_optional_value(args: list[str], expected: bool) -> None:
    params = parse(add, ["hub", "--address", "x", *args])
    assert params["track_digests"] is expected


def test_a_bare_boolean_before_the_name() -> None:
    params = parse(add, ["--insecure-registry", "hub", "--address", "x"])
    assert params["insecure_registry"] is True
    assert params["name"] == "hub"


def test_bare_password_prompts_and_valued_password_is_used() -> None:
    assert parse(add, ["hub", "--address", "x", "--password"])["password"] == PROMPT
    assert parse(add, ["hub", "--password", "--address", "x"])["password"] == PROMPT
    assert parse(add, ["hub", "--address", "x", "--password", "pw"])["password"] == "pw"
    assert parse(add, ["hub", "--address", "x", "--password=-pw"])["password"] == "-pw"


def test_a_run_that_swallowed_the_name_gives_it_back() -> None:
    params = parse(add, ["--address", "x", "--repositories", "a/b", "c/d", "hub"])
    assert params["name"] == "hub"
    assert params["repositories"] == ("a/b", "c/d")
    params = parse(add, ["--repositories", "a/b", "c/d", "hub", "--address", "x"])
    assert params["name"] == "hub"


def test_edit_list_flags_accept_runs() -> None:
    params = parse(edit, ["hub", "--add-repository", "a/b", "c/d", "--remove-read-permission=x"])
    assert params["add_repository"] == ("a/b", "c/d")
    assert params["remove_read_permission"] == ("x",)


def test_everything_after_double_dash_is_positional() -> None:
    assert rewrite_args(add, ["--address", "x", "--", "--weird"]) == [
        "--address",
        "x",
        "--",
        "--weird",
    ]


def test_every_flag_of_the_issue_exists_on_add_and_edit() -> None:
    wanted = {
        "--address", "--repositories", "--repositories-regex", "--username", "--password",
        "--password-file", "--password-command", "--email", "--cache-interval-seconds",
        "--client-timeout-millis", "--cache-threads", "--paginate-size", "--insecure-registry",
        "--sort-tags-by-date", "--track-digests", "--environment", "--read-permissions",
        "--write-permissions", "--required-group-membership", "--catalog-file",
        "--inspect-digests", "--skip", "--docker-config-file", "--ca-cert",
        "--config", "--deployment", "--no-validate",
    }  # fmt: skip
    for command in (add, edit):
        opts = {o for p in command.params for o in getattr(p, "opts", [])}
        assert wanted <= opts, wanted - opts
    edit_only = {
        "--add-repository", "--remove-repository", "--add-read-permission",
        "--remove-read-permission", "--add-write-permission", "--remove-write-permission",
    }  # fmt: skip
    assert edit_only <= {o for p in edit.params for o in getattr(p, "opts", [])}
    assert len({f.flag for f in ACCOUNT_FLAGS}) == len(ACCOUNT_FLAGS)


@given(
    st.lists(
        st.text(alphabet="abcdefgh/-_.", min_size=1, max_size=8).filter(
            lambda s: not s.startswith("-")
        ),
        min_size=1,
        max_size=6,
    )
)
def test_any_run_of_repositories_after_the_name_is_kept_in_order(values: list[str]) -> None:
    params = parse(add, ["hub", "--address", "x", "--repositories", *values])
    assert params["name"] == "hub"
    assert list(params["repositories"]) == values  # type: ignore[call-overload]
