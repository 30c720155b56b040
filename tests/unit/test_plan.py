"""The pure rescan planner: which tags cost a registry round trip, and what a change means."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from regwatch.indexer.plan import Change, TagNeeds, classify, plan_page, vanished

tags = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=8)
digests = st.one_of(st.none(), st.sampled_from(["sha256:aa", "sha256:bb", "sha256:cc"]))


def test_unchanged_repository_without_digest_tracking_needs_nothing() -> None:
    known = {"1.0": None, "1.1": None}
    plan = plan_page(known, ["1.0", "1.1"], TagNeeds())
    assert plan.new == ()
    assert plan.recheck == ()
    assert plan.unchanged == ("1.0", "1.1")


def test_new_tags_are_reported_in_listing_order() -> None:
    plan = plan_page({"1.0": None}, ["2.0", "1.0", "1.5"], TagNeeds())
    assert plan.new == ("2.0", "1.5")


def test_digest_tracking_rechecks_known_tags() -> None:
    plan = plan_page({"1.0": "sha256:aa"}, ["1.0", "2.0"], TagNeeds(digest=True))
    assert plan.new == ("2.0",)
    assert plan.recheck == ("1.0",)


def test_duplicates_and_empty_tags_in_a_page_are_dropped() -> None:
    plan = plan_page({}, ["a", "", "a", "b"], TagNeeds())
    assert plan.new == ("a", "b")


@given(st.dictionaries(tags, digests), st.lists(tags), st.booleans())
def test_every_listed_tag_lands_in_exactly_one_bucket(
    known: dict[str, str | None], page: list[str], track: bool
) -> None:
    plan = plan_page(known, page, TagNeeds(digest=track))
    buckets = [*plan.new, *plan.recheck, *plan.unchanged]
    assert sorted(buckets) == sorted(set(page))
    assert all(t not in known for t in plan.new)
    assert all(t in known for t in (*plan.recheck, *plan.unchanged))
    if not track:
        assert plan.recheck == ()


@given(st.sets(tags), st.sets(tags))
def test_vanished_is_known_minus_seen(known: set[str], seen: set[str]) -> None:
    assert vanished(known, seen) == sorted(known - seen)


def test_classify_rules() -> None:
    assert classify(False, None, None) is Change.NEW
    assert classify(False, None, "sha256:aa") is Change.NEW
    assert classify(True, "sha256:aa", "sha256:aa") is Change.NONE
    assert classify(True, "sha256:aa", None) is Change.NONE  # HEAD failed: keep, no event
    assert classify(True, None, "sha256:aa") is Change.FILLED  # tracking just turned on
    assert classify(True, "sha256:aa", "sha256:bb") is Change.MOVED


@given(st.booleans(), digests, digests)
def test_classify_fires_only_for_new_or_moved(
    known: bool, old: str | None, new: str | None
) -> None:
    change = classify(known, old, new)
    fires = change in (Change.NEW, Change.MOVED)
    assert fires == (not known or (old is not None and new is not None and old != new))
