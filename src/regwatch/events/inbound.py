"""Push notifications in: verify each claim against the registry, then index it and fire at once.

A notification is never trusted by itself. For each claimed `repository:tag`:
1. find the configured accounts it belongs to: those whose registry host the notification names
   (or the one named by `?account=`), and that index the repository (`repositories` list,
   `repositoriesRegex`, `skip`; with a `catalogFile`, repositories already indexed);
2. HEAD the manifest on that account's registry, with the account's credentials: the tag must
   exist, and when the notification gives a digest the registry must report the same one
   (distribution sends the notification before it links the tag, so a 404 or another digest is
   asked again a few times, ~1.6 s in all, before the claim is declared false);
3. describe the tag as a scan would (digest, and the platforms, dates and labels the account
   asks for), then `Store.record_push`: the tag and its event in one transaction, by the scan's
   rules (`store/push.py`), and wake the outbox worker.
A forged notification for a tag that does not exist fails step 2 and changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from regwatch.config.model import DockerRegistryAccount
from regwatch.errors import NotFoundError, RegwatchError
from regwatch.events.metrics import EventMetrics
from regwatch.events.notifications import PushClaim
from regwatch.indexer.metadata import MetadataFetcher
from regwatch.indexer.repositories import select
from regwatch.indexer.repository_scan import needs_of
from regwatch.models import ManifestInfo
from regwatch.reference import DOCKER_HUB_ALIASES
from regwatch.registry import RegistryClient, Transport
from regwatch.store import AsyncStore, StagedTag, Store

log = logging.getLogger(__name__)
CONFIRM_DELAYS = (0.05, 0.15, 0.4, 1.0)  # seconds between HEADs that contradict a claim


@dataclass(frozen=True)
class PushResult:
    """What became of one claim for one account (or for none)."""

    repository: str
    tag: str
    account: str | None
    outcome: str  # added | changed | filled | unchanged | ignored | unverified
    detail: str | None = None
    event_id: str | None = None

    @property
    def retryable(self) -> bool:
        """The registry could not be asked: the sender should try again later."""
        return self.outcome == "unverified"

    def to_json(self) -> dict[str, str | None]:
        return {
            "repository": self.repository,
            "tag": self.tag,
            "account": self.account,
            "outcome": self.outcome,
            "detail": self.detail,
            "eventId": self.event_id,
        }


def registry_host(account: DockerRegistryAccount) -> str:
    """host[:port] of the account's registry, lower case (a path prefix is dropped)."""
    return account.registry.split("/", 1)[0].lower()


def accounts_for(
    claim: PushClaim, accounts: Iterable[DockerRegistryAccount]
) -> list[DockerRegistryAccount]:
    """Accounts whose registry is one of the hosts the claim names (Docker Hub's aliases are
    one registry)."""
    hosts = set(claim.hosts)
    hub = bool(hosts & DOCKER_HUB_ALIASES)
    found = []
    for account in accounts:
        host = registry_host(account)
        if host in hosts or (hub and host in DOCKER_HUB_ALIASES):
            found.append(account)
    return found


def covers(account: DockerRegistryAccount, repository: str) -> bool | None:
    """Whether the account indexes the repository; None: only the store knows (catalogFile)."""
    if account.repositories:
        return repository in account.repositories and repository not in account.skip
    if not select([repository], account.repositories_regex, account.skip):
        return False
    return None if account.catalog_file else True


class PushReceiver:
    """Verifies and applies push claims (see the module docstring)."""

    def __init__(
        self,
        store: AsyncStore,
        *,
        accounts: Callable[[], Iterable[DockerRegistryAccount]],
        transport: Callable[[], Transport],
        sinks: Callable[[], Sequence[str]],
        metrics: EventMetrics | None = None,
        on_event: Callable[[], None] = lambda: None,
        confirm_delays: Sequence[float] = CONFIRM_DELAYS,
    ) -> None:
        self.store = store
        self.confirm_delays = tuple(confirm_delays)
        self._accounts = accounts
        self._transport = transport
        self._sinks = sinks
        self.metrics = metrics or EventMetrics()
        self._on_event = on_event
        self._clients: dict[str, tuple[DockerRegistryAccount, RegistryClient]] = {}

    async def receive(
        self, claims: Sequence[PushClaim], *, account: str | None = None
    ) -> list[PushResult]:
        """Verify and apply every claim (concurrently); one result per claim and account."""
        batches = await asyncio.gather(*(self._claim(c, account) for c in claims))
        results = [result for batch in batches for result in batch]
        for claim_results, claim in zip(batches, claims, strict=True):
            for result in claim_results:
                self.metrics.notifications.labels(claim.source, result.outcome).inc()
        if any(r.event_id for r in results):
            self._on_event()
        return results

    async def _claim(self, claim: PushClaim, only: str | None) -> list[PushResult]:
        configured = list(self._accounts())
        if only is not None:
            candidates = [a for a in configured if a.name == only]
            if not candidates:
                return [self._ignored(claim, None, f"no account named {only!r}")]
        else:
            candidates = accounts_for(claim, configured)
            if not candidates:
                hosts = ", ".join(claim.hosts) or "none given"
                return [self._ignored(claim, None, f"no account for the registry ({hosts})")]
        return list(await asyncio.gather(*(self._apply(claim, a) for a in candidates)))

    def _ignored(self, claim: PushClaim, account: str | None, detail: str) -> PushResult:
        return PushResult(claim.repository, claim.tag, account, "ignored", detail)

    async def _apply(self, claim: PushClaim, account: DockerRegistryAccount) -> PushResult:
        if not await self._covers(account, claim.repository):
            return self._ignored(claim, account.name, "the account does not index the repository")
        try:
            image = await self._verify(claim, account)
        except NotFoundError:
            return self._ignored(claim, account.name, "the registry does not have this tag")
        except RegwatchError as exc:
            log.warning("push %s:%s not verified: %s", claim.repository, claim.tag, exc)
            return PushResult(claim.repository, claim.tag, account.name, "unverified", str(exc))
        if image is None:
            return self._ignored(claim, account.name, "the tag points at another digest now")
        outcome = await self.store.call(
            Store.record_push,
            account.name,
            account.registry,
            claim.repository,
            image,
            track_digests=account.track_digests,
            sinks=self._sinks(),
        )
        return PushResult(
            claim.repository, claim.tag, account.name, outcome.change, None, outcome.event_id
        )

    async def _covers(self, account: DockerRegistryAccount, repository: str) -> bool:
        decided = covers(account, repository)
        if decided is not None:
            return decided
        return await self.store.call(Store.repository, account.name, repository) is not None

    def _client(self, account: DockerRegistryAccount) -> RegistryClient:
        """One client per account (its tokens are cached), rebuilt when the account changes."""
        cached = self._clients.get(account.name)
        if cached is not None and cached[0] == account:
            return cached[1]
        client = RegistryClient(
            account.endpoint(), account.credentials(), transport=self._transport()
        )
        self._clients[account.name] = (account, client)
        return client

    async def _confirmed_head(
        self, claim: PushClaim, fetcher: MetadataFetcher
    ) -> ManifestInfo | None:
        """The registry's HEAD of the tag once it agrees with the claim; None when it keeps
        reporting another digest; NotFoundError when it keeps not having the tag. Distribution
        announces a manifest push before it links the tag, so a contradiction is asked again a
        few times (`confirm_delays`) before the claim is declared false."""
        for delay in (*self.confirm_delays, None):
            head = (await fetcher.heads(claim.repository, [claim.tag]))[claim.tag]
            if isinstance(head, RegwatchError) and not isinstance(head, NotFoundError):
                raise head
            if isinstance(head, ManifestInfo) and claim.digest in (None, head.digest):
                return head
            if delay is None:
                if isinstance(head, NotFoundError):
                    raise head
                return None
            await asyncio.sleep(delay)
        return None  # pragma: no cover - the loop always returns

    async def _verify(self, claim: PushClaim, account: DockerRegistryAccount) -> StagedTag | None:
        """The tag as the registry has it now; None when it contradicts the claimed digest."""
        client = self._client(account)
        fetcher = MetadataFetcher(
            client, self.store, needs_of(account), asyncio.Semaphore(account.cache_threads)
        )
        head = await self._confirmed_head(claim, fetcher)
        if head is None:
            return None
        if not fetcher.needs.any_metadata:
            return StagedTag(claim.tag, digest=head.digest, metadata=False)
        data = (await fetcher.describe(claim.repository, {claim.tag: head}))[claim.tag]
        if isinstance(data, RegwatchError):  # index the verified digest; a scan fills the rest
            return StagedTag(claim.tag, digest=head.digest, metadata=False)
        return StagedTag(
            claim.tag,
            digest=data.digest,
            index_digest=data.index_digest,
            platform_digests=data.platform_digests,
            created=data.created,
            labels=data.labels,
        )
