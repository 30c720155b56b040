"""Store URL resolution and the pure helpers of the search (no database)."""

from __future__ import annotations

from pathlib import Path

import pytest

from regwatch.errors import StoreError
from regwatch.store.dialect import account_id_range, like_pattern, trigram_query
from regwatch.store.url import (
    DEFAULT_STORE_URL,
    ENV_STORE_URL,
    ensure_sqlite_directory,
    redact_store_url,
    resolve_store_url,
    sqlite_path,
)


def test_default_is_a_sqlite_file_under_the_home_directory() -> None:
    url = resolve_store_url(None, env={})
    assert DEFAULT_STORE_URL == "sqlite:///~/.regwatch/regwatch.db"
    assert url == f"sqlite:///{Path.home()}/.regwatch/regwatch.db"
    assert "~" not in url


def test_environment_wins_over_config_which_wins_over_default() -> None:
    env = {ENV_STORE_URL: "sqlite:////srv/env.db"}
    assert resolve_store_url("sqlite:////srv/config.db", env=env) == "sqlite:////srv/env.db"
    assert resolve_store_url("sqlite:////srv/config.db", env={}) == "sqlite:////srv/config.db"
    assert resolve_store_url("  ", env={ENV_STORE_URL: ""}) == resolve_store_url(None, env={})


def test_tilde_is_expanded_in_sqlite_paths() -> None:
    url = resolve_store_url("sqlite:///~/data/x.db", env={})
    assert url == f"sqlite:///{Path.home()}/data/x.db"
    assert sqlite_path(url) == Path.home() / "data" / "x.db"


def test_postgresql_urls_get_the_psycopg3_driver_and_keep_their_password() -> None:
    url = resolve_store_url("postgresql://rw:s3cret@db:5432/regwatch", env={})
    assert url == "postgresql+psycopg://rw:s3cret@db:5432/regwatch"
    assert sqlite_path(url) is None
    assert "s3cret" not in redact_store_url(url)
    assert redact_store_url(url) == "postgresql+psycopg://rw:***@db:5432/regwatch"


def test_in_memory_sqlite_has_no_path() -> None:
    assert sqlite_path("sqlite://") is None
    assert sqlite_path("sqlite:///:memory:") is None


@pytest.mark.parametrize("bad", ["not a url", "mysql://u:pw@h/db", "oracle://x"])
def test_unsupported_or_malformed_urls_are_store_errors_without_the_url(bad: str) -> None:
    with pytest.raises(StoreError) as err:
        resolve_store_url(bad, env={})
    assert "pw" not in str(err.value)
    assert err.value.hint


def test_directory_of_a_sqlite_file_is_created_private(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/a/b/regwatch.db"
    ensure_sqlite_directory(url)
    assert (tmp_path / "a" / "b").is_dir()
    assert (tmp_path / "a" / "b").stat().st_mode & 0o777 == 0o700


def test_uncreatable_directory_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create the store directory"):
        ensure_sqlite_directory(f"sqlite:///{blocker}/sub/regwatch.db")


def test_like_pattern_escapes_wildcards() -> None:
    assert like_pattern("a%b_c\\d") == "%a\\%b\\_c\\\\d%"


def test_trigram_query_covers_the_text_and_escapes_quotes() -> None:
    assert trigram_query("ab") is None
    assert trigram_query("abc") == '"abc"'
    assert trigram_query("ABCDEFG") == '"abc" AND "def" AND "efg"'
    assert trigram_query('a"bcd') == '"a""b" AND "bcd"'
    long = trigram_query("x" * 5 + "abcdefghijklmnopqrstuvwxyz0123456789")
    assert long is not None
    assert long.count(" AND ") < 8


def test_trigram_query_with_counts_ands_the_three_rarest() -> None:
    counts = {"cac": 900, "ach": 800, "che": 700, "he-": 50, "e-c": 60, "-ca": 40}
    assert trigram_query("Cache-cac", counts) == '"-ca" AND "he-" AND "e-c"'
    assert trigram_query("cache-zz", counts) == '"e-z" AND "-zz" AND "he-"'  # unknown: rarest
    assert trigram_query("cac", counts) == '"cac"'
    assert trigram_query("ab", counts) is None


def test_account_id_ranges_do_not_overlap() -> None:
    low1, high1 = account_id_range(1)
    low2, high2 = account_id_range(2)
    assert low1 < high1 < low2 < high2
    assert high2 < 2**63
