"""Supervised background workers: long-running coroutines the service starts and stops.

A worker is a name and a factory returning a fresh coroutine. It should return when the
service's `stopping` event is set. A worker that raises is logged and restarted after a backoff
(1 s doubling to 60 s); one that returns before the service stops is not restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal

from regwatch.errors import RegwatchError

log = logging.getLogger(__name__)


def describe_error(exc: BaseException) -> str:
    """A message safe to show: RegwatchError messages are built without secrets; anything else
    is shown by its type only (its text may hold a URL or a header)."""
    if isinstance(exc, RegwatchError):
        return str(exc)
    return f"internal error ({type(exc).__name__})"


WorkerFactory = Callable[[], Coroutine[Any, Any, None]]
WorkerState = Literal["new", "running", "restarting", "finished", "stopped"]


@dataclass
class Worker:
    name: str
    factory: WorkerFactory
    state: WorkerState = "new"
    restarts: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    task: asyncio.Task[None] | None = None

    def view(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "restarts": self.restarts,
            "lastError": self.last_error,
            "lastErrorAt": self.last_error_at,
        }


class Workers:
    """The service's workers (see the module docstring)."""

    def __init__(self, stopping: asyncio.Event, *, max_backoff: float = 60.0) -> None:
        self._stopping = stopping
        self._max_backoff = max_backoff
        self.workers: dict[str, Worker] = {}

    def add(self, name: str, factory: WorkerFactory) -> Worker:
        if name in self.workers:
            raise ValueError(f"a worker named {name!r} is already registered")
        worker = self.workers[name] = Worker(name, factory)
        return worker

    def start_all(self) -> None:
        for worker in self.workers.values():
            if worker.task is None:
                worker.task = asyncio.create_task(
                    self._supervise(worker), name=f"regwatch-{worker.name}"
                )

    async def _supervise(self, worker: Worker) -> None:
        delay = 1.0
        while not self._stopping.is_set():
            worker.state = "running"
            try:
                await worker.factory()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                worker.restarts += 1
                worker.last_error = describe_error(exc)
                worker.last_error_at = time.time()
                worker.state = "restarting"
                log.exception("worker %s failed; restarting in %.0f s", worker.name, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                delay = min(delay * 2, self._max_backoff)
                continue
            worker.state = "finished"
            return
        worker.state = "stopped"

    async def stop_all(self, timeout: float) -> None:
        """Wait for the workers (the caller has set `stopping`); cancel what outlasts `timeout`."""
        tasks = [w.task for w in self.workers.values() if w.task is not None]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            log.warning(
                "worker task %s did not stop within %s s: cancelled", task.get_name(), timeout
            )
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for worker in self.workers.values():
            if worker.state in ("running", "restarting"):
                worker.state = "stopped"
