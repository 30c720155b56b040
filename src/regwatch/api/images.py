"""Image lookups: Clouddriver's `/dockerRegistry/images/{find,tags}` and Gate's `/images/…` forms.

Differences from upstream, all in the caller's favour: `count` is applied after the filters
(upstream cuts first, so its results can be short); `tag` filters even without `repository`;
`q` is a case-insensitive substring of `registry/repository:tag`; tags may also be sorted by
semantic version with `sort=semver`. Repository-scoped answers go through the micro-cache
(`cache.py`): at most a second behind the index.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from regwatch.api.deps import cache_of, service_of
from regwatch.api.errors import ApiError
from regwatch.api.models import ERROR_RESPONSES, ImageItem
from regwatch.api.responses import bytes_response, json_bytes, json_response
from regwatch.api.shaping import CLOUD_PROVIDER, image_items, normalize_query, tag_order
from regwatch.store import Store

router = APIRouter(tags=["images"])

Count = Annotated[
    int | None, Query(ge=0, description="at most this many results, after the filters (0: all)")
]
Details = Annotated[
    bool, Query(description="add commitId, buildNumber, branch and the labels (inspectDigests)")
]
Q = Annotated[
    str | None, Query(description="substring of registry/repository:tag (case-insensitive)")
]
Sort = Annotated[
    Literal["lexical", "semver", "date"] | None,
    Query(description="regwatch only: lexical, semver (ascending) or date (newest first)"),
]
Provider = Annotated[str, Query(description='only "dockerRegistry" is served')]


async def _find(
    request: Request,
    q: str | None,
    account: str | None,
    repository: str | None,
    tag: str | None,
    count: int | None,
    include_details: bool,
) -> Response:
    service = service_of(request)
    live = service.accounts.accounts
    if account is not None and account not in live:
        return json_response([])
    query, repository, tag, limit = (
        normalize_query(q),
        repository or None,
        tag or None,
        count or None,
    )
    cache = cache_of(request)
    key = None
    if query is None and account is not None and repository is not None:
        key = ("find", account, repository, tag, limit, include_details)
        body = cache.get(key)
        if body is not None:
            return bytes_response(body)
    records = await service.store.call(
        Store.find_images, query, account=account, repository=repository, tag=tag, limit=limit
    )
    body = json_bytes(image_items([r for r in records if r.account in live], include_details))
    if key is not None:
        cache.put(key, body)
    return bytes_response(body)


async def _tags(request: Request, account: str, repository: str, sort: str | None) -> Response:
    service = service_of(request)
    configured = service.account(account)
    if configured is None:
        return json_response([])  # upstream: an unknown account has no tags
    order = tag_order(configured, sort)
    cache = cache_of(request)
    key = ("tags", account, repository, order)
    body = cache.get(key)
    if body is None:
        body = json_bytes(await service.store.call(Store.tags, account, repository, order))
        cache.put(key, body)
    return bytes_response(body)


@router.get(
    "/dockerRegistry/images/find", response_model=list[ImageItem], responses=ERROR_RESPONSES
)
async def find_images(
    request: Request,
    q: Q = None,
    account: str | None = None,
    repository: str | None = None,
    tag: str | None = None,
    count: Count = None,
    includeDetails: Details = False,  # Clouddriver's parameter name
    region: str | None = None,  # accepted and ignored, as upstream
) -> Response:
    """Tagged images matching `q` and the exact `account`, `repository` and `tag` filters."""
    return await _find(request, q, account, repository, tag, count, includeDetails)


@router.get("/dockerRegistry/images/tags", response_model=list[str], responses=ERROR_RESPONSES)
async def list_tags(request: Request, account: str, repository: str, sort: Sort = None) -> Response:
    """The repository's tags: lexical, or newest first for an account with sortTagsByDate."""
    return await _tags(request, account, repository, sort)


def _check_provider(provider: str) -> None:
    if provider != CLOUD_PROVIDER:
        raise ApiError(
            400,
            f"provider {provider!r} is not served here",
            hint=f"regwatch serves provider={CLOUD_PROVIDER} only",
        )


@router.get("/images/find", response_model=list[ImageItem], responses=ERROR_RESPONSES)
async def gate_find_images(
    request: Request,
    provider: Provider = CLOUD_PROVIDER,
    q: Q = None,
    account: str | None = None,
    repository: str | None = None,
    tag: str | None = None,
    count: Count = None,
    includeDetails: Details = False,
    region: str | None = None,
) -> Response:
    """Gate's form of `/dockerRegistry/images/find`."""
    _check_provider(provider)
    return await _find(request, q, account, repository, tag, count, includeDetails)


@router.get("/images/tags", response_model=list[str], responses=ERROR_RESPONSES)
async def gate_list_tags(
    request: Request,
    account: str,
    repository: str,
    provider: Provider = CLOUD_PROVIDER,
    sort: Sort = None,
) -> Response:
    """Gate's form of `/dockerRegistry/images/tags`."""
    _check_provider(provider)
    return await _tags(request, account, repository, sort)
