"""Hot reload: which accounts the config file asks for, and a watcher that notices changes.

The service indexes the accounts of the current deployment's `providers.dockerRegistry`. As
`regwatch scan` does, it indexes them even when the provider is disabled (and warns): disabling
must not silently drop an index that took hours to build. An account entry that does
not validate is reported and, if an earlier version of it was valid, that last good version is
kept; a file that does not parse at all (or has vanished) keeps the whole last good configuration.

`ConfigWatcher` polls the file (stat every `interval` seconds; on a changed mtime, size or inode,
the content's hash decides), so no file-notification dependency is needed and atomic renames by
`regwatch config …` are seen like any other edit.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from regwatch.config.halconfig import HalConfig
from regwatch.config.model import DockerRegistryAccount
from regwatch.config.settings import ServiceSettings
from regwatch.config.yamlfile import parse_text
from regwatch.errors import ConfigError

log = logging.getLogger(__name__)

MAX_CONFIG_BYTES = 16 << 20


@dataclass(frozen=True)
class AccountSet:
    """The accounts to index and serve, in file order, and the entries that are wrong."""

    enabled: bool = False
    primary_account: str | None = None
    accounts: Mapping[str, DockerRegistryAccount] = field(default_factory=dict)
    errors: Mapping[str, str] = field(default_factory=dict)  # entry name -> problem

    @property
    def primary(self) -> str | None:
        """`primaryAccount` when it names a served account, else the first account (Halyard)."""
        if self.primary_account in self.accounts:
            return self.primary_account
        return next(iter(self.accounts), None)


def account_set(config: HalConfig, previous: AccountSet | None = None) -> AccountSet:
    """The accounts `config` asks for; an invalid entry keeps its last good version from
    `previous`. Raises ConfigError when the file's structure itself is wrong."""
    enabled = config.provider_enabled()
    accounts: dict[str, DockerRegistryAccount] = {}
    errors: dict[str, str] = {}
    for name, entry in config.account_entries():
        if isinstance(entry, ConfigError):
            errors[name] = str(entry)
            last_good = previous.accounts.get(name) if previous is not None else None
            if last_good is not None and name not in accounts:
                accounts[name] = last_good
        elif name in accounts:
            errors[name] = f"account {name!r} is defined twice: the first definition is used"
        else:
            accounts[name] = entry
    return AccountSet(enabled, _primary_account(config), accounts, errors)


def _primary_account(config: HalConfig) -> str | None:
    try:
        return config.provider().primary_account
    except (ConfigError, ValidationError):  # an invalid or duplicate entry: reported per entry
        return None


@dataclass(frozen=True)
class ConfigSnapshot:
    """One successfully loaded version of the config file."""

    config: HalConfig
    settings: ServiceSettings
    accounts: AccountSet
    digest: str  # sha256 of the file's bytes ("" when the file does not exist)
    loaded_at: float  # epoch seconds


def file_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def snapshot_from_bytes(
    path: Path,
    data: bytes | None,
    previous: ConfigSnapshot | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> ConfigSnapshot:
    """Parse the file's bytes (None: no file, an empty config). Raises ConfigError."""
    if data is not None and len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: the config file is larger than 16 MiB, refused")
    try:
        text = "" if data is None else data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the config file is not UTF-8 text") from None
    config = HalConfig(path, parse_text(text, path), exists=data is not None)
    settings = config.settings(environ)
    accounts = account_set(config, previous.accounts if previous is not None else None)
    digest = "" if data is None else file_digest(data)
    return ConfigSnapshot(config, settings, accounts, digest, time.time())


def read_bytes(path: Path) -> bytes | None:
    """The file's content, None when it does not exist."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(
            f"cannot read the config file {path} ({exc.strerror or type(exc).__name__})",
            hint="check the file's permissions",
        ) from None


def load_snapshot(
    path: Path, previous: ConfigSnapshot | None = None, *, environ: Mapping[str, str] | None = None
) -> ConfigSnapshot:
    return snapshot_from_bytes(path, read_bytes(path), previous, environ=environ)


def _stat_key(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class ConfigWatcher:
    """Polls the config file and hands every changed, valid version to `apply`.

    A version that fails to load is reported in `error` (and logged once); the last good
    snapshot stays in force until a good version appears.
    """

    def __init__(
        self,
        path: Path,
        current: ConfigSnapshot,
        apply: Callable[[ConfigSnapshot], Awaitable[None]],
        *,
        interval: float = 1.0,
        environ: Mapping[str, str] | None = None,
        on_error: Callable[[ConfigError], None] | None = None,
    ) -> None:
        self.path = path
        self.current = current
        self.interval = interval
        self.error: str | None = None
        self.error_at: float | None = None
        self.reloads = 0
        self._apply = apply
        self._on_error = on_error
        self._environ = environ
        self._stat = _stat_key(path)
        self._seen_digest = current.digest

    async def check(self) -> bool:
        """Look once; True when a new version was applied."""
        key = _stat_key(self.path)
        if key == self._stat:
            return False
        self._stat = key
        try:
            data = await asyncio.to_thread(read_bytes, self.path)
            digest = "" if data is None else file_digest(data)
            if digest == self._seen_digest:
                return False
            self._seen_digest = digest
            if data is None:
                raise ConfigError(
                    f"the config file {self.path} has disappeared",
                    hint="restore it; the last good configuration stays in force",
                )
            snapshot = await asyncio.to_thread(
                snapshot_from_bytes, self.path, data, self.current, environ=self._environ
            )
        except ConfigError as exc:
            self._failed(exc)
            return False
        self.error = self.error_at = None
        try:
            await self._apply(snapshot)
        except BaseException:
            self._stat, self._seen_digest = None, self.current.digest  # try again next time
            raise
        self.current = snapshot
        self.reloads += 1
        return True

    def _failed(self, exc: ConfigError) -> None:
        self.error, self.error_at = str(exc), time.time()
        log.error("config reload failed, keeping the last good configuration: %s", exc)
        if self._on_error is not None:
            self._on_error(exc)

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set. A failing `apply` is logged and retried at the next poll."""
        while not stop.is_set():
            try:
                await self.check()
            except Exception:
                log.exception("applying the changed config file failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
