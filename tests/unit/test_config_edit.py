"""Account edits: only what is named changes; one password source at a time."""

from __future__ import annotations

import pytest

from regwatch.config.edit import AccountChanges, apply_changes, new_account, same_account
from regwatch.config.model import DockerRegistryAccount, parse_account
from regwatch.errors import ConfigError


@pytest.fixture
def base() -> DockerRegistryAccount:
    return parse_account(
        {
            "name": "hub",
            "address": "index.docker.io",
            "username": "bob",
            "password": "s3cret",
            "repositoriesRegex": "team/.*",
            "permissions": {"READ": ["dev"]},
            "providerVersion": "V1",
        }
    )


def test_new_account_applies_values_and_lists() -> None:
    changes = AccountChanges(
        values={"address": "gcr.io", "repositories": ["a/b", "c/d"], "permissions.WRITE": ["ops"]}
    )
    account = new_account("gcr", changes)
    assert account.repositories == ["a/b", "c/d"]
    assert account.permissions.write == ["ops"]


def test_an_edit_keeps_what_it_does_not_name(base: DockerRegistryAccount) -> None:
    edited = apply_changes(base, AccountChanges(values={"trackDigests": True}))
    assert edited.track_digests
    assert edited.repositories_regex == "team/.*"  # upstream clears it here; we do not
    assert edited.password == base.password
    assert edited.model_extra == {"providerVersion": "V1"}


def test_setting_one_password_source_clears_the_others(base: DockerRegistryAccount) -> None:
    edited = apply_changes(base, AccountChanges(values={"passwordFile": "/k.json"}))
    assert edited.password is None
    assert edited.password_file == "/k.json"
    again = apply_changes(edited, AccountChanges(values={"passwordCommand": "echo x"}))
    assert again.password_file is None
    assert again.password_command == "echo x"


def test_two_sources_in_one_edit_are_refused(base: DockerRegistryAccount) -> None:
    changes = AccountChanges(values={"passwordFile": "/k", "passwordCommand": "c"})
    with pytest.raises(ConfigError, match="passwordFile and passwordCommand are both set"):
        apply_changes(base, changes)


def test_an_empty_string_clears_a_setting(base: DockerRegistryAccount) -> None:
    edited = apply_changes(base, AccountChanges(values={"repositoriesRegex": ""}))
    assert edited.repositories_regex is None
    with_repos = apply_changes(edited, AccountChanges(values={"repositories": ["x/y"]}))
    assert with_repos.repositories == ["x/y"]


def test_repositories_conflict_with_a_kept_regex(base: DockerRegistryAccount) -> None:
    with pytest.raises(ConfigError, match="repositories and repositoriesRegex are both set"):
        apply_changes(base, AccountChanges(values={"repositories": ["x/y"]}))


def test_add_and_remove_list_items(base: DockerRegistryAccount) -> None:
    changes = AccountChanges(
        add={"permissions.READ": ["ops", "dev"], "permissions.WRITE": ["ops"]},
        remove={"permissions.READ": ["dev", "never-there"]},
    )
    edited = apply_changes(base, changes)
    assert edited.permissions.read == ["ops"]
    assert edited.permissions.write == ["ops"]


def test_same_account_sees_no_op_edits(base: DockerRegistryAccount) -> None:
    assert same_account(base, apply_changes(base, AccountChanges(values={"username": "bob"})))
    assert same_account(base, apply_changes(base, AccountChanges(remove={"skip": ["x"]})))
    assert not same_account(base, apply_changes(base, AccountChanges(values={"username": "al"})))
    assert not AccountChanges()
    assert AccountChanges(values={"email": "a@b"})
