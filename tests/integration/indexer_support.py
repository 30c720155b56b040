"""Helpers shared by the indexer's integration tests (test_indexer_*.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from regwatch.config.model import DockerRegistryAccount
from regwatch.indexer import ScanRun, scan_account
from regwatch.registry import Transport
from regwatch.store import AsyncStore, Store, StoredEvent

ACCOUNT = "acct"


def make_account(address: str, **fields: Any) -> DockerRegistryAccount:
    """An account on `address`; `fields` use the YAML (camelCase) names."""
    return DockerRegistryAccount.model_validate({"name": ACCOUNT, "address": address, **fields})


def fast_transport() -> Transport:
    """Few, short retries: failure tests should not sit in backoff."""
    return Transport(max_retries=2, backoff_base=0.001, backoff_cap=0.01, max_retry_after=2.0)


async def scan(
    account: DockerRegistryAccount,
    store: AsyncStore,
    *,
    sinks: Sequence[str] = (),
    transport: Transport | None = None,
) -> ScanRun:
    if transport is not None:
        return await scan_account(account, store=store, transport=transport, sinks=sinks)
    async with fast_transport() as fresh:
        return await scan_account(account, store=store, transport=fresh, sinks=sinks)


def digests(store: AsyncStore, repository: str) -> dict[str, str | None]:
    """tag -> stored digest of one repository of the test account."""
    return store.store.known_tags(ACCOUNT, repository)


def events(store: AsyncStore) -> list[StoredEvent]:
    return store.store.events(account=ACCOUNT, limit=1000)


def event_summary(store: AsyncStore) -> list[tuple[str, str, str | None, str | None]]:
    """(kind, tag, digest, previous digest) of every event recorded for the account."""
    return [(e.kind, e.tag, e.digest, e.previous_digest) for e in events(store)]


def repository_names(store: AsyncStore) -> list[str]:
    return [r.name for r in Store.repositories(store.store, ACCOUNT)]
