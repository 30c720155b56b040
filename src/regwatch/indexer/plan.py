"""Pure planning of an incremental rescan. No I/O.

A rescan lists a repository's tags page by page. For each page, `plan_page` decides which tags
need a registry round trip beyond `tags/list`:

- a tag the store has never seen needs its manifest when any per-tag data is wanted (digest,
  dates, labels), and nothing otherwise;
- a known tag needs a manifest HEAD only with digest tracking (a HEAD, never a GET: a GET counts
  against Docker Hub's pull quota), to notice that the tag was moved to another image;
- a known tag with no digest recorded while per-tag data is wanted is rechecked too: its metadata
  is missing (the fetch failed last time, or the account's flags were just turned on), and the
  recheck fills it in, silently (see `classify`). Once a digest is recorded, its data comes from
  the content-addressed cache and is never asked for again.

`classify` turns an observed (old, new) digest pair into the change it represents, the rule the
trigger layer relies on: a tag seen for the first time is NEW; a known tag whose digest moved from
one value to another is MOVED; a known tag that had no digest recorded (digest tracking just turned
on) is only filled in, silently, so that turning on tracking does not fire for every tag.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


class Change(enum.Enum):
    NONE = "none"
    NEW = "new"  # the tag did not exist in the index
    MOVED = "moved"  # the tag now points at another digest
    FILLED = "filled"  # a digest became known for a known tag; not an event


@dataclass(frozen=True)
class TagNeeds:
    """What the indexer wants to know per tag, derived from the account's flags."""

    digest: bool = False  # trackDigests
    labels: bool = False  # inspectDigests
    created: bool = False  # sortTagsByDate

    @property
    def any_metadata(self) -> bool:
        return self.digest or self.labels or self.created

    @property
    def config_blob(self) -> bool:
        """Labels and creation dates live in the image config blob."""
        return self.labels or self.created


@dataclass(frozen=True)
class PagePlan:
    new: tuple[str, ...]  # not in the store yet
    recheck: tuple[str, ...]  # known, HEAD them: a moved digest, or metadata still missing
    unchanged: tuple[str, ...]  # known, nothing to ask the registry


def plan_page(known: Mapping[str, str | None], page: Sequence[str], needs: TagNeeds) -> PagePlan:
    """Split one page of `tags/list` into new, to-recheck and unchanged tags.

    Duplicates within the page (registries that lie) are kept once, first occurrence wins.
    """
    new: list[str] = []
    recheck: list[str] = []
    unchanged: list[str] = []
    seen: set[str] = set()
    for tag in page:
        if not tag or tag in seen:
            continue
        seen.add(tag)
        if tag not in known:
            new.append(tag)
        elif needs.digest or (needs.any_metadata and known[tag] is None):
            recheck.append(tag)
        else:
            unchanged.append(tag)
    return PagePlan(tuple(new), tuple(recheck), tuple(unchanged))


def vanished(known: Iterable[str], seen: set[str]) -> list[str]:
    """Tags the store has that a *successful* full listing did not return, sorted."""
    return sorted(tag for tag in known if tag not in seen)


def classify(is_known: bool, old_digest: str | None, new_digest: str | None) -> Change:
    """What a tag observation means for the index and for triggers."""
    if not is_known:
        return Change.NEW
    if new_digest is None or old_digest == new_digest:
        return Change.NONE
    if old_digest is None:
        return Change.FILLED
    return Change.MOVED
