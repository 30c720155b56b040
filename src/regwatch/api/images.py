"""Image lookups: Clouddriver's `/dockerRegistry/images/{find,tags}` and Gate's `/images/…` forms.

Differences from upstream, all in the caller's favour: `count` is applied after the filters
(upstream cuts first, so its results can be short); `tag` filters even without `repository`;
`q` is a case-insensitive substring of `registry/repository:tag`; tags may also be sorted by
semantic version with `sort=semver`. Repository-scoped answers go through the response cache
(`cache.py`): invalidated by this process's writes, at most `--cache-seconds` behind other
processes'.

These are the hot routes (bench/api.py), so they take the bare `Request`: parameters are parsed
by `params.py` (documented through `openapi_extra`), rows come from the store as tuples
(`find_image_rows`, no TagRecords) and the JSON is serialised once into a plain `Response`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.engine import Connection
from starlette.responses import Response

from regwatch.api import params
from regwatch.api.deps import cache_of, service_of
from regwatch.api.errors import ApiError
from regwatch.api.models import ERROR_RESPONSES, ImageItem
from regwatch.api.responses import bytes_response, json_bytes, json_response
from regwatch.api.shaping import CLOUD_PROVIDER, normalize_query, rows_json, tag_order
from regwatch.store import Store, queries

router = APIRouter(tags=["images"])
FIND_EXTRA = params.query_parameters(*params.FIND_DOCS)
TAGS_EXTRA = params.query_parameters(*params.TAGS_DOCS)
GATE_FIND_EXTRA = params.query_parameters(params.PROVIDER_DOC, *params.FIND_DOCS)
GATE_TAGS_EXTRA = params.query_parameters(params.PROVIDER_DOC, *params.TAGS_DOCS)


def image_rows(store: Store, /, details: bool, **filters: Any) -> list[tuple[Any, ...]]:
    """`queries.find_image_rows` on the store's reader (an `AsyncStore.call`-able read). No
    explicit transaction: the lookup is one SELECT (two with `q` and an account, which read
    the account's key, never changed once given)."""
    conn: Connection
    with store.engines.reader.connect() as conn:
        return queries.find_image_rows(conn, is_sqlite=store.is_sqlite, labels=details, **filters)


async def _find(request: Request) -> Response:
    query = request.query_params
    q = normalize_query(params.text(query, "q"))
    account = params.text(query, "account")
    repository = params.text(query, "repository") or None
    tag = params.text(query, "tag") or None
    limit = params.count(query) or None
    details = params.flag(query, "includeDetails")
    service = service_of(request)
    live = service.accounts.accounts
    if account is not None and account not in live:
        return json_response([])
    cache = cache_of(request)
    key = None
    generation = cache.generation(account)
    if q is None and account is not None and repository is not None:
        key = ("find", account, repository, tag, limit, details)
        body = cache.get(key)
        if body is not None:
            return bytes_response(body)
    rows = await service.store.call(
        image_rows, details, q=q, account=account, repository=repository, tag=tag, limit=limit
    )
    body = rows_json((r for r in rows if r[0] in live), details)
    if key is not None:
        cache.put(key, body, account=account, generation=generation)
    return bytes_response(body)


async def _tags(request: Request) -> Response:
    query = request.query_params
    account = params.text(query, "account", required=True) or ""
    repository = params.text(query, "repository", required=True) or ""
    sort = params.choice(query, "sort", params.SORTS)
    service = service_of(request)
    configured = service.account(account)
    if configured is None:
        return json_response([])  # upstream: an unknown account has no tags
    order = tag_order(configured, sort)
    cache = cache_of(request)
    key = ("tags", account, repository, order)
    body = cache.get(key)
    if body is None:
        generation = cache.generation(account)
        body = json_bytes(await service.store.call(Store.tags, account, repository, order))
        cache.put(key, body, account=account, generation=generation)
    return bytes_response(body)


@router.get(
    "/dockerRegistry/images/find",
    response_model=list[ImageItem],
    responses=ERROR_RESPONSES,
    openapi_extra=FIND_EXTRA,
)
async def find_images(request: Request) -> Response:
    """Tagged images matching `q` and the exact `account`, `repository` and `tag` filters."""
    return await _find(request)


@router.get(
    "/dockerRegistry/images/tags",
    response_model=list[str],
    responses=ERROR_RESPONSES,
    openapi_extra=TAGS_EXTRA,
)
async def list_tags(request: Request) -> Response:
    """The repository's tags: lexical, or newest first for an account with sortTagsByDate."""
    return await _tags(request)


def _check_provider(request: Request) -> None:
    provider = request.query_params.get("provider", CLOUD_PROVIDER)
    if provider != CLOUD_PROVIDER:
        raise ApiError(
            400,
            f"provider {provider!r} is not served here",
            hint=f"regwatch serves provider={CLOUD_PROVIDER} only",
        )


@router.get(
    "/images/find",
    response_model=list[ImageItem],
    responses=ERROR_RESPONSES,
    openapi_extra=GATE_FIND_EXTRA,
)
async def gate_find_images(request: Request) -> Response:
    """Gate's form of `/dockerRegistry/images/find`."""
    _check_provider(request)
    return await _find(request)


@router.get(
    "/images/tags",
    response_model=list[str],
    responses=ERROR_RESPONSES,
    openapi_extra=GATE_TAGS_EXTRA,
)
async def gate_list_tags(request: Request) -> Response:
    """Gate's form of `/dockerRegistry/images/tags`."""
    _check_provider(request)
    return await _tags(request)
