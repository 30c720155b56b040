"""The `Store`: regwatch's index, one object per process, safe to share between threads.

Methods are synchronous; `regwatch.store.aio.AsyncStore` runs them for asyncio code (see there
for why). Each public method is one transaction. Methods that write are marked `@writes`: on
SQLite they are serialised by a lock (one writer; `BEGIN IMMEDIATE`), while reads run on their
own connections and, under WAL, never wait for the writer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from regwatch.models import ImageConfig, ManifestInfo, TagRecord
from regwatch.store import accounts as acc
from regwatch.store import cache, claims, queries, scans
from regwatch.store.engine import Engines
from regwatch.store.event_methods import EventMethods
from regwatch.store.failures import as_store_error, store_errors
from regwatch.store.jobs_methods import ScanJobMethods
from regwatch.store.marks import is_writer, writes
from regwatch.store.prepared import savepoint
from regwatch.store.records import (
    AccountStatus,
    Counts,
    RepositoryScan,
    RepositoryState,
    RunStatus,
    ScanOutcome,
    StagedTag,
    TagOrder,
    to_ms,
    utc_now,
)
from regwatch.store.schema import accounts
from regwatch.store.search_upkeep import index_tags_before_commit

__all__ = ["Store", "is_writer", "writes"]


class Store(EventMethods, ScanJobMethods):
    """Accounts, repositories, tagged images, metadata cache, scan runs, events and outbox.

    The events, outbox, push and lease methods are in `EventMethods` (store/event_methods.py).
    """

    def __init__(
        self, engines: Engines, url: str, *, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.url = url
        self.engines = engines
        self.is_sqlite = engines.is_sqlite
        self._clock = clock
        self._write_lock = threading.Lock()
        self._batch = threading.local()  # .conn: the transaction of write_batch on this thread
        if engines.is_sqlite:  # the schema is checked: the search index's pending table exists
            index_tags_before_commit(engines.writer)

    def close(self) -> None:
        self.engines.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _now(self) -> int:
        return to_ms(self._clock())

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A read transaction; a database failure is a StoreError (store/failures.py)."""
        with store_errors(self.url, "read"), self.engines.reader.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """The write transaction (or write_batch's); a database failure is a StoreError."""
        batch: Connection | None = getattr(self._batch, "conn", None)
        if batch is not None:  # inside write_batch: its transaction (and the call's savepoint)
            with store_errors(self.url, "write"):
                yield batch
            return
        with (
            store_errors(self.url, "write"),
            self._write_lock,
            self.engines.writer.connect() as conn,
            conn.begin(),
        ):
            yield conn

    def write_batch(self, calls: Sequence[Callable[[], Any]]) -> list[tuple[Any, Exception | None]]:
        """Run write methods (bound, without arguments) in one transaction: one commit for all.

        Each runs in its own savepoint, so each stays atomic on its own (a failure rolls back
        that call only, and is returned as its (None, error)); all become visible together.
        Why: on SQLite a commit writes every page the transaction dirtied, and small repository
        merges dirty the same pages (the search index, the tag history) over and over; one
        commit for a few of them halves the writer's CPU per repository (docs/benchmarks.md).
        """
        outcomes: list[tuple[Any, Exception | None]] = []
        try:
            with self._write_lock, self.engines.writer.connect() as conn, conn.begin():
                self._batch.conn = conn
                try:
                    for call in calls:
                        try:
                            with savepoint(conn):
                                outcomes.append((call(), None))
                        except Exception as exc:  # handed back to its caller
                            outcomes.append((None, exc))
                finally:
                    self._batch.conn = None
        except DBAPIError as exc:  # the commit failed: nothing of the batch was stored
            error = as_store_error(exc, self.url, "write")
            error.__cause__ = exc
            return [(None, error)] * len(calls)
        except Exception as exc:
            return [(None, exc)] * len(calls)
        return outcomes

    # --- accounts and repositories ---------------------------------------------------------
    @writes
    def ensure_account(self, account: str, registry: str) -> None:
        """Create the account (or update its registry address, without scheme)."""
        with self._write() as conn:
            acc.ensure_account(conn, account, registry, self._now())

    def accounts(self) -> list[str]:
        with self._read() as conn:
            return list(conn.execute(select(accounts.c.name).order_by(accounts.c.name)).scalars())

    @writes
    def replace_repositories(self, account: str, repositories: Iterable[str]) -> tuple[int, int]:
        """After a successful catalog: the account has exactly these repositories.

        Returns (added, removed); removed repositories lose their tags.
        """
        with self._write() as conn:
            return acc.replace_repositories(conn, account, repositories, self._now())

    @writes
    def mark_catalog_failed(self, account: str, error: str) -> None:
        """The catalog failed: the repositories (and their tags) are kept, the error recorded."""
        with self._write() as conn:
            acc.mark_catalog_failed(conn, account, error, self._now())

    def repositories(self, account: str) -> list[RepositoryState]:
        with self._read() as conn:
            return acc.list_repositories(conn, account)

    def repository(self, account: str, name: str) -> RepositoryState | None:
        with self._read() as conn:
            return queries.repository(conn, account, name)

    def repository_version(self, account: str, name: str) -> tuple[int, int] | None:
        """The repository's change stamp: a validator for cached lookups (api/cache.py)."""
        with self._read() as conn:
            return queries.repository_version(conn, account, name)

    @writes
    def delete_account(self, account: str) -> bool:
        """Forget the account and everything indexed for it; False when it was not there."""
        with self._write() as conn:
            return acc.delete_account(conn, account)

    # --- scan runs -------------------------------------------------------------------------
    @writes
    def start_run(self, account: str, *, holder: str | None = None) -> int:
        with self._write() as conn:
            return acc.start_run(conn, account, self._now(), holder)

    @writes
    def finish_run(
        self,
        run_id: int,
        *,
        requests: int,
        repositories_ok: int,
        repositories_failed: int,
        errors: Sequence[Mapping[str, Any]] = (),
        status: RunStatus | None = None,
    ) -> None:
        """Close a run. `errors`: [{"repository": name or None, "error": text}]. The status is
        ok / partial / failed from the counters unless given."""
        with self._write() as conn:
            acc.finish_run(
                conn,
                run_id,
                now=self._now(),
                requests=requests,
                repositories_ok=repositories_ok,
                repositories_failed=repositories_failed,
                errors=errors,
                status=status,
            )

    # --- repository scans ------------------------------------------------------------------
    def known_tags(
        self, account: str, repository: str, tags: Iterable[str] | None = None
    ) -> dict[str, str | None]:
        """tag → stored digest for the repository (or only for `tags`, e.g. one page)."""
        with self._read() as conn:
            return claims.known_tags(conn, account, repository, tags)

    @writes
    def begin_repository_scan(self, account: str, repository: str) -> RepositoryScan:
        """Start scanning a repository; pass the result to stage_tags / finish / abort."""
        with self._write() as conn:
            return claims.begin_repository_scan(conn, account, repository, self._now())

    @writes
    def begin_repository_scans(self, account: str, names: Sequence[str]) -> list[RepositoryScan]:
        """`begin_repository_scan` for each of `names`, in one transaction (all or none)."""
        with self._write() as conn:
            return claims.begin_repository_scans(conn, account, names, self._now())

    @writes
    def stage_tags(self, scan: RepositoryScan, page: Sequence[StagedTag]) -> None:
        """Record one page of tags seen by the scan (nothing visible changes until finish)."""
        with self._write() as conn:
            scans.stage_tags(conn, scan, page)

    @writes
    def finish_repository_scan(
        self,
        scan: RepositoryScan,
        *,
        sinks: Sequence[str] = (),
        last_page: Sequence[StagedTag] = (),
    ) -> ScanOutcome:
        """The registry listed all tags: apply the scan atomically. The tags are those staged
        plus `last_page` (the final page, not staged: a repository listed in one page is merged
        in this one transaction, without staging); tags not among them are removed; their events
        are recorded with one pending delivery per sink."""
        with self._write() as conn:
            return scans.finish_repository_scan(conn, scan, self._now(), sinks, last_page)

    @writes
    def abort_repository_scan(self, scan: RepositoryScan, error: str) -> None:
        """The scan failed: drop what it staged, keep the tags, mark the repository stale (unless
        another scan has claimed the repository since: that one decides)."""
        with self._write() as conn:
            claims.abort_repository_scan(conn, scan, error, self._now())

    @writes
    def mark_repository_failed(self, account: str, repository: str, error: str) -> None:
        """tags/list failed: keep the tags, mark stale with the error (last good time kept)."""
        with self._write() as conn:
            claims.mark_repository_failed(conn, account, repository, error, self._now())

    # --- content-addressed metadata cache --------------------------------------------------
    def get_manifest(self, digest: str) -> ManifestInfo | None:
        return self.get_manifests([digest]).get(digest)

    def get_manifests(self, digests: Iterable[str]) -> dict[str, ManifestInfo]:
        with self._read() as conn:
            return cache.get_manifests(conn, digests)

    @writes
    def put_manifests(self, infos: Iterable[ManifestInfo]) -> None:
        """Cache manifests by digest (an already cached digest is left as it is)."""
        with self._write() as conn:
            cache.put_manifests(conn, infos, self._now())

    def get_config(self, digest: str) -> ImageConfig | None:
        return self.get_configs([digest]).get(digest)

    def get_configs(self, digests: Iterable[str]) -> dict[str, ImageConfig]:
        with self._read() as conn:
            return cache.get_configs(conn, digests)

    @writes
    def put_configs(self, configs: Iterable[ImageConfig]) -> None:
        with self._write() as conn:
            cache.put_configs(conn, configs, self._now())

    # --- lookups ---------------------------------------------------------------------------
    def find_images(
        self,
        q: str | None = None,
        *,
        account: str | None = None,
        repository: str | None = None,
        tag: str | None = None,
        limit: int | None = None,
    ) -> list[TagRecord]:
        """Images whose `registry/repository:tag` contains `q` (case-insensitive), filtered by
        exact account/repository/tag, at most `limit` after the filters."""
        with self._read() as conn:
            return queries.find_images(
                conn,
                is_sqlite=self.is_sqlite,
                q=q,
                account=account,
                repository=repository,
                tag=tag,
                limit=limit,
            )

    def get_image(self, account: str, repository: str, tag: str) -> TagRecord | None:
        with self._read() as conn:
            return queries.get_image(conn, account, repository, tag)

    def tags(self, account: str, repository: str, order: TagOrder = "lexical") -> list[str]:
        """Tag names: "lexical", "semver" (ascending, see sorting.py) or "date" (newest first)."""
        with self._read() as conn:
            return queries.list_tags(conn, account, repository, order)

    def counts(self) -> Counts:
        with self._read() as conn:
            return queries.counts(conn)

    def account_status(self, account: str) -> AccountStatus | None:
        with self._read() as conn:
            return queries.account_status(conn, account)
