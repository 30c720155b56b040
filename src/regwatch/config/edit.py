"""Pure account edits: what `account add` and `account edit` asked for, applied to an account.

Keys are the YAML keys (`passwordFile`), with `permissions.READ` / `permissions.WRITE` for the
nested permission lists. An edit changes only what it names (unlike Halyard, which clears
`repositoriesRegex` on every edit); setting one password source clears the others; an empty
string clears an optional setting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from regwatch.config.model import PASSWORD_SOURCES, DockerRegistryAccount, parse_account


@dataclass(frozen=True)
class AccountChanges:
    """The settings a command names: values to set, list items to add and to remove."""

    values: Mapping[str, Any] = field(default_factory=dict)
    add: Mapping[str, list[str]] = field(default_factory=dict)
    remove: Mapping[str, list[str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.values or self.add or self.remove)


def new_account(name: str, changes: AccountChanges) -> DockerRegistryAccount:
    """The account `account add NAME …` describes (ConfigError when it is not valid)."""
    return parse_account(_apply({"name": name}, changes))


def apply_changes(account: DockerRegistryAccount, changes: AccountChanges) -> DockerRegistryAccount:
    """`account` with `changes` applied (ConfigError when the result is not valid)."""
    document = account.to_document(full=True)
    if any(changes.values.get(key) for key in PASSWORD_SOURCES):
        for key in PASSWORD_SOURCES:
            if key not in changes.values:
                document.pop(key, None)
    return parse_account(_apply(document, changes))


def same_account(a: DockerRegistryAccount, b: DockerRegistryAccount) -> bool:
    return a.to_document(full=True) == b.to_document(full=True)


def _apply(document: dict[str, Any], changes: AccountChanges) -> dict[str, Any]:
    for key, value in changes.values.items():
        if value == "" or value is None:
            _pop_path(document, key)
        else:
            _set_path(document, key, value)
    for key, items in changes.add.items():
        current = list(_get_path(document, key) or [])
        _set_path(document, key, current + [i for i in items if i not in current])
    for key, items in changes.remove.items():
        current = list(_get_path(document, key) or [])
        _set_path(document, key, [i for i in current if i not in items])
    return document


def _split(key: str) -> tuple[list[str], str]:
    *parents, leaf = key.split(".")
    return parents, leaf


def _parent(document: dict[str, Any], parents: list[str], *, create: bool) -> dict[str, Any]:
    node = document
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            if create:
                node[part] = child
        node = child
    return node


def _get_path(document: dict[str, Any], key: str) -> Any:
    parents, leaf = _split(key)
    return _parent(document, parents, create=False).get(leaf)


def _set_path(document: dict[str, Any], key: str, value: Any) -> None:
    parents, leaf = _split(key)
    _parent(document, parents, create=True)[leaf] = value


def _pop_path(document: dict[str, Any], key: str) -> None:
    parents, leaf = _split(key)
    _parent(document, parents, create=False).pop(leaf, None)
