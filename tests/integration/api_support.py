"""Serving a regwatch app in-process for tests: uvicorn on 127.0.0.1, a free port, no signal
handlers (the test process keeps its own)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import uvicorn
from fastapi import FastAPI

from regwatch.cli.serve_cmd import listen_socket


class QuietServer(uvicorn.Server):
    """No signal handlers: the test process keeps its own."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serve_app(app: FastAPI, *, stop_timeout: float = 30) -> AsyncIterator[str]:
    """Run `app` (its lifespan too) until the block ends; yields its base URL."""
    sock = listen_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = QuietServer(uvicorn.Config(app, log_config=None, lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(200):
            if server.started or task.done():
                break
            await asyncio.sleep(0.05)
        assert server.started, "the service did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, stop_timeout)
        sock.close()
