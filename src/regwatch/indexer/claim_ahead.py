"""Hand an account's repositories to its scan workers already claimed, a batch per writer call.

A repository scan starts by claiming the repository in the store (`Store.begin_repository_scan`:
a push recorded from then on is handed to the scan, and a scan that another one superseded
cannot finish). Claimed one at a time, that is a round trip through the store's single writer
per repository before its `tags/list` can go out; in the indexing benchmark the workers waited
~8 ms on it each time (docs/benchmarks.md, end of "Fourth pass"). `ClaimAhead` claims the next
`batch` repositories in one call when its stock runs out, so most workers find a claimed
repository waiting.

What it keeps: every repository is still claimed before its listing starts (the push hand-off
depends on that), each with its own scan id. What it changes: a claim may precede its listing by
the time the workers take to get through a batch. A scan stopped in between leaves the rest of
its batch claimed, as a scan killed between claim and merge always could: the next scan of the
repository claims it again, and what a push handed to the abandoned claim is dropped then.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from regwatch.errors import RegwatchError
from regwatch.store import AsyncStore, RepositoryScan, Store


@dataclass(frozen=True)
class Claim:
    """A repository handed to a worker: claimed (`scan`), or not (`error` says why)."""

    repository: str
    scan: RepositoryScan | None
    error: str | None = None


class ClaimAhead:
    """Claims `names` in order, `batch` at a time, as workers ask (`next`), until `stop` is set."""

    def __init__(
        self,
        store: AsyncStore,
        account: str,
        names: Sequence[str],
        *,
        batch: int,
        stop: asyncio.Event | None = None,
    ) -> None:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self.store = store
        self.account = account
        self.batch = batch
        self.stop = stop
        self.stopped = False  # the stop came while repositories were left
        self.claim_calls = 0  # writer calls made (for tests and benchmarks)
        self._names = names
        self._next_name = 0
        self._ready: deque[Claim] = deque()
        self._lock = asyncio.Lock()  # one batch claimed at a time; the others wait for it

    async def next(self) -> Claim | None:
        """The next repository, claimed; None when none is left or the scan is to stop."""
        async with self._lock:
            if self._stop_asked():
                return None
            if not self._ready:
                await self._claim_batch()
                if self._stop_asked():  # it came while the batch was being claimed
                    return None
            return self._ready.popleft() if self._ready else None

    def _stop_asked(self) -> bool:
        if self.stop is None or not self.stop.is_set():
            return False
        if self._ready or self._next_name < len(self._names):
            self.stopped = True
        return True

    async def _claim_batch(self) -> None:
        names = self._names[self._next_name : self._next_name + self.batch]
        if not names:
            return
        self._next_name += len(names)
        self.claim_calls += 1
        try:
            scans = await self.store.call(Store.begin_repository_scans, self.account, names)
        except RegwatchError as exc:  # the batch is one transaction: none of it was claimed
            self._ready.extend(Claim(name, None, str(exc)) for name in names)
            return
        self._ready.extend(Claim(scan.repository, scan) for scan in scans)
