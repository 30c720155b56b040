"""What a scan reports: per repository, per account run, and the progress callback the CLI and the
service scheduler use to follow a scan while it runs. Pure data, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

RunStatus = Literal["ok", "partial", "failed"]


@dataclass(frozen=True)
class RepositoryResult:
    """One repository's scan.

    `ok`: the registry listed every tag and the index now holds exactly that list. A failed
    listing keeps the stored tags (`tags` is then the number kept, marked stale). `tag_errors`
    counts tags whose manifest or config could not be fetched: those tags are kept, with the data
    they had, and retried on the next scan.
    """

    repository: str
    ok: bool
    tags: int = 0
    added: int = 0
    changed: int = 0
    removed: int = 0
    events: int = 0
    tag_errors: int = 0
    error: str | None = None  # the listing's error (not ok), else the first tag error, if any


@dataclass(frozen=True)
class ScanRun:
    """The result of `scan_account`: one run record, as written to the store, plus the totals."""

    run_id: int | None  # None when the account could not even be recorded in the store
    account: str
    registry: str
    started_at: datetime
    finished_at: datetime
    status: RunStatus
    requests: int  # HTTP requests sent to the registry (and its token service), retries included
    retries: int
    rate_limited: int
    token_fetches: int
    repositories: int  # the repositories this run meant to scan
    repositories_ok: int
    repositories_failed: int
    tags: int  # tags in the scanned repositories after the run
    tags_added: int
    tags_changed: int
    tags_removed: int
    events: int
    tag_errors: int
    account_error: str | None = None  # catalog / setup failure, or None
    errors: Mapping[str, str] = field(default_factory=dict)  # repository -> message
    stopped: bool = False  # asked to stop: some repositories were not scanned this time

    @property
    def failed(self) -> bool:
        """The account failed entirely: nothing could be listed this time."""
        return self.status == "failed"

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (`regwatch scan --json`)."""
        return {
            "runId": self.run_id,
            "account": self.account,
            "registry": self.registry,
            "status": self.status,
            "startedAt": self.started_at.isoformat(),
            "finishedAt": self.finished_at.isoformat(),
            "seconds": round(self.seconds, 3),
            "requests": self.requests,
            "retries": self.retries,
            "rateLimited": self.rate_limited,
            "tokenFetches": self.token_fetches,
            "repositories": self.repositories,
            "repositoriesOk": self.repositories_ok,
            "repositoriesFailed": self.repositories_failed,
            "tags": self.tags,
            "tagsAdded": self.tags_added,
            "tagsChanged": self.tags_changed,
            "tagsRemoved": self.tags_removed,
            "events": self.events,
            "tagErrors": self.tag_errors,
            "accountError": self.account_error,
            "errors": dict(self.errors),
            "stopped": self.stopped,
        }


class ScanProgress:
    """Callbacks about a scan in progress; every method is a no-op here. Subclass what you need.

    Called on the event loop thread, so implementations must be quick and must not block.
    `requests` is the number of registry requests the account's scan has made so far.
    """

    def account_started(self, account: str, repositories: int) -> None:
        """The repository list is known (`repositories` to scan)."""

    def account_error(self, account: str, error: str) -> None:
        """The repository listing failed (the stored list is used) or the scan could not start."""

    def page_done(self, account: str, repository: str, tags: int, requests: int) -> None:
        """One page of `tags` of a repository was staged."""

    def repository_done(self, account: str, result: RepositoryResult, requests: int) -> None:
        """A repository is finished, well or not."""

    def account_finished(self, run: ScanRun) -> None:
        """The run is recorded."""
