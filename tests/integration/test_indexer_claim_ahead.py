"""ClaimAhead: an account's repositories handed to the scan workers already claimed in the store,
a batch per writer call. On SQLite, or PostgreSQL with REGWATCH_TEST_STORE=postgres."""

from __future__ import annotations

import asyncio

import pytest

from regwatch.indexer.claim_ahead import Claim, ClaimAhead
from regwatch.store import AsyncStore, StagedTag, Store

NAMES = ["a", "b", "c", "d", "e"]


async def hand_out(claims: ClaimAhead) -> list[Claim]:
    handed: list[Claim] = []
    while (claim := await claims.next()) is not None:
        handed.append(claim)
    return handed


async def test_repositories_are_claimed_in_batches_in_order_each_with_its_own_scan(
    astore: AsyncStore,
) -> None:
    await astore.call(Store.ensure_account, "hub", "reg.example")
    claims = ClaimAhead(astore, "hub", NAMES, batch=2)

    handed = await hand_out(claims)

    assert [c.repository for c in handed] == NAMES
    assert claims.claim_calls == 3  # 2 + 2 + 1
    assert not claims.stopped
    scans = [c.scan for c in handed]
    assert all(scan is not None and scan.baseline for scan in scans)
    assert len({scan.scan_id for scan in scans if scan is not None}) == len(NAMES)
    for scan in scans:  # each claim is the repository's current one: its merge goes through
        assert scan is not None
        await astore.call(Store.finish_repository_scan, scan, last_page=[StagedTag.seen("1")])
    assert {r.name: r.tag_count for r in astore.store.repositories("hub")} == dict.fromkeys(
        NAMES, 1
    )


async def test_a_batch_that_cannot_be_claimed_comes_back_as_errors(astore: AsyncStore) -> None:
    claims = ClaimAhead(astore, "missing", NAMES[:3], batch=2)  # no such account in the store

    handed = await hand_out(claims)

    assert [c.repository for c in handed] == NAMES[:3]
    assert all(c.scan is None and "missing" in str(c.error) for c in handed)
    assert claims.claim_calls == 2


async def test_a_stop_ends_the_hand_out_and_says_whether_repositories_were_left(
    astore: AsyncStore,
) -> None:
    await astore.call(Store.ensure_account, "hub", "reg.example")
    stop = asyncio.Event()
    claims = ClaimAhead(astore, "hub", NAMES, batch=2, stop=stop)

    first = await claims.next()
    stop.set()

    assert first is not None
    assert first.repository == "a"
    assert await claims.next() is None  # "b" was claimed with "a" but is not handed out
    assert claims.stopped
    assert claims.claim_calls == 1

    everything = ClaimAhead(astore, "hub", NAMES[:2], batch=2, stop=stop)
    stop.clear()
    assert len(await hand_out(everything)) == 2
    stop.set()  # a stop that comes once nothing is left stops nothing
    assert await everything.next() is None
    assert not everything.stopped


def test_a_batch_of_nothing_is_refused(astore: AsyncStore) -> None:
    with pytest.raises(ValueError, match="batch"):
        ClaimAhead(astore, "hub", NAMES, batch=0)
