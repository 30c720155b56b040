"""The halconfig-shaped config file: deployments, the dockerRegistry provider, regwatch settings.

```yaml
currentDeployment: default
deploymentConfigurations:
- name: default
  providers:
    dockerRegistry: {enabled: true, primaryAccount: hub, accounts: [{name: hub, address: …}]}
regwatch: {store: {url: …}}
```
An existing Halyard file (`~/.hal/config`) is read as is. Changes are made on the round-trip
tree, so comments, key order and keys regwatch does not know survive; an edited account keeps
every key whose value did not change. Use `edit_config` for changes: it holds the file lock
across read, change and atomic write, so concurrent commands do not lose each other's updates.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from regwatch.config.model import (
    ACCOUNT_ALIASES,
    ACCOUNT_KEYS,
    DockerRegistryAccount,
    DockerRegistryProvider,
    parse_account,
    to_plain,
)
from regwatch.config.settings import ServiceSettings, parse_settings
from regwatch.config.yamlfile import dump_text, locked, read_document, write_atomic
from regwatch.errors import ConfigError

ENV_VAR = "REGWATCH_CONFIG"
DEFAULT_PATH = "~/.regwatch/config"
HALYARD_PATH = "~/.hal/config"
DEFAULT_DEPLOYMENT = "default"
PROVIDER_KEY = "dockerRegistry"


def resolve_config_path(option: str | os.PathLike[str] | None = None) -> Path:
    """`--config`, else `$REGWATCH_CONFIG`, else `~/.regwatch/config`."""
    raw = os.fspath(option) if option else os.environ.get(ENV_VAR) or DEFAULT_PATH
    return Path(raw).expanduser()


class HalConfig:
    """A loaded config file: the round-trip tree plus typed accessors and edits."""

    def __init__(self, path: Path, root: CommentedMap, *, exists: bool) -> None:
        self.path = path
        self.root = root
        self.exists = exists

    # --- deployments ---------------------------------------------------------------------------
    @property
    def current_deployment(self) -> str:
        current = self.root.get("currentDeployment")
        if isinstance(current, str) and current:
            return current
        names = self.deployment_names()
        return names[0] if names else DEFAULT_DEPLOYMENT

    def deployment_names(self) -> list[str]:
        return [str(d.get("name")) for d in self._deployments() if isinstance(d, Mapping)]

    def _deployments(self) -> list[Any]:
        deployments = self.root.get("deploymentConfigurations")
        if deployments is None:
            return []
        if not isinstance(deployments, list):
            raise self._shape_error(self.root, "deploymentConfigurations must be a list")
        return deployments

    def _deployment(self, name: str | None, *, create: bool) -> CommentedMap | None:
        wanted = name or self.current_deployment
        deployments = self._deployments()
        for deployment in deployments:
            if isinstance(deployment, Mapping) and deployment.get("name") == wanted:
                return deployment  # type: ignore[return-value]
        if deployments:
            raise ConfigError(
                f"no deployment {wanted!r} in {self.path}",
                hint=f"choose one of {', '.join(self.deployment_names())} with --deployment",
            )
        if not create:
            return None
        return self._create_deployment(wanted)

    def _create_deployment(self, name: str) -> CommentedMap:
        deployment = CommentedMap([("name", name), ("providers", CommentedMap())])
        if "currentDeployment" not in self.root:
            self.root.insert(0, "currentDeployment", name)
        self.root["deploymentConfigurations"] = CommentedSeq([deployment])
        return deployment

    # --- the dockerRegistry provider ----------------------------------------------------------
    def _provider_node(self, deployment: str | None, *, create: bool) -> CommentedMap | None:
        node = self._deployment(deployment, create=create)
        if node is None:
            return None
        providers = node.get("providers")
        if providers is None and create:
            providers = node["providers"] = CommentedMap()
        if providers is None:
            return None
        if not isinstance(providers, CommentedMap):
            raise self._shape_error(node, "providers must be a mapping")
        provider = providers.get(PROVIDER_KEY)
        if provider is None and create:
            provider = providers[PROVIDER_KEY] = CommentedMap(
                [("enabled", False), ("accounts", CommentedSeq())]
            )
        if provider is not None and not isinstance(provider, CommentedMap):
            raise self._shape_error(providers, f"providers.{PROVIDER_KEY} must be a mapping")
        return provider

    def _account_nodes(self, provider: CommentedMap) -> CommentedSeq:
        accounts = provider.get("accounts")
        if accounts is None:
            accounts = provider["accounts"] = CommentedSeq()
        if not isinstance(accounts, list):
            raise self._shape_error(provider, "accounts must be a list")
        return accounts  # type: ignore[return-value]

    def provider(self, deployment: str | None = None) -> DockerRegistryProvider:
        """The typed provider node (empty and disabled when the file has none)."""
        node = self._provider_node(deployment, create=False)
        if node is None:
            return DockerRegistryProvider()
        accounts = [self._parse_account(a) for a in node.get("accounts") or []]
        return DockerRegistryProvider.model_validate(
            {
                "enabled": bool(node.get("enabled", False)),
                "primaryAccount": node.get("primaryAccount"),
                "accounts": accounts,
            }
        )

    def provider_enabled(self, deployment: str | None = None) -> bool:
        node = self._provider_node(deployment, create=False)
        return bool(node is not None and node.get("enabled"))

    def _parse_account(self, node: Any) -> DockerRegistryAccount:
        if not isinstance(node, Mapping):
            raise self._shape_error(node, "each account must be a mapping")
        return parse_account(to_plain(node), where=f"{self._where(node)}: ")

    def account_entries(
        self, deployment: str | None = None
    ) -> list[tuple[str, DockerRegistryAccount | ConfigError]]:
        """Every account parsed on its own: one bad account does not hide the others."""
        node = self._provider_node(deployment, create=False)
        entries: list[tuple[str, DockerRegistryAccount | ConfigError]] = []
        items = node.get("accounts") if node is not None else None
        for index, item in enumerate(items or []):
            name = item.get("name") if isinstance(item, Mapping) else None
            try:
                entries.append((str(name or f"#{index + 1}"), self._parse_account(item)))
            except ConfigError as exc:
                entries.append((str(name or f"#{index + 1}"), exc))
        return entries

    def accounts(self, deployment: str | None = None) -> list[DockerRegistryAccount]:
        return self.provider(deployment).accounts

    def account(self, name: str, deployment: str | None = None) -> DockerRegistryAccount:
        provider = self.provider(deployment)
        account = provider.find(name)
        if account is None:
            known = ", ".join(a.name for a in provider.accounts) or "none"
            raise ConfigError(
                f"account {name!r} does not exist",
                hint=f"configured accounts: {known} (regwatch config provider "
                "docker-registry account list)",
            )
        return account

    def require_new(self, name: str, deployment: str | None = None) -> None:
        """Raise unless an account called `name` could be added."""
        if self.provider(deployment).find(name) is not None:
            raise ConfigError(
                f"account {name!r} already exists",
                hint="use `account edit` to change it, or choose another name",
            )

    def add_account(self, account: DockerRegistryAccount, deployment: str | None = None) -> None:
        self.require_new(account.name, deployment)
        provider = self._provider_node(deployment, create=True)
        assert provider is not None  # created above
        self._account_nodes(provider).append(CommentedMap(account.to_document()))
        if provider.get("primaryAccount") not in self._names(provider):
            provider["primaryAccount"] = account.name

    def update_account(self, account: DockerRegistryAccount, deployment: str | None = None) -> None:
        """Write `account` over the existing account of the same name, key by key."""
        self.account(account.name, deployment)  # raises for an unknown account
        provider = self._provider_node(deployment, create=False)
        assert provider is not None
        for node in self._account_nodes(provider):
            if isinstance(node, CommentedMap) and node.get("name") == account.name:
                _merge_account(node, account)

    def delete_account(self, name: str, deployment: str | None = None) -> None:
        self.account(name, deployment)  # raises for an unknown account
        provider = self._provider_node(deployment, create=False)
        assert provider is not None
        nodes = self._account_nodes(provider)
        index = next(i for i, n in enumerate(nodes) if n.get("name") == name)
        del nodes[index]
        if provider.get("primaryAccount") == name:
            remaining = self._names(provider)
            if remaining:
                provider["primaryAccount"] = remaining[0]
            else:
                del provider["primaryAccount"]

    def set_enabled(self, enabled: bool, deployment: str | None = None) -> bool:
        """Enable or disable the provider; returns whether anything changed."""
        provider = self._provider_node(deployment, create=True)
        assert provider is not None
        changed = provider.get("enabled") is not enabled
        provider["enabled"] = enabled
        return changed

    @staticmethod
    def _names(provider: CommentedMap) -> list[str]:
        return [str(n.get("name")) for n in provider.get("accounts") or []]

    # --- regwatch's own settings, output -------------------------------------------------------
    def settings(self, environ: Mapping[str, str] | None = None) -> ServiceSettings:
        return parse_settings(self.root.get("regwatch"), environ=environ, where=f"{self.path}: ")

    def render(self) -> str:
        return dump_text(self.root) if self.root else ""

    def _where(self, node: Any) -> str:
        line = getattr(getattr(node, "lc", None), "line", None)
        return f"{self.path}:{line + 1}" if isinstance(line, int) else str(self.path)

    def _shape_error(self, node: Any, message: str) -> ConfigError:
        return ConfigError(
            f"{self._where(node)}: {message}",
            hint="fix or restore the file; regwatch has not changed it",
        )


def _merge_account(node: CommentedMap, account: DockerRegistryAccount) -> None:
    """Update `node` in place to hold `account`, touching only keys whose value changed."""
    full = account.to_document(full=True)
    minimal = account.to_document()
    current = parse_account(to_plain(node)).to_document(full=True)  # compare meaning, not form
    for key in [k for k in node if k in ACCOUNT_KEYS and k not in full]:
        if key in ACCOUNT_ALIASES and node[key] is None:
            continue  # an explicit null that is still null
        del node[key]  # cleared, or a snake_case spelling now written in camelCase
    order = list(full)
    for key, value in full.items():
        if key in node:
            if current.get(key) != value:
                node[key] = value
        elif key in minimal:
            before = [k for k in order[: order.index(key)] if k in node]
            position = list(node).index(before[-1]) + 1 if before else len(node)
            node.insert(position, key, value)


def load_config(path: str | os.PathLike[str] | None = None) -> HalConfig:
    """Read the config file (an empty config when it does not exist yet)."""
    resolved = resolve_config_path(path)
    root = read_document(resolved)
    return HalConfig(
        resolved, root if root is not None else CommentedMap(), exists=root is not None
    )


def save_config(config: HalConfig) -> None:
    """Write the config atomically. Prefer `edit_config`, which also holds the lock."""
    write_atomic(config.path, config.render())
    config.exists = True


@contextmanager
def edit_config(path: str | os.PathLike[str] | None = None) -> Iterator[HalConfig]:
    """A locked read-modify-write transaction: the file is written on a clean exit if changed.

    ```python
    with edit_config(path) as config:
        config.add_account(account)
    ```
    """
    resolved = resolve_config_path(path)
    with locked(resolved):
        config = load_config(resolved)
        before = config.render()
        yield config
        if config.render() != before:
            save_config(config)
