"""The semver sort key: examples, semver 2.0 precedence, and total order (hypothesis)."""

from __future__ import annotations

import itertools
import random
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from regwatch.store.sorting import _general_key, _plain_key, is_version, semver_key


def ordered(tags: list[str]) -> list[str]:
    return sorted(tags, key=semver_key)


def test_semver_precedence_examples_from_the_spec() -> None:
    spec = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "2.0.0",
        "2.1.0",
        "2.1.1",
    ]
    shuffled = spec[:]
    random.Random(7).shuffle(shuffled)
    assert ordered(shuffled) == spec


def test_numbers_compare_numerically_not_lexically() -> None:
    assert ordered(["1.10.0", "1.9.0", "1.2.0", "10.0.0", "9.0.0"]) == [
        "1.2.0",
        "1.9.0",
        "1.10.0",
        "9.0.0",
        "10.0.0",
    ]


def test_v_prefix_is_tolerated_and_ties_break_on_the_raw_text() -> None:
    assert ordered(["v1.2.0", "1.10.0", "V1.3.0", "1.2.0"]) == [
        "1.2.0",
        "v1.2.0",
        "V1.3.0",
        "1.10.0",
    ]


def test_short_versions_count_missing_parts_as_zero() -> None:
    assert ordered(["1.25.3", "1.25", "1", "1.24.9", "2"]) == ["1", "1.24.9", "1.25", "1.25.3", "2"]


def test_prerelease_sorts_before_its_release() -> None:
    assert ordered(["1.25", "1.25-alpine", "1.24"]) == ["1.24", "1.25-alpine", "1.25"]


def test_non_versions_come_after_versions_lexically() -> None:
    tags = ["latest", "2.0.0", "main", "1.0.0", "stable", "abc-1.0", "0.1.0"]
    assert ordered(tags) == ["0.1.0", "1.0.0", "2.0.0", "abc-1.0", "latest", "main", "stable"]


def test_build_metadata_does_not_change_precedence() -> None:
    assert ordered(["1.0.1", "1.0.0+b2", "1.0.0-rc.1"]) == ["1.0.0-rc.1", "1.0.0+b2", "1.0.1"]


def test_what_counts_as_a_version() -> None:
    assert is_version("1.2.3")
    assert is_version("v1")
    assert is_version("20240101")
    assert not is_version("latest")
    assert not is_version("1.2.3.4")
    assert not is_version("1.2.3\n")
    assert not is_version("v")
    assert not is_version("1." + "9" * 30)  # too long to encode: sorted lexically instead


def test_keys_are_plain_ascii_for_any_text_column() -> None:
    for tag in ["1.0.0-alpha.1", "v2", "latest", "1.0.0+x"]:
        assert semver_key(tag).isascii()
        assert "\x00" not in semver_key(tag)


# --- properties ----------------------------------------------------------------------------------
numbers = st.integers(min_value=0, max_value=10**12)
identifiers = st.one_of(
    numbers.map(str),
    st.from_regex(r"[0-9A-Za-z-]*[A-Za-z-][0-9A-Za-z-]*", fullmatch=True).filter(bool),
)
semvers = st.builds(
    lambda core, pre: ".".join(map(str, core)) + (("-" + ".".join(pre)) if pre else ""),
    st.tuples(numbers, numbers, numbers),
    st.lists(identifiers, max_size=4),
)
tag_text = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,40}", fullmatch=True)
any_tag = st.one_of(semvers, tag_text)


def reference_compare(a: str, b: str) -> int:
    """Semver 2.0 §11 precedence, written independently of the key encoding."""

    def parse(v: str) -> tuple[list[int], list[str] | None]:
        core, _, pre = v.partition("-")
        return [int(x) for x in core.split(".")], pre.split(".") if pre else None

    (ca, pa), (cb, pb) = parse(a), parse(b)
    if ca != cb:
        return -1 if ca < cb else 1
    if pa is None or pb is None:
        return 0 if pa == pb else (1 if pa is None else -1)
    for x, y in zip(pa, pb, strict=False):
        if x == y:
            continue
        if x.isdigit() and y.isdigit():
            return -1 if int(x) < int(y) else 1
        if x.isdigit() != y.isdigit():
            return -1 if x.isdigit() else 1
        return -1 if x < y else 1
    return (len(pa) > len(pb)) - (len(pa) < len(pb))


@settings(max_examples=500)
@given(semvers, semvers)
def test_key_order_agrees_with_semver_precedence(a: str, b: str) -> None:
    expected = reference_compare(a, b)
    if expected < 0:
        assert semver_key(a) < semver_key(b)
    elif expected > 0:
        assert semver_key(a) > semver_key(b)
    else:
        assert a == b  # generated versions carry no build metadata: equal precedence is equality


@settings(max_examples=300)
@given(st.lists(any_tag, min_size=1, max_size=30, unique=True))
def test_order_is_total_and_consistent(tags: list[str]) -> None:
    keys = [semver_key(t) for t in tags]
    assert len(set(keys)) == len(tags)  # distinct tags never tie: the order is strict and total
    once = ordered(tags)
    assert ordered(list(reversed(tags))) == once  # independent of input order
    # transitivity against the reference for the version-like ones, pairwise along the order
    versions = [t for t in once if _is_generated_semver(t)]
    for earlier, later in itertools.pairwise(versions):
        assert reference_compare(earlier, later) <= 0


_STRICT = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
)


def _is_generated_semver(tag: str) -> bool:
    """Strict semver 2.0 without build metadata (the official regex), as reference_compare needs."""
    return _STRICT.fullmatch(tag) is not None


@given(semvers, tag_text)
def test_versions_sort_before_other_tags(version: str, other: str) -> None:
    if not is_version(other):
        assert semver_key(version) < semver_key(other)


@given(st.lists(tag_text.filter(lambda t: not is_version(t)), max_size=20))
def test_other_tags_keep_lexical_order(tags: list[str]) -> None:
    assert ordered(tags) == sorted(tags)


# --- the plain-version fast path must give exactly the general key ------------------------------
digit_runs = st.from_regex(r"[0-9]{1,30}", fullmatch=True)
plain_versions = st.builds(
    lambda prefix, parts: prefix + ".".join(parts),
    st.sampled_from(["", "v", "V"]),
    st.lists(digit_runs, min_size=1, max_size=3),
)
near_plain = st.builds(
    lambda version, suffix: version + suffix,
    plain_versions,
    st.sampled_from(["", ".", ".0.0", "-rc.1", "+b1", "-", "\n", "x", ".1.2.3"]),
)


@settings(max_examples=500)
@given(st.one_of(plain_versions, near_plain, any_tag))
def test_fast_path_gives_the_general_key(tag: str) -> None:
    assert semver_key(tag) == _general_key(tag)


def test_fast_path_edge_cases_give_the_general_key() -> None:
    long = "9" * 26
    edges = ["0", "v0", "V007", "0.0.0", "v0049", "1.2", "01.002.0003", long, "v" + long]
    edges += ["1." + long + "9", "0" * 40 + "1", "1.2.3.4", "v", "v.1", "1..2", "1.2.", "١٢"]
    for tag in edges:
        assert semver_key(tag) == _general_key(tag), tag
    assert _plain_key("0" * 40 + "1") == _general_key("0" * 40 + "1")  # leading zeros stripped
    assert _plain_key("1." + long + "9") is None  # 27 digits: left to the general path
    assert _plain_key("1.2.3-rc.1") is None


def test_fast_path_keeps_the_order_of_plain_versions() -> None:
    tags = ["v0049", "v0001", "1.10", "1.9.9", "v1.10.0", "10", "2", "0.0.1", "V2.0"]
    assert ordered(tags) == ["0.0.1", "v0001", "1.9.9", "1.10", "v1.10.0", "2", "V2.0", "10",
                             "v0049"]  # fmt: skip
