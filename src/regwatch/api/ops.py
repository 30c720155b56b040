"""regwatch's own endpoints: `/health`, `/metrics`, an account's status, and "scan now"."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from regwatch.api.deps import service_of
from regwatch.api.errors import ApiError
from regwatch.api.models import NOT_FOUND, Health, ScanRequested
from regwatch.api.responses import json_response
from regwatch.api.shaping import account_not_found
from regwatch.api.views import account_status_view, iso, schedule_view
from regwatch.service import Service
from regwatch.service.metrics import CONTENT_TYPE
from regwatch.store import AccountStatus, Store

router = APIRouter(tags=["operations"])


def health_view(service: Service, now: float) -> dict[str, Any]:
    """Built from memory only (no store query): cheap, and up even when the store is slow."""
    accounts = service.accounts
    watcher = service.watcher
    views: dict[str, dict[str, Any]] = {}
    for name in accounts.accounts:
        schedule = service.schedule(name)
        views[name] = schedule_view(schedule) if schedule is not None else {"state": "pending"}
    return {
        "status": "UP",
        "instance": service.instance_id,
        "uptimeSeconds": round(now - (service.started_at or now), 3),
        "provider": {"enabled": accounts.enabled, "primaryAccount": accounts.primary},
        "scanning": service.scanning,
        "config": {
            "path": str(service.config_path),
            "loadedAt": iso(watcher.current.loaded_at),
            "reloads": watcher.reloads,
            "error": watcher.error,
            "errorAt": iso(watcher.error_at),
            "accountErrors": dict(accounts.errors),
        },
        "accounts": views,
        "workers": {name: worker.view() for name, worker in service.workers.items()},
    }


@router.get("/health", response_model=Health)
async def health(request: Request) -> Response:
    """UP while the process serves, whatever the registries do; per-account state in the body."""
    return json_response(health_view(service_of(request), time.time()))


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE: {}}}})
async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    return Response(service_of(request).metrics.render(), media_type=CONTENT_TYPE)


def _budget_view(service: Service, registry: str) -> dict[str, Any]:
    budget = service.transport.budget(registry)
    reset_in = None
    if budget.reset_at is not None:
        reset_in = round(max(0.0, budget.reset_at - service.transport.clock()), 3)
    return {
        "limit": budget.limit,
        "remaining": budget.remaining,
        "resetInSeconds": reset_in,
        "delaySeconds": round(budget.delay(), 3),
    }


@router.get("/dockerRegistry/accounts/{account}/status", responses=NOT_FOUND)
async def account_status(request: Request, account: str) -> Response:
    """Last scan, staleness, errors per repository, requests made, rate-limit budget left."""
    service = service_of(request)
    configured = service.account(account)
    if configured is None:
        raise ApiError(404, account_not_found(account))
    status = await service.store.call(Store.account_status, account)
    budget = _budget_view(service, configured.registry)
    view = account_status_view(account, service.schedule(account), status, budget, time.time())
    view["registry"] = configured.registry
    view.update(await instances_view(service, account, status))
    return json_response(view)


async def instances_view(
    service: Service, account: str, status: AccountStatus | None
) -> dict[str, Any]:
    """Which instance scanned what and when (several instances): per repository, the instance
    that last scanned it (a job of a shared pass, or the account's run at that time), and the
    newest run's pass when it was shared (its jobs per state, done per instance)."""
    scans = await service.store.call(Store.repository_scans, account)
    run = status.last_run if status is not None else None
    summary = await service.store.call(Store.scan_pass, run.id) if run is not None else None
    shared = None
    if summary is not None and summary.jobs:
        shared = {
            "runId": summary.run_id,
            "instance": summary.holder,
            "status": summary.status,
            "repositories": summary.jobs,
            "pending": summary.pending,
            "claimed": summary.claimed,
            "done": summary.done,
            "byInstance": dict(summary.by_instance),
        }
    return {
        "sharedPass": shared,
        "repositoryScans": [
            {
                "repository": scan.repository,
                "instance": scan.instance,
                "scannedAt": iso(scan.at),
                "runId": scan.run_id,
                "shared": scan.shared,
            }
            for scan in scans
        ],
    }


@router.post(
    "/dockerRegistry/accounts/{account}/scan",
    status_code=202,
    response_model=ScanRequested,
    responses=NOT_FOUND,
)
async def scan_now(request: Request, account: str) -> Response:
    """Scan the account now (or right after the scan that is running), whichever instance
    holds it: the request is kept in the store; `queued` says another instance (`holder`, when
    one holds the account) will scan it, within its lease retry period."""
    service = service_of(request)
    if service.account(account) is None:
        raise ApiError(404, account_not_found(account))
    return json_response(await service.queue_scan(account), status=202)
