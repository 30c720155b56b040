"""Lookup queries, metadata cache and scan runs on a real store
(SQLite, or PostgreSQL with REGWATCH_TEST_STORE=postgres)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from store_support import assert_search_index_exact

from regwatch.models import ImageConfig, ManifestInfo, PlatformManifest
from regwatch.store import StagedTag, Store, open_store
from regwatch.store.dialect import merge_search_index, search_index_segments, trigram_counts
from regwatch.store.queries import _IMAGE_COLUMNS, _find_query, _sqlite_sql

T0 = datetime(2024, 5, 1, tzinfo=UTC)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with open_store(store_url) as opened:
        yield opened
        assert_search_index_exact(opened)


def index(store: Store, account: str, registry: str, repo: str, tags: list[StagedTag]) -> None:
    store.ensure_account(account, registry)
    started = store.begin_repository_scan(account, repo)
    store.stage_tags(started, tags)
    store.finish_repository_scan(started)


def names(images: list[object]) -> list[str]:
    return [f"{i.account}:{i.repository}:{i.tag}" for i in images]  # type: ignore[attr-defined]


@pytest.fixture
def two_accounts(store: Store) -> Store:
    index(store, "a", "reg-a.example", "web/app", [StagedTag(f"1.{i}") for i in range(5)])
    index(store, "a", "reg-a.example", "web/api", [StagedTag("1.0"), StagedTag("latest")])
    index(store, "b", "reg-b.example:5000", "web/app", [StagedTag("1.0"), StagedTag("2.0")])
    return store


def test_find_by_substring_of_the_full_reference(two_accounts: Store) -> None:
    store = two_accounts
    assert names(store.find_images("reg-b.example:5000/web/app:2")) == ["b:web/app:2.0"]
    assert names(store.find_images("WEB/API:LAT")) == ["a:web/api:latest"]  # case-insensitive
    assert names(store.find_images("p:1.4")) == ["a:web/app:1.4"]
    assert store.find_images("no-such-thing") == []


def test_substring_search_with_trigram_counts_is_exact(two_accounts: Store) -> None:
    """Once the substring index's counts are loaded (SQLite), `q` ANDs its rarest trigrams;
    results stay exact, also for tags indexed after the counts were read."""
    store = two_accounts
    if store.is_sqlite:
        counts = trigram_counts(store.engines.reader)
        counts.load()
        assert counts.get() is not None
        assert (counts.get() or {})["web"] == 9  # every ref holds "web"
    index(store, "b", "reg-b.example:5000", "web/app", [StagedTag("1.0"), StagedTag("zq9")])
    assert names(store.find_images("reg-b.example:5000/web/app:2")) == []  # 2.0 was removed
    assert names(store.find_images("app:zq9")) == ["b:web/app:zq9"]
    assert names(store.find_images("WEB/API:LAT")) == ["a:web/api:latest"]
    assert len(store.find_images("web/ap")) == 9


def six_scans(store: Store) -> list[str]:
    """Six repositories, each indexed by its own scan (SQLite: six index segments); the names
    of their tags in id order."""
    for i in range(6):
        index(store, "a", "reg.example", f"team/app{i}", [StagedTag(f"1.{j}") for j in range(3)])
    return [f"a:team/app{i}:1.{j}" for i in range(6) for j in range(3)]


def segments(store: Store) -> int:
    with store.engines.reader.connect() as conn:
        return search_index_segments(conn.connection.driver_connection)


def test_merging_the_substring_index_keeps_every_match(store: Store) -> None:
    """SQLite: each scan adds a segment to the substring index; the maintenance merges them
    into one and finds the same tags. PostgreSQL has nothing to merge."""
    expected = six_scans(store)
    steps = merge_search_index(store.engines.reader, above=1)
    if store.is_sqlite:
        assert steps >= 1
        assert segments(store) == 1
        assert merge_search_index(store.engines.reader, above=1) == 0  # nothing left to do
    else:
        assert steps == 0
    assert names(store.find_images("app", limit=100)) == expected
    assert names(store.find_images("app3:1.2")) == ["a:team/app3:1.2"]


def test_the_counts_refresh_merges_a_fragmented_index(store: Store) -> None:
    """The first `q` starts the trigram counts' background load, which first merges an index
    of more than 4 segments (SQLite)."""
    expected = six_scans(store)
    if not store.is_sqlite:
        assert names(store.find_images("app", limit=100)) == expected
        return
    assert segments(store) > 4
    counts = trigram_counts(store.engines.reader)
    assert names(store.find_images("app", limit=100)) == expected  # starts the refresh
    deadline = time.monotonic() + 30
    while counts.get() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert counts.get() is not None
    assert segments(store) == 1
    assert names(store.find_images("app", limit=100)) == expected


def test_short_queries_fall_back_to_a_scan(two_accounts: Store) -> None:
    assert names(two_accounts.find_images("2.", account="b")) == ["b:web/app:2.0"]
    assert len(two_accounts.find_images("a")) == 9


def test_like_wildcards_in_q_are_literal(two_accounts: Store) -> None:
    assert two_accounts.find_images("%") == []
    assert two_accounts.find_images("web_app") == []
    assert two_accounts.find_images("1_0") == []


def test_filters_are_exact(two_accounts: Store) -> None:
    store = two_accounts
    assert names(store.find_images(account="b")) == ["b:web/app:1.0", "b:web/app:2.0"]
    assert names(store.find_images(repository="web/api")) == ["a:web/api:1.0", "a:web/api:latest"]
    assert names(store.find_images(repository="web/app", tag="1.0")) == [
        "a:web/app:1.0",
        "b:web/app:1.0",
    ]
    assert names(store.find_images(tag="1.0", account="b")) == ["b:web/app:1.0"]
    assert store.find_images(repository="web") == []
    assert store.find_images(account="nobody") == []
    assert store.find_images(account="nobody", q="web") == []


def test_a_tag_alone_finds_exactly_that_tag_everywhere(store: Store) -> None:
    """Without a repository, a tag is found in every repository and account, in index order, and
    only that tag: not a tag it begins (1.0 / 1.0.1), nor the same letters in another case, nor
    a port or repository name that holds it (SQLite: through the trigram index as ":tag", or a
    scan for a one-letter tag)."""
    tags = ["1.0", "1.0.1", "v1", "V1", "a", "a1", "5000", "app"]
    index(store, "a", "reg.example:5000", "team/app", [StagedTag(t) for t in tags])
    index(store, "a", "reg.example:5000", "team/5000", [StagedTag("1.0"), StagedTag("v1")])
    index(store, "b", "other.example", "app", [StagedTag("V1"), StagedTag("a")])
    assert names(store.find_images(tag="1.0")) == ["a:team/app:1.0", "a:team/5000:1.0"]
    assert names(store.find_images(tag="v1")) == ["a:team/app:v1", "a:team/5000:v1"]
    assert names(store.find_images(tag="V1")) == ["a:team/app:V1", "b:app:V1"]
    assert names(store.find_images(tag="a")) == ["a:team/app:a", "b:app:a"]
    assert names(store.find_images(tag="a1")) == ["a:team/app:a1"]
    assert names(store.find_images(tag="5000")) == ["a:team/app:5000"]
    assert names(store.find_images(tag="app")) == ["a:team/app:app"]
    assert names(store.find_images(tag="V1", account="b")) == ["b:app:V1"]
    assert names(store.find_images(tag="v1", limit=1)) == ["a:team/app:v1"]
    assert names(store.find_images("5000/v", tag="v1")) == []  # q applies too: "5000/team…"
    assert names(store.find_images("team/5000", tag="v1")) == ["a:team/5000:v1"]
    assert store.find_images(tag="1.") == []
    assert store.find_images(tag="v1", account="nobody") == []


def test_a_tag_alone_is_looked_up_through_an_index_on_sqlite(store: Store) -> None:
    """SQLite has no index of every tag name (migration 0005): a tag goes through the trigram
    index, a one-character tag through its partial index; neither reads the whole table.
    (PostgreSQL keeps its tag-name index: test_store_schema.)"""
    index(store, "a", "reg.example", "team/app", [StagedTag("v1"), StagedTag("a")])
    if not store.is_sqlite:
        assert names(store.find_images(tag="a")) == ["a:team/app:a"]
        return
    for tag, used in (("v1", "tags_search"), ("a", "ix_tags_short_tag")):
        with store.engines.reader.connect() as conn:
            statement, params = _find_query(conn, True, None, None, None, tag, 20, _IMAGE_COLUMNS)
            sql, order, defaults = _sqlite_sql(statement)
            values = [params[name] if name in params else defaults[name] for name in order]
            driver = conn.connection.driver_connection
            plan = [row[3] for row in driver.execute(f"EXPLAIN QUERY PLAN {sql}", values)]
        assert any(used in step for step in plan), plan
        assert "SCAN tags" not in plan, plan
        assert names(store.find_images(tag=tag)) == [f"a:team/app:{tag}"]


def test_q_combines_with_every_filter(two_accounts: Store) -> None:
    store = two_accounts
    assert names(store.find_images("web/app", account="b")) == ["b:web/app:1.0", "b:web/app:2.0"]
    assert names(store.find_images("app:1.0", repository="web/app")) == [
        "a:web/app:1.0",
        "b:web/app:1.0",
    ]
    assert names(store.find_images("reg-a", tag="1.0")) == ["a:web/app:1.0", "a:web/api:1.0"]
    assert names(store.find_images("reg-b", repository="web/app", account="a")) == []


def test_limit_is_applied_after_the_filters(store: Store) -> None:
    # the other account's matching images come first in index order, and there are many of them
    index(store, "early", "reg.example", "team/x", [StagedTag(f"v{i}") for i in range(50)])
    index(store, "late", "reg.example", "team/x", [StagedTag(f"v{i}") for i in range(5)])
    for kwargs in ({"account": "late"}, {"account": "late", "repository": "team/x"}):
        found = store.find_images("team/x:v", limit=3, **kwargs)  # type: ignore[arg-type]
        assert len(found) == 3
        assert {i.account for i in found} == {"late"}
    assert len(store.find_images("team/x:v", account="late", limit=100)) == 5
    assert len(store.find_images(tag="v3", limit=1, account="late")) == 1
    assert store.find_images("team/x", limit=0) == []


def test_tags_orders(store: Store) -> None:
    dates = {"1.10.0": 3, "1.9.0": 1, "1.2.0": 2, "latest": 3, "1.10.0-rc.1": 0, "dev": None}
    staged = [
        StagedTag(t, created=None if d is None else T0 + timedelta(days=d))
        for t, d in dates.items()
    ]
    index(store, "a", "reg.example", "r", staged)
    assert store.tags("a", "r") == ["1.10.0", "1.10.0-rc.1", "1.2.0", "1.9.0", "dev", "latest"]
    assert store.tags("a", "r", "semver") == [
        "1.2.0",
        "1.9.0",
        "1.10.0-rc.1",
        "1.10.0",
        "dev",
        "latest",
    ]
    # newest first; equal dates newest-named first; unknown dates last
    assert store.tags("a", "r", "date") == [
        "latest",
        "1.10.0",
        "1.2.0",
        "1.9.0",
        "1.10.0-rc.1",
        "dev",
    ]
    assert store.tags("a", "nope") == []
    with pytest.raises(ValueError, match="unknown tag order"):
        store.tags("a", "r", "random")  # type: ignore[arg-type]


def test_lexical_orders_are_byte_order(store: Store) -> None:
    """Not the database's locale order (on PostgreSQL an ICU collation would give a, A, b, B)."""
    tag_names = ["b", "B", "a", "A", "_x", "-y", "Z9", "10", "9", "é"]
    for repo in ("team/b", "team/B", "team/a", "team/A"):
        index(store, "acct", "reg.example", repo, [StagedTag(t) for t in tag_names])
    assert store.tags("acct", "team/a") == sorted(tag_names)
    repos = [r.name for r in store.repositories("acct")]
    assert repos == ["team/A", "team/B", "team/a", "team/b"]
    found = store.find_images(account="acct", limit=12)
    assert [(i.repository, i.tag) for i in found] == [("team/A", t) for t in sorted(tag_names)] + [
        ("team/B", "-y"),
        ("team/B", "10"),
    ]


def test_counts_and_account_status(two_accounts: Store) -> None:
    store = two_accounts
    counts = store.counts()
    assert (counts.accounts, counts.repositories, counts.tags) == (2, 3, 9)
    assert counts.tags_by_account == {"a": 7, "b": 2}
    run = store.start_run("a", holder="instance-1")
    status = store.account_status("a")
    assert status is not None
    assert status.last_run is not None
    assert status.last_run.status == "running"
    assert status.last_finished_run is None
    store.finish_run(
        run,
        requests=42,
        repositories_ok=1,
        repositories_failed=1,
        errors=[{"repository": "web/api", "error": "x" * 5000}],
    )
    status = store.account_status("a")
    assert status is not None
    assert (status.repositories, status.tags, status.registry) == (2, 7, "reg-a.example")
    finished = status.last_finished_run
    assert finished is not None
    assert finished == status.last_run
    assert (finished.status, finished.requests, finished.holder) == ("partial", 42, "instance-1")
    assert (finished.repositories_ok, finished.repositories_failed) == (1, 1)
    assert finished.errors[0]["repository"] == "web/api"
    assert len(finished.errors[0]["error"]) <= 2000  # clipped
    assert finished.finished_at is not None
    assert store.account_status("nobody") is None


def test_run_status_is_derived_from_the_counters(store: Store) -> None:
    store.ensure_account("a", "reg.example")
    outcomes = []
    for ok, failed, errors in ((3, 0, []), (0, 0, [{"repository": None, "error": "catalog"}])):
        run = store.start_run("a")
        store.finish_run(
            run, requests=1, repositories_ok=ok, repositories_failed=failed, errors=errors
        )
        status = store.account_status("a")
        assert status is not None
        assert status.last_run is not None
        outcomes.append(status.last_run.status)
    assert outcomes == ["ok", "failed"]


def test_metadata_cache_is_content_addressed_and_immutable(store: Store) -> None:
    index_manifest = ManifestInfo(
        digest="sha256:idx",
        media_type="application/vnd.oci.image.index.v1+json",
        platforms=(PlatformManifest("sha256:amd", "m", "linux", "amd64"),),
        annotations={"k": "v"},
    )
    image = ManifestInfo(digest="sha256:img", media_type="m", size=10, config_digest="sha256:cfg")
    store.put_manifests([index_manifest, image])
    store.put_manifests([ManifestInfo(digest="sha256:img", media_type="other")])  # ignored
    assert store.get_manifest("sha256:idx") == index_manifest
    assert store.get_manifest("sha256:img") == image
    assert store.get_manifest("sha256:none") is None
    config = ImageConfig("sha256:cfg", created=T0, labels={"branch": "main"}, os="linux")
    store.put_configs([config])
    store.put_configs([ImageConfig("sha256:cfg", created=None)])  # ignored
    assert store.get_config("sha256:cfg") == config
    assert store.get_configs(["sha256:cfg", "sha256:x"]) == {"sha256:cfg": config}
    many = [ImageConfig(f"sha256:{i}", created=None) for i in range(1200)]
    store.put_configs(many)
    assert len(store.get_configs(c.digest for c in many)) == 1200


def test_find_returns_details_for_include_details(store: Store) -> None:
    index(
        store,
        "a",
        "reg.example",
        "r",
        [
            StagedTag(
                "1.0",
                digest="sha256:img",
                index_digest="sha256:idx",
                platform_digests={"linux/amd64": "sha256:img"},
                created=T0,
                labels={"commitId": "abc", "buildNumber": "7", "branch": "main"},
            )
        ],
    )
    (image,) = store.find_images("r:1.0")
    assert image.labels == {"commitId": "abc", "buildNumber": "7", "branch": "main"}
    assert (image.digest, image.index_digest, image.created) == ("sha256:img", "sha256:idx", T0)
    assert image.platform_digests == {"linux/amd64": "sha256:img"}
