"""RegistryClient: the Docker Registry HTTP API V2 / OCI distribution calls regwatch needs.

`ping`, `catalog`/`catalog_pages`, `tags`/`tag_pages`, `head_manifest`, `get_manifest` and
`get_image_config`, with authentication (see `auth`), retries and budgets (see `transport`).

- Lists are fetched with `n=<paginate_size>` and follow `Link: <…>; rel="next"` exactly as given;
  a next link to another scheme/host/port is refused before anything is sent to it, and a link
  back to a page already fetched is a loop, reported as a ProtocolError.
- Manifests: HEAD for the digest, GET only when the body is needed, always with the full Accept
  list. A GET body is verified against `Docker-Content-Digest` and against a digest reference.
- The config blob follows the registry's redirect to blob storage by hand, so the Authorization
  header only ever goes to the registry's own origin; the blob is verified against its digest.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import AsyncIterator, Callable
from types import TracebackType

import aiohttp
from yarl import URL

from regwatch.errors import NotFoundError, ProtocolError, RegistryError
from regwatch.models import (
    MANIFEST_ACCEPT,
    CredentialSource,
    Endpoint,
    ImageConfig,
    ManifestInfo,
)
from regwatch.reference import api_base, registry_name
from regwatch.registry import manifests
from regwatch.registry.auth import (
    CATALOG_SCOPE,
    Authenticator,
    Mode,
    is_challenge,
    repository_scope,
)
from regwatch.registry.failures import failure
from regwatch.registry.links import next_link, origin, resolve, same_origin
from regwatch.registry.stats import ClientStats
from regwatch.registry.transport import RequestContext, Response, Transport

LIST_MAX_BODY = 32 << 20
MANIFEST_MAX_BODY = 4 << 20  # distribution's own limit
CONFIG_MAX_BODY = 16 << 20
SMALL_MAX_BODY = 1 << 20
MAX_PAGES = 100_000
MAX_REDIRECTS = 5
REDIRECTS = frozenset({301, 302, 303, 307, 308})
ACCEPT = ", ".join(MANIFEST_ACCEPT)

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class RegistryClient:
    """A client for one registry endpoint (see the module docstring)."""

    def __init__(
        self,
        endpoint: Endpoint,
        credentials: CredentialSource | None = None,
        *,
        transport: Transport | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.registry = registry_name(endpoint.address)
        self._v2 = api_base(endpoint.address) + "/v2/"
        self._owns_transport = transport is None
        self._transport = transport if transport is not None else Transport()
        budget = self._transport.budget(self.registry)
        self.stats = ClientStats(budget)
        seconds = endpoint.timeout_ms / 1000
        self._ctx = RequestContext(
            registry=self.registry,
            ssl=self._transport.ssl_context(endpoint.insecure, endpoint.ca_cert),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=seconds, sock_read=seconds),
            budget=budget,
            stats=self.stats,
            rng=rng or random.Random(),
        )
        self._auth = Authenticator(
            self.registry, self._v2, credentials, self._transport, self._ctx, clock
        )

    def __repr__(self) -> str:
        return f"RegistryClient({self.registry!r})"

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the transport if this client created it (a shared one is closed by its owner)."""
        if self._owns_transport:
            await self._transport.close()

    @property
    def auth_mode(self) -> str:
        """ "anonymous", "basic", "bearer", or "unknown" before the first request."""
        return self._auth.mode.value

    # --- API -------------------------------------------------------------------------------------
    async def ping(self) -> None:
        """`GET /v2/` with credentials: proves the registry is up and accepts us."""
        response = await self._request("GET", URL(self._v2, encoded=True), None, SMALL_MAX_BODY)
        if response.status != 200:
            raise self._failure(response, "the API version check (/v2/)")

    def catalog_pages(self, page_size: int | None = None) -> AsyncIterator[list[str]]:
        """The repositories, one page at a time."""
        first = f"{self._v2}_catalog?n={page_size or self.endpoint.paginate_size}"
        return self._pages(first, CATALOG_SCOPE, "repositories", None)

    async def catalog(self) -> list[str]:
        return [name async for page in self.catalog_pages() for name in page]

    def tag_pages(self, repository: str, page_size: int | None = None) -> AsyncIterator[list[str]]:
        """The tags of `repository`, one page at a time."""
        _check_repository(repository, self.registry)
        first = f"{self._v2}{repository}/tags/list?n={page_size or self.endpoint.paginate_size}"
        return self._pages(first, repository_scope(repository), "tags", repository)

    async def tags(self, repository: str) -> list[str]:
        return [tag async for page in self.tag_pages(repository) for tag in page]

    async def head_manifest(self, repository: str, reference: str) -> ManifestInfo:
        """Digest, media type and size of a manifest, by HEAD (a GET if no digest header)."""
        url = self._manifest_url(repository, reference)
        response = await self._request(
            "HEAD", url, repository_scope(repository), 0, repository, ACCEPT
        )
        if response.status != 200:
            raise self._failure(response, "a manifest", repository, reference)
        digest = response.headers.get("Docker-Content-Digest")
        if not digest:
            return await self.get_manifest(repository, reference)
        self._check_header_digest(digest, repository, reference)
        length = response.headers.get("Content-Length")
        return ManifestInfo(
            digest=digest,
            media_type=manifests.media_type_base(response.headers.get("Content-Type")),
            size=int(length) if length and length.isdigit() else None,
        )

    async def get_manifest(self, repository: str, reference: str) -> ManifestInfo:
        """The parsed manifest, its digest verified against the body."""
        url = self._manifest_url(repository, reference)
        response = await self._request(
            "GET", url, repository_scope(repository), MANIFEST_MAX_BODY, repository, ACCEPT
        )
        if response.status != 200:
            raise self._failure(response, "a manifest", repository, reference)
        header = response.headers.get("Docker-Content-Digest")
        if header:
            self._check_header_digest(header, repository, reference)
        expected = reference if manifests.is_digest(reference) else header
        body = response.body
        if expected and not manifests.digest_matches(body, expected):
            raise self._protocol(f"manifest {repository}:{reference} does not match its digest")
        digest = expected or manifests.compute_digest(body)
        try:
            return manifests.parse_manifest(body, digest, response.headers.get("Content-Type"))
        except ValueError as exc:
            raise self._protocol(f"manifest {repository}:{reference}: {exc}", repository) from None

    async def get_image_config(self, repository: str, config_digest: str) -> ImageConfig:
        """The image config blob's `created`, labels, os and architecture, digest verified."""
        _check_repository(repository, self.registry)
        self._check_digest(config_digest, repository)
        url = URL(f"{self._v2}{repository}/blobs/{config_digest}", encoded=True)
        response = await self._get_following_redirects(url, repository)
        what = f"config blob {config_digest[:19]}…"
        if response.status != 200:
            raise self._failure(response, what, repository, blob=True)
        if not manifests.digest_matches(response.body, config_digest):
            raise self._protocol(f"{what} of {repository} does not match its digest", repository)
        try:
            return manifests.parse_image_config(response.body, config_digest)
        except ValueError as exc:
            raise self._protocol(f"config blob of {repository}: {exc}", repository) from None

    # --- requests --------------------------------------------------------------------------------
    async def _request(
        self,
        method: str,
        url: URL,
        scope: str | None,
        max_body: int,
        repository: str | None = None,
        accept: str | None = None,
    ) -> Response:
        """One authenticated request: learn the auth scheme, send, refresh once on a challenge."""
        auth = self._auth
        if auth.mode is Mode.UNKNOWN:
            await auth.discover(self._anonymous_ping)
        refreshed = False
        for _ in range(4):  # learning a scheme or a scope does not use up the one refresh
            sent = await auth.header(scope)
            headers = {"Accept": accept} if accept else {}
            if sent is not None:
                headers["Authorization"] = sent
            response = await self._transport.send(
                self._ctx, method, url, headers, max_body=max_body, repository=repository
            )
            if not is_challenge(response):
                return response
            if auth.learn(response, scope):
                continue
            if refreshed:
                break
            refreshed = True
            await auth.refresh(sent, scope)
        raise auth.refused(response, scope, repository)

    async def _anonymous_ping(self) -> Response:
        url = URL(self._v2, encoded=True)
        return await self._transport.send(self._ctx, "GET", url, {}, max_body=SMALL_MAX_BODY)

    async def _pages(
        self, first: str, scope: str, key: str, repository: str | None
    ) -> AsyncIterator[list[str]]:
        url = URL(first, encoded=True)
        seen = {first}
        what = f"the tags of {repository}" if repository else "the catalog"
        while True:
            response = await self._request("GET", url, scope, LIST_MAX_BODY, repository)
            if response.status != 200:
                raise self._failure(response, what, repository)
            yield self._list_field(response.body, key, what, repository)
            link = next_link(response.headers.getall("Link", ()))
            if link is None:
                return
            target = resolve(str(url), link)
            if not same_origin(target, self._v2):
                raise self._protocol(
                    f"{what}: refused a next-page link to another host or scheme", repository
                )
            if target in seen or len(seen) >= MAX_PAGES:
                raise self._protocol(f"{what}: the next-page links run in a loop", repository)
            seen.add(target)
            url = URL(target, encoded=True)

    def _list_field(self, body: bytes, key: str, what: str, repository: str | None) -> list[str]:
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise self._protocol(f"{what}: the answer is not valid JSON", repository) from None
        items = data.get(key) if isinstance(data, dict) else None
        if items is None and isinstance(data, dict) and key in data:
            return []  # an emptied repository answers {"tags": null}
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise self._protocol(f"{what}: the answer has no '{key}' list", repository)
        return items

    async def _get_following_redirects(self, url: URL, repository: str) -> Response:
        scope = repository_scope(repository)
        response = await self._request("GET", url, scope, CONFIG_MAX_BODY, repository)
        for _ in range(MAX_REDIRECTS):
            if response.status not in REDIRECTS:
                return response
            location = response.headers.get("Location")
            if not location:
                raise self._protocol(f"blob redirect of {repository} has no Location", repository)
            target = resolve(str(response.url), location)
            try:
                host = origin(target)
            except ValueError:
                raise self._protocol(f"blob of {repository} redirects to a non-http URL") from None
            next_url = URL(target, encoded=True)
            if same_origin(target, self._v2):
                response = await self._request("GET", next_url, scope, CONFIG_MAX_BODY, repository)
            else:  # blob storage: no Authorization header leaves the registry's origin
                budget = self._transport.budget(f"{host[1]}:{host[2]}")
                response = await self._transport.send(
                    self._ctx, "GET", next_url, {}, max_body=CONFIG_MAX_BODY, budget=budget
                )
        raise self._protocol(f"blob of {repository}: more than {MAX_REDIRECTS} redirects")

    # --- helpers ---------------------------------------------------------------------------------
    def _manifest_url(self, repository: str, reference: str) -> URL:
        _check_repository(repository, self.registry)
        if manifests.is_digest(reference):
            self._check_digest(reference, repository)
        elif not _TAG.fullmatch(reference):
            raise NotFoundError(
                f"{reference[:130]!r} is not a valid tag or digest",
                hint="tags are up to 128 of [A-Za-z0-9_.-]; digests look like sha256:<64 hex>",
                registry=self.registry,
                repository=repository,
            )
        return URL(f"{self._v2}{repository}/manifests/{reference}", encoded=True)

    def _check_digest(self, digest: str, repository: str) -> None:
        try:
            manifests.check_digest(digest)
        except ValueError as exc:
            raise NotFoundError(
                f"{exc} for repository {repository}",
                registry=self.registry,
                repository=repository,
            ) from None

    def _check_header_digest(self, digest: str, repository: str, reference: str) -> None:
        try:
            manifests.check_digest(digest)
        except ValueError as exc:
            raise self._protocol(f"manifest {repository}:{reference}: {exc}", repository) from None
        if manifests.is_digest(reference) and digest != reference:
            raise self._protocol(
                f"manifest {repository}@{reference}: the registry answered another digest",
                repository,
            )

    def _failure(
        self,
        response: Response,
        what: str,
        repository: str | None = None,
        reference: str | None = None,
        *,
        blob: bool = False,
    ) -> RegistryError:
        return failure(
            response,
            self.registry,
            what=what,
            repository=repository,
            reference=reference,
            blob=blob,
            wall_now=self._transport.wall_clock(),
        )

    def _protocol(self, message: str, repository: str | None = None) -> ProtocolError:
        return ProtocolError(
            f"registry {self.registry}: {message}", registry=self.registry, repository=repository
        )


def _check_repository(repository: str, registry: str) -> None:
    if not _REPOSITORY.fullmatch(repository) or len(repository) > 255:
        raise NotFoundError(
            f"{repository[:260]!r} is not a valid repository name",
            hint="names are lower-case components of [a-z0-9._-] separated by '/'",
            registry=registry,
            repository=repository,
        )
