"""`q` with a limit: the first `limit` matches in id order, whatever the backend does to find
them (SQLite: FTS5 trigrams; PostgreSQL: store/search.py's probes and gap searches, run here
with tiny probe windows so that every branch is taken on a few tags). Runs on both stores."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from regwatch.store import StagedTag, Store, open_store
from regwatch.store import search as search_module


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with open_store(store_url) as opened:
        yield opened


@pytest.fixture
def small_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Probe 3 tags per account, cap the index's answer at 4 ids, read ranges of <= 6 ids."""
    monkeypatch.setattr(search_module, "PROBE_ROWS", 3)
    monkeypatch.setattr(search_module._Gaps, "CAP", 4)
    monkeypatch.setattr(search_module._Gaps, "WALK", 6)


def index(store: Store, account: str, repo: str, tags: list[str]) -> None:
    store.ensure_account(account, f"{account}.example:5000")
    started = store.begin_repository_scan(account, repo)
    store.stage_tags(started, [StagedTag(tag) for tag in tags])
    store.finish_repository_scan(started)


def found(store: Store, q: str, limit: int | None, account: str | None = None) -> list[str]:
    images = store.find_images(q, limit=limit, account=account)
    return [f"{i.account}:{i.repository}:{i.tag}" for i in images]


@pytest.fixture
def three_accounts(store: Store, small_windows: None) -> Store:
    """Matches of `web-7` only late in account b (after 12 other tags), many of `app` in each
    account, `c.example` (a registry) only in account c, `1.0` in every repository."""
    index(store, "a", "team/app", [f"1.{i}" for i in range(8)])
    index(store, "b", "team/other", [f"0.{i}" for i in range(12)])
    index(store, "b", "team/web-7", ["1.0", "1.1", "2.0"])
    index(store, "b", "team/app", [f"1.{i}" for i in range(5)])
    index(store, "c", "team/app", [f"1.{i}" for i in range(10)])
    return store


def test_the_first_matches_by_id_whatever_is_probed(three_accounts: Store) -> None:
    store = three_accounts
    everything = found(store, "team/", None)
    assert len(everything) == 8 + 12 + 3 + 5 + 10
    for q in ("team/", "app", "web-7", "c.example", ":1.", "1.0", "m/ot", "zz-none"):
        matching = found(store, q, None)
        assert matching == [name for name in everything if name in matching]  # id order
        for limit in (1, 2, 3, 5, 9, 50):
            assert found(store, q, limit) == matching[:limit], (q, limit)


def test_matches_clustered_after_the_probe_window(three_accounts: Store) -> None:
    """b's probe window holds team/other only; web-7 sits behind it, and a's rest first."""
    store = three_accounts
    assert found(store, "web-7", 2) == ["b:team/web-7:1.0", "b:team/web-7:1.1"]
    assert found(store, "web-7:2", 5) == ["b:team/web-7:2.0"]
    assert found(store, "c.example:5000/team/app:1.", 3) == [
        "c:team/app:1.0",
        "c:team/app:1.1",
        "c:team/app:1.2",
    ]


def test_dense_matches_past_the_cap(three_accounts: Store) -> None:
    """More matches in a's rest than the cap: the first ones by id, read from a short range
    (a) or searched again (c's range is longer than the walk)."""
    store = three_accounts
    assert found(store, "app:1.", 6) == [f"a:team/app:1.{i}" for i in range(6)]
    assert found(store, "app", 12)[8:] == [f"b:team/app:1.{i}" for i in range(4)]
    assert found(store, "c.example", 9) == [f"c:team/app:1.{i}" for i in range(9)]


def test_account_filter_and_punctuation(three_accounts: Store) -> None:
    store = three_accounts
    assert found(store, "APP:1.", 3, account="b") == [f"b:team/app:1.{i}" for i in range(3)]
    assert found(store, "web-7", 1, account="c") == []
    assert found(store, "web-7", 3, account="nobody") == []
    # punctuation is translated in the PostgreSQL index: a q made of it still matches exactly
    assert found(store, ":5000/", 2) == ["a:team/app:1.0", "a:team/app:1.1"]
    assert found(store, "-7:", 9) == ["b:team/web-7:1.0", "b:team/web-7:1.1", "b:team/web-7:2.0"]
    assert found(store, "q", 5) == []  # 'q' stands for '.' in the translated text, never here
    assert found(store, "%", 5) == []
    assert found(store, "_", 5) == []
    assert found(store, "app", 0) == []
