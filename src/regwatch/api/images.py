"""Image lookups: Clouddriver's `/dockerRegistry/images/{find,tags}` and Gate's `/images/…` forms.

Differences from upstream, all in the caller's favour: `count` is applied after the filters
(upstream cuts first, so its results can be short); `tag` filters even without `repository`;
`q` is a case-insensitive substring of `registry/repository:tag`; tags may also be sorted by
semantic version with `sort=semver`. Repository-scoped answers go through the response cache
(`cache.py`): invalidated by this process's writes, at most `--cache-seconds` behind other
processes'.

These are the hot routes (bench/api.py), so they are plain Starlette routes taking the bare
`Request` (FastAPI routes of the same paths only document them): parameters are parsed by
`params.py` (documented through `openapi_extra`), rows come from the store as tuples
(`find_image_rows`, no TagRecords) and the JSON is serialised once into a plain `Response`.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.engine import Connection
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from regwatch.api import params
from regwatch.api.deps import cache_of, service_of
from regwatch.api.errors import ApiError
from regwatch.api.models import ERROR_RESPONSES, ImageItem
from regwatch.api.responses import bytes_response, json_bytes, json_response
from regwatch.api.shaping import CLOUD_PROVIDER, normalize_query, rows_json, tag_order
from regwatch.store import Store, queries
from regwatch.store.failures import store_errors

router = APIRouter(tags=["images"])


def image_rows(store: Store, /, details: bool, **filters: Any) -> list[tuple[Any, ...]]:
    """`queries.find_image_rows` on the store's reader (an `AsyncStore.call`-able read). No
    explicit transaction: the lookup is one SELECT (two with `q` and an account, which read
    the account's key, never changed once given). A driver error is a StoreError, as from the
    Store's own reads."""
    with store_errors(store.url, "read"):
        return _image_rows(store, details, **filters)


def _image_rows(store: Store, details: bool, **filters: Any) -> list[tuple[Any, ...]]:
    if not store.is_sqlite:
        conn: Connection
        with store.engines.reader.connect() as conn:
            return queries.find_image_rows(conn, is_sqlite=False, labels=details, **filters)
    conn = _held_reader(store)
    try:
        return queries.find_image_rows(conn, is_sqlite=True, labels=details, **filters)
    except BaseException:
        _held.get(store, {}).pop(threading.get_ident(), None)
        conn.close()  # a broken connection is not reused
        raise
    finally:
        if conn.in_transaction():  # SQLAlchemy's autobegin (the account's key): no snapshot kept
            conn.rollback()


# SQLite: a reader connection per store and thread, kept between lookups. Checking one out of
# the pool and returning it (reset included) cost ~0.045 ms, a quarter of a find `q`'s store
# call (~0.19 ms, the 1M-image bench store). Outside a transaction it holds no snapshot: every
# statement sees the latest commit, and WAL checkpoints are not held back.
_held: weakref.WeakKeyDictionary[Store, dict[int, Connection]] = weakref.WeakKeyDictionary()


def _held_reader(store: Store) -> Connection:
    by_thread = _held.setdefault(store, {})
    conn = by_thread.get(threading.get_ident())
    if conn is None or conn.closed:
        conn = by_thread[threading.get_ident()] = store.engines.reader.connect()
    return conn


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

    async def answer() -> bytes:
        rows = await service.store.call(
            image_rows, details, q=q, account=account, repository=repository, tag=tag, limit=limit
        )
        return rows_json((r for r in rows if r[0] in live), details)

    if q is None and account is not None and repository is not None:
        key = ("find", account, repository, tag, limit, details)
        return bytes_response(await _cached(request, key, account, repository, answer))
    return bytes_response(await answer())


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

    async def answer() -> bytes:
        return json_bytes(await service.store.call(Store.tags, account, repository, order))

    key = ("tags", account, repository, order)
    return bytes_response(await _cached(request, key, account, repository, answer))


async def _cached(
    request: Request,
    key: Hashable,
    account: str,
    repository: str,
    answer: Callable[[], Awaitable[bytes]],
) -> bytes:
    """A repository-scoped answer through the response cache (cache.py): fresh, revalidated
    with the repository's change stamp once expired, or computed (the stamp and the cache's
    generation read before the store, so a write meanwhile makes the entry stale, never wrong)."""
    cache = cache_of(request)
    if not cache.enabled:
        return await answer()
    found = cache.lookup(key)
    if found is not None and found.fresh:
        return found.body
    stamp = await service_of(request).store.call(Store.repository_version, account, repository)
    if found is not None and cache.renew(key, stamp):
        return found.body
    # a stamp read before the generation is at worst older than the body: the entry is then
    # recomputed at its next revalidation, never served stale
    generation = cache.generation(account)
    body = await answer()
    cache.put(key, body, account=account, generation=generation, validator=stamp)
    return body


def _check_provider(request: Request) -> None:
    provider = request.query_params.get("provider", CLOUD_PROVIDER)
    if provider != CLOUD_PROVIDER:
        raise ApiError(
            400,
            f"provider {provider!r} is not served here",
            hint=f"regwatch serves provider={CLOUD_PROVIDER} only",
        )


def _add_route(
    path: str,
    name: str,
    answer: Callable[[Request], Awaitable[Response]],
    response_model: Any,
    docs: tuple[dict[str, Any], ...],
    summary: str,
) -> None:
    """`answer` at Clouddriver's `/dockerRegistry{path}` (`name`) and at Gate's `{path}`
    (`gate_{name}`), which also takes `provider` and serves only `dockerRegistry`."""

    async def gate(request: Request) -> Response:
        _check_provider(request)
        return await answer(request)

    upstream_path = f"/dockerRegistry{path}"
    routes = (
        (upstream_path, name, answer, docs, summary),
        (
            path,
            f"gate_{name}",
            gate,
            (params.PROVIDER_DOC, *docs),
            f"Gate's form of `{upstream_path}`.",
        ),
    )
    for route_path, route_name, endpoint, route_docs, description in routes:
        router.add_api_route(
            route_path,
            endpoint,
            methods=["GET"],
            name=route_name,
            description=description,
            response_model=response_model,
            responses=ERROR_RESPONSES,
            openapi_extra=params.query_parameters(*route_docs),
        )
        documented = router.routes.pop()
        # Served by a plain Starlette route, registered first so that it answers: FastAPI's
        # request handling (dependency solving, response wrapping) cost ~0.045 ms of a find
        # `q`'s ~0.3 ms in process (bench/api.py). The FastAPI route only documents it
        # (OpenAPI) and is never reached.
        plain = _labelled(endpoint, documented)
        router.routes.append(Route(route_path, plain, methods=["GET"], name=route_name))
        router.routes.append(documented)


def _labelled(
    endpoint: Callable[[Request], Awaitable[Response]], route: BaseRoute
) -> Callable[[Request], Awaitable[Response]]:
    """`endpoint`, naming `route` in the scope as FastAPI's routes do (the latency metric's
    route label)."""

    async def labelled(request: Request) -> Response:
        request.scope["route"] = route
        return await endpoint(request)

    return labelled


_add_route(
    "/images/find",
    "find_images",
    _find,
    list[ImageItem],
    params.FIND_DOCS,
    "Tagged images matching `q` and the exact `account`, `repository` and `tag` filters.",
)
_add_route(
    "/images/tags",
    "list_tags",
    _tags,
    list[str],
    params.TAGS_DOCS,
    "The repository's tags: lexical, or newest first for an account with sortTagsByDate.",
)
