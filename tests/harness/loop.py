"""A background event loop shared by the harness's in-process servers, and sync/async bridges.

The token servers and fault proxies run on one daemon thread with its own asyncio loop, so they
serve sync tests (CLI subprocesses) and async tests (each with its own pytest-asyncio loop) alike.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """An asyncio loop running forever on a daemon thread."""

    def __init__(self, name: str = "regwatch-harness-loop") -> None:
        self._ready = threading.Event()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._ready.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = 30.0) -> T:
        """Run `coro` on the loop thread and wait for its result (from any other thread)."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("LoopThread.run() called from its own loop thread (would deadlock)")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise


_shared: LoopThread | None = None
_shared_lock = threading.Lock()


def shared_loop() -> LoopThread:
    """The process-wide harness loop thread (started on first use)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = LoopThread()
        return _shared


def run_sync(fn: Callable[[], Awaitable[T]], timeout: float | None = 300.0) -> T:
    """Run an async function to completion from sync code, even inside a running event loop.

    It runs `asyncio.run` on a fresh thread, so it also works when called from an async test.
    """
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        async def main() -> T:
            return await fn()

        try:
            result.append(asyncio.run(main()))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target, name="regwatch-harness-run-sync", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"harness coroutine did not finish within {timeout} s")
    if error:
        raise error[0]
    return result[0]
