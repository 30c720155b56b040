"""The planner's rule for known tags whose metadata is missing (extends tests/unit/test_plan.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from regwatch.indexer.plan import TagNeeds, plan_page

tags = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=8)
digests = st.one_of(st.none(), st.sampled_from(["sha256:aa", "sha256:bb"]))
needs = st.builds(TagNeeds, st.booleans(), st.booleans(), st.booleans())


def test_known_tags_without_a_digest_are_rechecked_when_metadata_is_wanted() -> None:
    known = {"filled": "sha256:aa", "missing": None}
    plan = plan_page(known, ["filled", "missing", "new"], TagNeeds(labels=True))
    assert plan.new == ("new",)
    assert plan.recheck == ("missing",)
    assert plan.unchanged == ("filled",)


def test_without_any_metadata_a_missing_digest_costs_nothing() -> None:
    plan = plan_page({"a": None}, ["a"], TagNeeds())
    assert (plan.recheck, plan.unchanged) == ((), ("a",))


@given(st.dictionaries(tags, digests), st.lists(tags), needs)
def test_a_known_tag_is_rechecked_exactly_when_it_may_have_changed_or_lacks_data(
    known: dict[str, str | None], page: list[str], wanted: TagNeeds
) -> None:
    plan = plan_page(known, page, wanted)
    for tag in set(page) & known.keys():
        expected = wanted.digest or (wanted.any_metadata and known[tag] is None)
        assert (tag in plan.recheck) == expected
        assert (tag in plan.unchanged) == (not expected)
