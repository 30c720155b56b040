"""The app factory: `create_app(service)` → the FastAPI application `regwatch serve` runs.

Plugging another package in (the events package, for instance) takes two edits here:
- its `APIRouter` goes into `routers()`; its handlers reach the service through
  `request.app.state.service` (a `regwatch.service.Service`);
- its installer goes into `extensions()`: a function `(service) -> None` that calls
  `service.add_worker(name, factory)` (and `service.set_sinks(...)`, `service.on_reload(...)`).
The lifespan starts the service (scans, config watcher, workers) and stops it on shutdown.
"""

from __future__ import annotations

import gc
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from prometheus_client import Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from regwatch import __version__
from regwatch.api.cache import DEFAULT_TTL, IndexWrites, ResponseCache, observe_writes
from regwatch.api.errors import install_error_handlers
from regwatch.service import Service

DESCRIPTION = (
    "Clouddriver-compatible lookups of Docker Registry images (`/credentials`, "
    "`/dockerRegistry/images/find`, `/dockerRegistry/images/tags`, Gate's `/images/...`), "
    "plus regwatch's health, metrics, account status and scan requests."
)


def routers() -> list[APIRouter]:
    """Every router the app serves."""
    from regwatch.api import credentials, images, ops
    from regwatch.events import routes as events_routes

    return [images.router, credentials.router, ops.router, events_routes.router]


def extensions() -> list[Callable[[Service], None]]:
    """Installers of packages that run workers inside the service."""
    from regwatch.events.service import install as install_events

    return [install_events]


def create_app(service: Service, *, cache_seconds: float = DEFAULT_TTL) -> FastAPI:
    """The application for `service`: runs every extension's installer, includes every router.

    `cache_seconds`: how far repository-scoped lookups answered from the response cache may lag
    behind writes by other processes (this process's own writes invalidate it at once; see
    `api/cache.py`; 0 turns it off)."""
    for install in extensions():
        install(service)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await service.start()
            # Start-up leaves ~0.5M long-lived objects (SQLAlchemy, pydantic, FastAPI); without
            # this a full GC pass over them lands in the p99 of allocation-heavy lookups.
            gc.collect()
            gc.freeze()
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="regwatch",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.cache = cache = ResponseCache(cache_seconds)
    observe_writes(service.store, IndexWrites(cache))
    install_error_handlers(app)
    for router in routers():
        app.include_router(router)
    app.add_middleware(LatencyMiddleware, histogram=service.metrics.api_seconds)
    return app


class LatencyMiddleware:
    """Observes each request's latency by method, route template and status (pure ASGI: a
    BaseHTTPMiddleware would cost more than some lookups)."""

    def __init__(self, app: ASGIApp, histogram: Histogram) -> None:
        self.app = app
        self.histogram = histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.histogram.labels(scope["method"], template, str(status)).observe(
                time.perf_counter() - started
            )
