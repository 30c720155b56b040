"""Accounts: Clouddriver's `GET /credentials[?expand=true]` and `GET /credentials/{account}`.

Only the accounts the service indexes are listed (those of the enabled dockerRegistry provider);
credentials (username, password, passwordFile, passwordCommand, docker config) never appear.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from regwatch.api.deps import service_of
from regwatch.api.errors import ApiError
from regwatch.api.models import NOT_FOUND, CredentialsBrief, CredentialsExpanded
from regwatch.api.responses import json_response
from regwatch.api.shaping import account_not_found, credentials_brief, credentials_expanded

router = APIRouter(tags=["accounts"])


@router.get("/credentials", response_model=list[CredentialsExpanded | CredentialsBrief])
async def list_credentials(request: Request, expand: bool = False) -> Response:
    """Every account, brief, or with its settings when `expand=true`."""
    accounts = service_of(request).accounts
    primary = accounts.primary
    render = credentials_expanded if expand else credentials_brief
    return json_response([render(a, a.name == primary) for a in accounts.accounts.values()])


@router.get("/credentials/{account}", response_model=CredentialsExpanded, responses=NOT_FOUND)
async def get_credentials(request: Request, account: str) -> Response:
    """One account with its settings."""
    accounts = service_of(request).accounts
    found = accounts.accounts.get(account)
    if found is None:
        raise ApiError(404, account_not_found(account))
    return json_response(credentials_expanded(found, found.name == accounts.primary))
