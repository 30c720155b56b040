"""A micro-cache of serialised responses for repository-scoped lookups.

`images/tags` of a 10,000-tag repository costs ~9 ms in the store (and `images/find` of a
whole ~1,000-tag repository ~13 ms) while the same handful of repositories is asked for again and
again (Deck polls tags; Orca and Igor resolve the same images). Keeping the finished JSON bytes
for `ttl` seconds (default 1 s) turns a burst of identical lookups into one query. The index
only changes when a scan or a push lands, so the answer is at most `ttl` seconds behind it;
`ttl=0` turns the cache off. Lookups with `q` are not cached (they rarely repeat).

Bounded by total bytes: the least recently used entries go first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

DEFAULT_TTL = 1.0
DEFAULT_MAX_BYTES = 64 << 20


class ResponseCache:
    """key → (expiry, body), LRU within `max_bytes`."""

    def __init__(
        self,
        ttl: float = DEFAULT_TTL,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    def get(self, key: Hashable) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        expiry, body = entry
        if self._clock() >= expiry:
            self._drop(key)
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return body

    def put(self, key: Hashable, body: bytes) -> None:
        if not self.enabled or len(body) > self.max_bytes:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (self._clock() + self.ttl, body)
        self._bytes += len(body)
        while self._bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: Hashable) -> None:
        _, body = self._entries.pop(key)
        self._bytes -= len(body)

    def __len__(self) -> int:
        return len(self._entries)
