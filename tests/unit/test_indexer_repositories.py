"""Choosing repositories (pure parts): regex full match, skip, catalog files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regwatch.errors import ConfigError
from regwatch.indexer.repositories import read_catalog_file, select

names = st.lists(st.sampled_from(["a/x", "a/xy", "b/x", "c", "a/x/y", ""]), max_size=12)


def test_regex_must_match_the_whole_name() -> None:
    assert select(["a/x", "a/xy", "ba/x"], "a/x") == ["a/x"]
    assert select(["a/x", "a/xy", "ba/x"], "a/.*") == ["a/x", "a/xy"]


def test_skip_and_duplicates_and_empty_names_are_dropped_in_order() -> None:
    assert select(["c", "a", "", "b", "a", "c"], None, ["b"]) == ["c", "a"]


@given(names, st.sampled_from([None, "a/.*", "a/x|c", "nothing"]), names)
def test_select_is_the_ordered_filtered_set(
    given_names: list[str], regex: str | None, skip: list[str]
) -> None:
    chosen = select(given_names, regex, skip)
    assert len(chosen) == len(set(chosen))
    expected = [
        n for n in dict.fromkeys(given_names)
        if n and n not in skip and (regex is None or re.fullmatch(regex, n))
    ]  # fmt: skip
    assert chosen == expected


def test_a_catalog_file_lists_repositories(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({"repositories": ["a/b", "c"]}))
    assert read_catalog_file(str(path)) == ["a/b", "c"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{oops", "not valid JSON"),
        ('{"repositories": "a/b"}', "no 'repositories' list"),
        ('["a/b"]', "no 'repositories' list"),
        ('{"repositories": [1, 2]}', "no 'repositories' list"),
    ],
)
def test_a_bad_catalog_file_is_a_config_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message) as caught:
        read_catalog_file(str(path))
    assert str(path) in str(caught.value)


def test_a_missing_catalog_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the catalog file"):
        read_catalog_file(str(tmp_path / "absent.json"))
