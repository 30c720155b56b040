"""A cache of serialised responses for repository-scoped lookups, invalidated when the index
changes.

`images/tags` of a 10,000-tag repository costs ~5-9 ms in the store (and `images/find` of a
whole ~1,000-tag repository ~9 ms) while the same handful of repositories is asked for again and
again (Deck polls tags; Orca and Igor resolve the same images). The finished JSON bytes are kept
per (account, repository, parameters), with the account's *generation* at the time of the read:

- This process's own writes invalidate at once. `observe_writes` hears every writer call made
  through the service's AsyncStore (each repository a scan commits, each push, each account
  deleted by a reload);
  `IndexWrites` bumps the written account's generation, and an entry whose generation is not the
  account's current one is a miss. A writer with no account argument that is not known to leave
  tags alone bumps every account. The generation is read *before* the store is, so a write that
  lands during the read makes the entry stale rather than wrong.
- Writes by other processes (another `regwatch serve` on the same PostgreSQL, `regwatch scan`
  run by hand) are not seen: for them an entry is fresh for `ttl` seconds (`--cache-seconds`,
  default 5). An entry stored with a *validator* (the repository's change stamp, read before
  the body) is then revalidated rather than recomputed: if the stamp still matches, the entry
  is fresh for another `ttl` (one primary-key read instead of ~8 ms of rows and JSON for a
  10,000-tag repository, which every 5 s stalled the event loop under load: bench/api.py's
  p99). A revalidated entry is recomputed anyway after `max_age` (60 s), which bounds what a
  stamp that failed to move (two writes in the same millisecond) could hide.
  **Staleness bound: none for this process's writes; `ttl` seconds for other processes'.**
  `ttl=0` turns the cache off.

Lookups with `q` are not cached (they rarely repeat). Bounded by total bytes: the least recently
used entries go first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from regwatch.store import AsyncStore
from regwatch.store.store import is_writer

DEFAULT_TTL = 5.0
DEFAULT_MAX_AGE = 60.0  # seconds a revalidated entry may live before it is recomputed anyway
DEFAULT_MAX_BYTES = 64 << 20
Generation = tuple[int, int]  # (epoch bumped for every account, the account's own counter)


@dataclass
class _Entry:
    expiry: float  # fresh until then; after it, revalidated (with a validator) or dropped
    born: float
    account: str | None
    generation: Generation
    validator: Hashable | None
    body: bytes


@dataclass(frozen=True)
class Cached:
    """What `ResponseCache.lookup` found: `fresh`, or expired but revalidatable."""

    body: bytes
    fresh: bool
    validator: Hashable | None


# Store writers that never change what the lookups answer (tags, digests, labels, registries):
# scan bookkeeping, staging before a repository's commit, the manifest cache, the outbox.
_READ_NEUTRAL_WRITERS = frozenset(
    {
        "start_run",
        "finish_run",
        "begin_repository_scan",
        "begin_repository_scans",
        "stage_tags",
        "abort_repository_scan",
        "put_manifests",
        "put_configs",
        "claim_deliveries",
        "claim_next_deliveries",
        "complete_delivery",
        "fail_delivery",
        "skip_delivery",
        "defer_delivery",
        "redeliver",
        "acquire_lease",
        "release_lease",
    }
)


class ResponseCache:
    """key → entry (expiry, birth, account, generation, validator, body), LRU within
    `max_bytes`."""

    def __init__(
        self,
        ttl: float = DEFAULT_TTL,
        *,
        max_age: float = DEFAULT_MAX_AGE,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_age = max_age
        self.max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._bytes = 0
        self._epoch = 0
        self._generations: dict[str, int] = {}
        self.hits = 0
        self.misses = 0
        self.revalidated = 0

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    def generation(self, account: str | None = None) -> Generation:
        """Read this before the store; pass it to `put`."""
        return self._epoch, 0 if account is None else self._generations.get(account, 0)

    def invalidate(self, account: str | None = None) -> None:
        """The account's indexed data changed (None: any account's may have)."""
        if account is None:
            self._epoch += 1
        else:
            self._generations[account] = self._generations.get(account, 0) + 1

    def get(self, key: Hashable) -> bytes | None:
        """The body while fresh; None otherwise (see `lookup` for revalidation)."""
        found = self.lookup(key)
        return found.body if found is not None and found.fresh else None

    def lookup(self, key: Hashable) -> Cached | None:
        """The entry if fresh, or expired but revalidatable (a validator, within `max_age`:
        the caller compares the validator and calls `renew`); None is a miss."""
        entry = self._entries.get(key)
        now = self._clock()
        if entry is not None and entry.generation == self.generation(entry.account):
            if now < entry.expiry:
                self._entries.move_to_end(key)
                self.hits += 1
                return Cached(entry.body, True, entry.validator)
            if entry.validator is not None and now < entry.born + self.max_age:
                return Cached(entry.body, False, entry.validator)
        if entry is not None:
            self._drop(key)
        self.misses += 1
        return None

    def renew(self, key: Hashable, validator: Hashable | None) -> bool:
        """The store's validator for an expired entry: equal, the entry is fresh for another
        `ttl` (True); otherwise the entry is dropped (False: recompute it)."""
        entry = self._entries.get(key)
        if entry is None or validator is None or entry.validator != validator:
            if entry is not None:
                self._drop(key)
            self.misses += 1
            return False
        entry.expiry = self._clock() + self.ttl
        self._entries.move_to_end(key)
        self.hits += 1
        self.revalidated += 1
        return True

    def put(
        self,
        key: Hashable,
        body: bytes,
        *,
        account: str | None = None,
        generation: Generation | None = None,
        validator: Hashable | None = None,
    ) -> None:
        """Keep `body`, read at `generation` (default: now) and `validator` (read before the
        body; None: not revalidatable), unless the account changed since."""
        current = self.generation(account)
        if generation is None:
            generation = current
        if not self.enabled or len(body) > self.max_bytes or generation != current:
            return
        if key in self._entries:
            self._drop(key)
        now = self._clock()
        self._entries[key] = _Entry(now + self.ttl, now, account, generation, validator, body)
        self._bytes += len(body)
        while self._bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: Hashable) -> None:
        body = self._entries.pop(key).body
        self._bytes -= len(body)

    def __len__(self) -> int:
        return len(self._entries)


class IndexWrites:
    """An `AsyncStore.on_write` listener that invalidates `cache` after each store write."""

    def __init__(self, cache: ResponseCache) -> None:
        self.cache = cache

    def __call__(
        self, method: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> None:
        if method.__name__ in _READ_NEUTRAL_WRITERS:
            return
        self.cache.invalidate(written_account(args, kwargs))


def written_account(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str | None:
    """The account a Store writer call changes: its `account` argument, its first argument when
    that is a name, or the `.account` of its first argument (a RepositoryScan); else None."""
    named = kwargs.get("account")
    if isinstance(named, str):
        return named
    if args:
        first = args[0]
        if isinstance(first, str):
            return first
        of = getattr(first, "account", None)
        if isinstance(of, str):
            return of
    return None


def observe_writes(store: AsyncStore, listener: IndexWrites) -> None:
    """Have `listener` hear every writer call made through `store` (the service's AsyncStore,
    which the scans, the push receiver and config reloads all write through), once it ended,
    committed or not. Wraps the instance's `call`: the store module stays unaware of the API."""
    inner = store.call

    async def call(method: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        if not is_writer(method):
            return await inner(method, *args, **kwargs)
        try:
            return await inner(method, *args, **kwargs)
        finally:
            listener(method, args, kwargs)

    store.call = call  # type: ignore[method-assign]
