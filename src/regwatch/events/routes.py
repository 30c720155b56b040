"""HTTP routes of the events package: `GET /events`, `GET /events/{id}`, `POST /webhooks/registry`.

Handlers reach the service through `request.app.state.service` (set by the app factory) and
answer errors as Starlette `HTTPException`s, which the app turns into its one error shape; this
module imports nothing from `regwatch.api` (nothing may).

The push endpoint is protected by a shared secret (`regwatch.notifications.token`), sent as
`Authorization: Bearer <token>` (distribution: `notifications.endpoints[].headers`), as
`X-Regwatch-Token`, or — for senders that can only be given a URL, like Docker Hub — as
`?token=`. Without a configured token the endpoint refuses everything. Answers: 202 with one
result per claim; 503 when the registry could not be asked to verify a claim (the sender should
retry; distribution does); 401, 403, 400 and 413 otherwise.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.exceptions import HTTPException
from starlette.responses import Response

from regwatch.events.notifications import MAX_BODY, NotificationError, parse_notification
from regwatch.events.service import Events, events_of
from regwatch.events.views import event_json, outbox_json
from regwatch.service import Service
from regwatch.store import Store

router = APIRouter(tags=["events"])


class ApiError(HTTPException):
    """An error answered in the API's one error shape (the app's HTTPException handler)."""

    def __init__(self, status: int, message: str, *, hint: str | None = None) -> None:
        super().__init__(status, f"{message} — {hint}" if hint else message)


def service_of(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def json_response(data: Any, status: int = 200) -> Response:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type="application/json")


def _events(service: Service) -> Events:
    events = events_of(service)
    if events is None:
        raise ApiError(503, "the events package is not installed in this service")
    return events


@router.get("/events")
async def list_events(
    request: Request,
    account: str | None = None,
    repository: str | None = None,
    before: int | None = Query(None, ge=1, description="only events with a smaller seq"),
    limit: int = Query(50, ge=1, le=500),
) -> Response:
    """Recent events, newest first, each with its deliveries; and the outbox's state."""
    service = service_of(request)
    events = _events(service)
    found = await service.store.call(
        Store.recent_events,
        account=account,
        repository=repository,
        before_seq=before,
        limit=limit,
    )
    counts = await service.store.call(Store.outbox_counts)
    worker = events.worker
    body = {
        "events": [event_json(view) for view in found],
        "outbox": outbox_json(counts, rate_caps=worker.rate_caps, dispatching=worker.dispatching),
        "nextBefore": found[-1].event.seq if len(found) == limit else None,
    }
    return json_response(body)


@router.get("/events/{ref}")
async def show_event(request: Request, ref: str) -> Response:
    """One event (by id or seq) with its deliveries."""
    service = service_of(request)
    view = await service.store.call(Store.find_event, ref)
    if view is None:
        raise ApiError(404, f"no event {ref!r}", hint="GET /events lists recent events")
    return json_response(event_json(view))


def _token_of(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("bearer", "token") and value.strip():
        return value.strip()
    return request.headers.get("x-regwatch-token") or request.query_params.get("token")


def _check_token(request: Request, service: Service) -> None:
    expected = service.settings.notifications.token
    if not expected:
        raise ApiError(
            403,
            "push notifications are disabled",
            hint="set regwatch.notifications.token (or REGWATCH_NOTIFICATIONS_TOKEN)",
        )
    given = _token_of(request)
    if given is None or not hmac.compare_digest(given.encode(), expected.reveal().encode()):
        raise ApiError(401, "missing or wrong notification token")


async def _read_body(request: Request) -> bytes:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_BODY:
        raise ApiError(413, f"the notification is larger than {MAX_BODY} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise ApiError(413, f"the notification is larger than {MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/webhooks/registry", status_code=202)
async def registry_notification(request: Request, account: str | None = None) -> Response:
    """A registry's push notification: each pushed tag is verified on the registry, indexed,
    and its event delivered at once."""
    service = service_of(request)
    events = _events(service)
    _check_token(request, service)
    try:
        claims = parse_notification(await _read_body(request))
    except NotificationError as exc:
        raise ApiError(400, str(exc)) from None
    results = await events.receiver.receive(claims, account=account)
    status = 503 if any(r.retryable for r in results) else 202
    return json_response({"results": [r.to_json() for r in results]}, status=status)
