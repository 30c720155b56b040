"""Which repositories an account's scan covers.

In order of precedence: the account's `repositories` list; the `{"repositories": […]}` of its
`catalogFile`, read on every scan; otherwise the registry's `/v2/_catalog`, every page. File and
catalog names are filtered by `repositoriesRegex` (a full match, as Java's `String.matches`), and
`skip` drops names from any source. A successful listing is authoritative: the store's
repositories become exactly that list (repositories that left it lose their tags). A failed one
changes nothing: the error is recorded on the account and the stored list is scanned instead
(upstream evicts the whole account when its catalog call fails).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from regwatch.config.model import DockerRegistryAccount
from regwatch.errors import ConfigError, RegwatchError, TransportError
from regwatch.registry import RegistryClient
from regwatch.store import AsyncStore, Store

Source = Literal["list", "catalogFile", "catalog", "stored"]
MAX_CATALOG_FILE = 64 << 20


@dataclass(frozen=True)
class RepositoryList:
    """The repositories to scan and where they came from."""

    names: list[str]
    source: Source
    error: str | None = None  # the listing failed: `names` is the stored list
    unreachable: bool = False  # the registry could not be reached at all


def select(names: Iterable[str], regex: str | None = None, skip: Iterable[str] = ()) -> list[str]:
    """`names` that fully match `regex` (if any) and are not in `skip`, first occurrence kept."""
    pattern = re.compile(regex) if regex is not None else None
    skipped = set(skip)
    chosen: dict[str, None] = {}
    for name in names:
        if not name or name in skipped or name in chosen:
            continue
        if pattern is None or pattern.fullmatch(name):
            chosen[name] = None
    return list(chosen)


def read_catalog_file(path: str) -> list[str]:
    """The `repositories` list of a catalog file; ConfigError naming the file otherwise."""
    location = Path(path).expanduser()
    try:
        with location.open("rb") as handle:
            raw = handle.read(MAX_CATALOG_FILE + 1)
    except OSError as exc:
        raise ConfigError(
            f"cannot read the catalog file {location}: {exc.strerror or type(exc).__name__}",
            hint='catalogFile must name a readable JSON file {"repositories": [...]}',
        ) from None
    if len(raw) > MAX_CATALOG_FILE:
        raise ConfigError(f"the catalog file {location} is larger than 64 MiB")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ConfigError(
            f"the catalog file {location} is not valid JSON",
            hint='expected {"repositories": ["team/app", ...]}',
        ) from None
    names = data.get("repositories") if isinstance(data, dict) else None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(
            f"the catalog file {location} has no 'repositories' list of names",
            hint='expected {"repositories": ["team/app", ...]}',
        )
    return names


async def list_repositories(
    account: DockerRegistryAccount, client: RegistryClient, store: AsyncStore
) -> RepositoryList:
    """The repositories to scan for `account`, with the store updated (see the module docstring)."""
    source: Source = "list"
    try:
        if account.repositories:
            names = select(account.repositories, None, account.skip)
        elif account.catalog_file:
            source = "catalogFile"
            raw = await asyncio.to_thread(read_catalog_file, account.catalog_file)
            names = select(raw, account.repositories_regex, account.skip)
        else:
            source = "catalog"
            names = await _catalog(account, client)
    except RegwatchError as exc:
        return await _keep_stored(account, store, exc)
    await store.call(Store.replace_repositories, account.name, names)
    return RepositoryList(names, source)


async def _catalog(account: DockerRegistryAccount, client: RegistryClient) -> list[str]:
    """Every catalog page, filtered page by page (only the chosen names are held)."""
    names: list[str] = []
    async for page in client.catalog_pages():
        names.extend(select(page, account.repositories_regex, account.skip))
    return select(names)  # a registry may repeat a name across pages


async def _keep_stored(
    account: DockerRegistryAccount, store: AsyncStore, exc: RegwatchError
) -> RepositoryList:
    error = str(exc)
    await store.call(Store.mark_catalog_failed, account.name, error)
    stored = await store.call(Store.repositories, account.name)
    names = select(
        (r.name for r in stored), None if account.repositories else account.repositories_regex,
        account.skip,
    )  # fmt: skip
    unreachable = isinstance(exc, TransportError) and exc.status is None
    return RepositoryList(names, "stored", error=error, unreachable=unreachable)
