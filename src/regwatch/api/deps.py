"""How routes reach the service and the response cache (`request.app.state`, set by
`create_app`)."""

from __future__ import annotations

from starlette.requests import Request

from regwatch.api.cache import ResponseCache
from regwatch.service import Service


def service_of(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def cache_of(request: Request) -> ResponseCache:
    cache: ResponseCache = request.app.state.cache
    return cache
