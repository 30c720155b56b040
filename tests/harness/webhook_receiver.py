"""A webhook receiver on 127.0.0.1 that records every POST: the other end of event delivery.

    receiver = WebhookReceiver().start()        # sync or async tests alike (harness loop thread)
    receiver.url                                 # http://127.0.0.1:PORT/hook
    receiver.fail(3, status=503)                 # answer the next 3 requests with 503
    receiver.hold(2.0)                           # answer each request only after 2 s
    receiver.down(); receiver.up()               # stop listening, then listen again (same port)
    receiver.wait_for(1, timeout=10)             # block until one request arrived
    receiver.requests                            # [Received(headers, body, at, status)], answered
    receiver.arrivals                            # arrival times, including requests still held
    receiver.stop()

Like the rest of the harness it never imports regwatch.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .common import free_port
from .loop import shared_loop


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival
    status: int  # what the receiver answered

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)


class WebhookReceiver:
    def __init__(self, path: str = "/hook", port: int | None = None) -> None:
        self.path = path
        self.port = port or free_port()
        self.requests: list[Received] = []
        self.arrivals: list[float] = []  # time.monotonic() of every request, before any hold
        self._failures: list[int] = []
        self._hold = 0.0
        self._lock = threading.Lock()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    # --- knobs ---------------------------------------------------------------------------------
    def fail(self, times: int, status: int = 503) -> None:
        with self._lock:
            self._failures.extend([status] * times)

    def hold(self, seconds: float) -> None:
        self._hold = seconds

    # --- life cycle ----------------------------------------------------------------------------
    def start(self) -> WebhookReceiver:
        shared_loop().run(self._start())
        return self

    def stop(self) -> None:
        shared_loop().run(self._stop())

    def down(self) -> None:
        """Stop listening (connections are refused) but keep the port and the records."""
        self.stop()

    def up(self) -> None:
        self.start()

    async def _start(self) -> None:
        if self._runner is not None:
            return
        app = web.Application(client_max_size=8 << 20)
        app.router.add_post(self.path, self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True).start()
        self._runner = runner

    async def _stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        with self._lock:
            self.arrivals.append(time.monotonic())
        if self._hold:
            await asyncio.sleep(self._hold)
        with self._lock:
            status = self._failures.pop(0) if self._failures else 200
            self.requests.append(Received(dict(request.headers), body, time.monotonic(), status))
        return web.Response(status=status, text="ok" if status < 300 else "try again")

    # --- reading -------------------------------------------------------------------------------
    def delivered(self) -> list[Received]:
        """The requests answered with a 2xx."""
        with self._lock:
            return [r for r in self.requests if 200 <= r.status < 300]

    def wait_for(
        self, count: int, timeout: float = 15.0, *, delivered: bool = True
    ) -> list[Received]:
        """Block until `count` requests (by default: answered 2xx) arrived; AssertionError after
        `timeout`. Works from sync code and from async tests (it only sleeps this thread)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.delivered() if delivered else list(self.requests)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} of {count} webhook requests after {timeout} s")
            time.sleep(0.02)

    async def wait_for_async(
        self, count: int, timeout: float = 15.0, *, delivered: bool = True
    ) -> list[Received]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.delivered() if delivered else list(self.requests)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} of {count} webhook requests after {timeout} s")
            await asyncio.sleep(0.02)
