"""What the store takes and returns (frozen dataclasses), and the epoch-millisecond conversions.

Tagged images are returned as the shared `regwatch.models.TagRecord`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Literal

TagOrder = Literal["lexical", "semver", "date"]
RepositoryStatus = Literal["new", "ok", "stale"]
RunStatus = Literal["running", "ok", "partial", "failed"]

# Event kinds the indexer records (see regwatch.indexer.plan.Change).
TAG_ADDED = "tag_added"
DIGEST_CHANGED = "digest_changed"


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def duration_ms(span: timedelta) -> int:
    """Whole milliseconds of a duration (leases, TTLs)."""
    return int(span.total_seconds() * 1000)


def from_ms(ms: int | None) -> datetime | None:
    return None if ms is None else at_ms(ms)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def at_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class StagedTag:
    """One tag seen by a repository scan.

    `metadata=False` says only "the tag is still there": the stored digest, dates and labels are
    kept (an unchanged tag, or one whose manifest could not be fetched this time). With
    `metadata=True` the fields below replace the stored ones.
    `event` (e.g. TAG_ADDED, DIGEST_CHANGED) asks for an event to be recorded with the index change;
    the indexer decides, the store only records (`event_id` is generated when not given).
    """

    tag: str
    digest: str | None = None
    index_digest: str | None = None
    platform_digests: Mapping[str, str] = field(default_factory=dict)
    created: datetime | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    metadata: bool = True
    event: str | None = None
    event_id: str | None = None

    @classmethod
    def seen(cls, tag: str, *, event: str | None = None) -> StagedTag:
        """A tag that is still there, with nothing new to record about it.

        Built without `__init__`: a frozen dataclass's `__init__` sets each field through
        `object.__setattr__` and makes two dicts (1.9 µs), and a scan makes one of these per
        listed tag on the event loop (10,000 in the indexing benchmark); filling the instance's
        dict takes ~0.5 µs. The empty mappings are one shared read-only mapping. Equal to
        `StagedTag(tag, metadata=False, event=event)` (tests/unit/test_store_staged_tag.py).
        """
        staged = _new(cls)
        staged.__dict__.update(
            tag=tag,
            digest=None,
            index_digest=None,
            platform_digests=_NO_ENTRIES,
            created=None,
            labels=_NO_ENTRIES,
            metadata=False,
            event=event,
            event_id=None,
        )
        return staged


_new = object.__new__
_NO_ENTRIES: Mapping[str, str] = MappingProxyType({})


@dataclass
class RepositoryScan:
    """A repository scan in progress (see `Store.begin_repository_scan`)."""

    scan_id: str
    account: str
    repository: str
    registry: str
    baseline: bool  # never scanned successfully: its tags are a silent baseline, no events
    started_at: datetime
    staged: int = 0


@dataclass(frozen=True)
class ScanOutcome:
    """What a finished repository scan changed."""

    added: int
    changed: int  # digest changed
    removed: int
    tags: int  # tags in the repository now
    events: int


@dataclass(frozen=True)
class RepositoryState:
    account: str
    name: str
    status: RepositoryStatus
    tag_count: int
    last_ok_at: datetime | None  # last successful tags/list ("last good")
    last_scan_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    changed_at: datetime | None

    @property
    def stale(self) -> bool:
        return self.status == "stale"


@dataclass(frozen=True)
class ScanRun:
    id: int
    account: str
    started_at: datetime
    finished_at: datetime | None
    status: RunStatus
    requests: int
    repositories_ok: int
    repositories_failed: int
    errors: tuple[Mapping[str, Any], ...]
    holder: str | None


@dataclass(frozen=True)
class AccountStatus:
    account: str
    registry: str
    repositories: int
    tags: int
    catalog_ok_at: datetime | None
    catalog_error: str | None
    catalog_error_at: datetime | None
    last_run: ScanRun | None  # the newest run, finished or not
    last_finished_run: ScanRun | None
    stale: tuple[RepositoryState, ...]  # repositories whose last scan failed, with their errors

    @property
    def is_stale(self) -> bool:
        return self.catalog_error is not None or bool(self.stale)


@dataclass(frozen=True)
class Counts:
    accounts: int
    repositories: int
    tags: int
    tags_by_account: Mapping[str, int]


@dataclass(frozen=True)
class HistoryEntry:
    tag: str
    kind: str  # added | changed | removed
    digest: str | None
    previous_digest: str | None
    at: datetime


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    id: str
    kind: str
    account: str
    registry: str
    repository: str
    tag: str
    digest: str | None
    previous_digest: str | None
    created_at: datetime


@dataclass(frozen=True)
class Delivery:
    id: int
    sink: str
    event: StoredEvent
    attempts: int
    status: str  # pending | delivered | dead
    next_attempt_at: datetime
    last_error: str | None
