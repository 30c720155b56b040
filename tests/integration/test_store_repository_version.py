"""The repository's change stamp (`Store.repository_version`), the validator of the lookup
API's response cache: it must move with every write of the repository's tags or their metadata
(else a revalidated entry would hide it), and stay put for a rescan that changes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from store_support import Clock

from regwatch.store import StagedTag, Store

pytestmark = pytest.mark.store

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def scan(store: Store, listing: Sequence[StagedTag], *, staged: bool) -> None:
    """One scan of hub/app: the direct one-page merge, or the staged merge (two pages)."""
    started = store.begin_repository_scan("hub", "app")
    if staged:
        store.stage_tags(started, listing[:1])
        listing = listing[1:]
    store.finish_repository_scan(started, last_page=listing)


@pytest.mark.parametrize("staged", [False, True], ids=["one-page", "staged"])
def test_the_stamp_moves_with_each_write_of_the_tags_and_not_otherwise(
    store: Store, clock: Clock, staged: bool
) -> None:
    store.ensure_account("hub", "reg.example")
    assert store.repository_version("hub", "app") is None
    scan(store, [StagedTag("1.0", DIGEST_A), StagedTag("2.0", DIGEST_A)], staged=staged)
    stamps = [store.repository_version("hub", "app")]

    def rescan(listing: Sequence[StagedTag]) -> None:
        clock.advance(1)
        scan(store, listing, staged=staged)
        stamps.append(store.repository_version("hub", "app"))

    rescan([StagedTag.seen("1.0"), StagedTag.seen("2.0")])  # nothing changed
    assert stamps[-1] == stamps[-2]
    created = datetime(2024, 1, 2, tzinfo=UTC)
    rescan([StagedTag("1.0", DIGEST_A, created=created), StagedTag.seen("2.0")])  # metadata
    assert stamps[-1] != stamps[-2]
    rescan([StagedTag("1.0", DIGEST_B, created=created), StagedTag.seen("2.0")])  # digest
    assert stamps[-1] != stamps[-2]
    rescan([StagedTag.seen("1.0"), StagedTag.seen("2.0"), StagedTag.seen("3.0")])  # added
    assert stamps[-1] != stamps[-2]
    rescan([StagedTag.seen("1.0"), StagedTag.seen("3.0")])  # removed
    assert stamps[-1] != stamps[-2]
    assert len(set(stamps)) == len(stamps) - 1  # only the unchanged rescan kept its stamp
