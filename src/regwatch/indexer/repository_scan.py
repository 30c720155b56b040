"""Scan one repository: list its tags page by page, plan each page against the store, fetch what
the plan asks for, stage the page, and merge the whole repository atomically at the end.

Memory stays flat: a page (at most `paginateSize` tags) is held until the next one is fetched,
then staged; the tags seen so far live in the store's staging table. The last page is not staged
but handed to the merge, so a repository listed in one page (most are) is merged in one
transaction without staging. Failure rules:
- the listing fails (any page) → the scan is aborted: the stored tags are kept, the repository is
  marked stale with the error and its last good time;
- a tag's manifest or config cannot be fetched → the tag is kept with the data it had (a new tag
  is indexed without it) and is retried on the next scan; the repository still succeeds.
Events (recorded by the store in the same transaction as the index change): TAG_ADDED for a tag
the index did not have, DIGEST_CHANGED for a known tag whose digest moved (only seen with
`trackDigests`); none on a repository's first successful scan (a silent baseline), none when a
digest is merely filled in for a tag that had none (tracking just turned on).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import cast

from regwatch.config.model import DockerRegistryAccount
from regwatch.errors import RegwatchError
from regwatch.indexer.metadata import MetadataFetcher, TagData
from regwatch.indexer.plan import Change, PagePlan, TagNeeds, classify, plan_page
from regwatch.indexer.results import RepositoryResult, ScanProgress
from regwatch.models import ManifestInfo
from regwatch.registry import RegistryClient
from regwatch.store import DIGEST_CHANGED, TAG_ADDED, AsyncStore, RepositoryScan, StagedTag, Store

log = logging.getLogger(__name__)
CHUNK = 500  # tags planned, fetched and staged together (a page may hold up to 10,000)


def needs_of(account: DockerRegistryAccount) -> TagNeeds:
    return TagNeeds(
        digest=account.track_digests,
        labels=account.inspect_digests,
        created=account.sort_tags_by_date,
    )


@dataclass
class TagErrors:
    """Tags whose data could not be fetched in one repository: a count and the first reason."""

    count: int = 0
    first: str | None = None

    def add(self, tag: str, error: RegwatchError) -> None:
        self.count += 1
        if self.first is None:
            self.first = f"tag {tag}: {error}"


@dataclass
class RepositoryScanner:
    """Everything a repository scan of one account needs; `scan()` is safe to run concurrently
    for different repositories."""

    account: DockerRegistryAccount
    client: RegistryClient
    store: AsyncStore
    limit: asyncio.Semaphore  # the account's requests in flight (cacheThreads)
    sinks: Sequence[str] = ()
    progress: ScanProgress = field(default_factory=ScanProgress)

    def __post_init__(self) -> None:
        self.needs = needs_of(self.account)
        self.fetcher = MetadataFetcher(self.client, self.store, self.needs, self.limit)

    async def scan(self, repository: str) -> RepositoryResult:
        """Claim and scan `repository`; never raises for registry or store trouble (see the
        result)."""
        name = self.account.name
        try:
            scan = await self.store.call(Store.begin_repository_scan, name, repository)
        except RegwatchError as exc:
            return RepositoryResult(repository, ok=False, error=str(exc))
        return await self.scan_claimed(scan)

    async def scan_claimed(self, scan: RepositoryScan) -> RepositoryResult:
        """Scan a repository already claimed (`Store.begin_repository_scan[s]`); never raises
        for registry or store trouble."""
        repository = scan.repository
        errors = TagErrors()
        try:
            last_page = await self._list_and_stage(scan, errors)
        except Exception as exc:  # any failure must leave the stored tags as they were
            return await self._abort(scan, exc)
        try:
            outcome = await self.store.call(
                Store.finish_repository_scan, scan, sinks=self.sinks, last_page=last_page
            )
        except RegwatchError as exc:
            return await self._abort(scan, exc)
        return RepositoryResult(
            repository,
            ok=True,
            tags=outcome.tags,
            added=outcome.added,
            changed=outcome.changed,
            removed=outcome.removed,
            events=outcome.events,
            tag_errors=errors.count,
            error=errors.first,
        )

    async def _list_and_stage(self, scan: RepositoryScan, errors: TagErrors) -> list[StagedTag]:
        """Stage every page but the last, and return the last one's tags: finish merges them
        itself, so that a repository listed in one page (most) costs one transaction."""
        # tag_pages is an async generator: close it if the scan stops half-way
        pages = cast(AsyncGenerator[list[str], None], self.client.tag_pages(scan.repository))
        held: list[StagedTag] = []  # the page in hand, until we know whether another follows
        try:
            while (page := await self._next_page(pages)) is not None:
                for start in range(0, len(held), CHUNK):
                    await self.store.call(Store.stage_tags, scan, held[start : start + CHUNK])
                held = []
                for start in range(0, len(page), CHUNK):
                    held += await self._stage_chunk(scan, page[start : start + CHUNK], errors)
                self.progress.page_done(
                    self.account.name, scan.repository, len(page), self.client.stats.requests
                )
        finally:
            await pages.aclose()
        return held

    async def _next_page(self, pages: AsyncGenerator[list[str], None]) -> list[str] | None:
        async with self.limit:
            return await anext(pages, None)

    async def _abort(self, scan: RepositoryScan, exc: BaseException) -> RepositoryResult:
        if isinstance(exc, RegwatchError):
            error = str(exc)
        else:
            log.exception("scan of %s/%s failed", scan.account, scan.repository, exc_info=exc)
            error = f"internal error ({type(exc).__name__}), see the log"
        try:
            await self.store.call(Store.abort_repository_scan, scan, error)
            state = await self.store.call(Store.repository, scan.account, scan.repository)
        except RegwatchError as store_exc:
            log.warning("%s/%s: cannot record the failure: %s", scan.account, scan.repository,
                        store_exc)  # fmt: skip
            state = None
        kept = state.tag_count if state is not None else 0
        return RepositoryResult(scan.repository, ok=False, tags=kept, error=error)

    # --- one chunk of a page -------------------------------------------------------------------
    async def _stage_chunk(
        self, scan: RepositoryScan, tags: Sequence[str], errors: TagErrors
    ) -> list[StagedTag]:
        """Plan the tags against the store and build what to stage, in listing order."""
        known: dict[str, str | None] = {}
        if not scan.baseline:  # a repository never merged has no tags: skip the lookup
            known = await self.store.call(
                Store.known_tags, scan.account, scan.repository, tags=tags
            )
        plan = plan_page(known, tags, self.needs)
        added = None if scan.baseline else TAG_ADDED
        staged = {tag: StagedTag.seen(tag) for tag in plan.unchanged}
        if not self.needs.any_metadata:
            staged.update({tag: StagedTag.seen(tag, event=added) for tag in plan.new})
        else:
            staged.update(await self._fetched(scan, plan, known, errors))
        return [staged[tag] for tag in dict.fromkeys(tags) if tag in staged]

    async def _fetched(
        self,
        scan: RepositoryScan,
        plan: PagePlan,
        known: dict[str, str | None],
        errors: TagErrors,
    ) -> dict[str, StagedTag]:
        """Staged tags for the plan's new and rechecked tags (HEAD, then describe what changed)."""
        heads = await self.fetcher.heads(scan.repository, [*plan.new, *plan.recheck])
        changes: dict[str, Change] = {}
        to_describe: dict[str, ManifestInfo] = {}
        staged: dict[str, StagedTag] = {}
        for tag, head in heads.items():
            is_known = tag in known
            if isinstance(head, RegwatchError):
                errors.add(tag, head)
                staged[tag] = self._kept(scan, tag, Change.NONE if is_known else Change.NEW)
                continue
            change = classify(is_known, known.get(tag), head.digest)
            if change is Change.NONE:
                staged[tag] = StagedTag.seen(tag)
            else:
                changes[tag] = change
                to_describe[tag] = head
        described = await self.fetcher.describe(scan.repository, to_describe)
        for tag, data in described.items():
            if isinstance(data, RegwatchError):
                errors.add(tag, data)
                staged[tag] = self._kept(scan, tag, changes[tag])
            else:
                staged[tag] = _staged(tag, data, _event(scan, changes[tag]))
        return staged

    @staticmethod
    def _kept(scan: RepositoryScan, tag: str, change: Change) -> StagedTag:
        """A tag whose data could not be fetched: a known one keeps what it had (a moved digest
        is noticed again next time, with its event); a new one is indexed without data and
        announced now (its data is filled in, silently, by a later scan)."""
        return StagedTag.seen(tag, event=_event(scan, change) if change is Change.NEW else None)


def _event(scan: RepositoryScan, change: Change) -> str | None:
    if scan.baseline:
        return None
    if change is Change.NEW:
        return TAG_ADDED
    return DIGEST_CHANGED if change is Change.MOVED else None


def _staged(tag: str, data: TagData, event: str | None) -> StagedTag:
    return StagedTag(
        tag,
        digest=data.digest,
        index_digest=data.index_digest,
        platform_digests=data.platform_digests,
        created=data.created,
        labels=data.labels,
        event=event,
    )
