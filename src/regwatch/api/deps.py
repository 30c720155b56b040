"""How routes reach the service: `request.app.state.service`, set by `create_app`."""

from __future__ import annotations

from starlette.requests import Request

from regwatch.service import Service


def service_of(request: Request) -> Service:
    service: Service = request.app.state.service
    return service
