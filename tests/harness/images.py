"""Push synthetic images to a test registry over the registry HTTP API (aiohttp).

Self-contained on purpose: it must not import regwatch (the code under test). Auth: Basic sent
up front, or Bearer tokens fetched from the realm the registry's challenge names (one token per
repository, scope `pull,push,delete`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
from yarl import URL

from . import image_content as ic
from .common import HarnessError
from .loop import run_sync
from .registry import RegistryHandle

T = TypeVar("T")
POPULATE_BASE_TIME = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
SALTED_TIME = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)  # `created` of salted pushes by default


@dataclass
class PushedImage:
    repository: str
    tag: str
    digest: str  # digest of the tagged manifest (the index for index kinds)
    media_type: str
    config_digest: str | None  # None for indexes
    platforms: dict[str, str]  # "linux/amd64" -> child digest (index kinds only)
    created: dt.datetime | None
    labels: dict[str, str]
    manifest: bytes = field(default=b"", repr=False)  # the exact bytes PUT


@dataclass
class _Response:
    status: int
    headers: dict[str, str]
    body: bytes


_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class ImagePusher:
    """`async with ImagePusher(handle) as pusher: await pusher.push("repo", "v1")`."""

    def __init__(self, handle: RegistryHandle, *, concurrency_limit: int = 64) -> None:
        self.handle = handle
        self._limit = concurrency_limit
        self._session: aiohttp.ClientSession | None = None
        self._tokens: dict[str, str] = {}
        self._token_tasks: dict[str, asyncio.Task[str]] = {}
        self._blob_tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._blob_home: dict[str, str] = {}  # digest -> a repository that has it (for mounts)
        self._first_upload: dict[str, tuple[str, asyncio.Task[None]]] = {}
        self._realm: tuple[str, str] | None = None  # (realm, service)

    async def __aenter__(self) -> ImagePusher:
        connector = aiohttp.TCPConnector(limit=self._limit, ssl=self.handle.ssl_context() or True)
        timeout = aiohttp.ClientTimeout(total=60)
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- public API -----------------------------------------------------------------------------
    async def push(
        self,
        repository: str,
        tag: str,
        *,
        kind: str = "docker",
        labels: dict[str, str] | None = None,
        created: dt.datetime | None = None,
        annotations: dict[str, str] | None = None,
        salt: str | None = None,
    ) -> PushedImage:
        """Push one image of `kind` ("docker" | "oci" | "oci-index" | "docker-list") as `tag`.

        A given `salt` makes the result reproducible (same inputs → same digest: `created` then
        defaults to a fixed time, not the second of the push); without one every push is unique.
        """
        if kind not in ic.KIND_TYPES:
            raise ValueError(f"unknown image kind {kind!r}; expected one of {ic.KINDS}")
        types = ic.KIND_TYPES[kind]
        if annotations and kind.startswith("docker"):
            raise ValueError("annotations exist only in OCI manifests (kind 'oci' or 'oci-index')")
        if created is None:  # a push that crossed a second would otherwise get another digest
            created = (
                SALTED_TIME if salt is not None else dt.datetime.now(dt.UTC).replace(microsecond=0)
            )
        fresh = salt is None
        salt = salt if salt is not None else uuid.uuid4().hex
        await self._ensure_blob(repository, ic.shared_layer().blob(types.layer), check=True)
        if not types.is_index:
            config = ic.config_blob(types.config, created=created, labels=labels, salt=salt)
            await self._ensure_blob(repository, config, check=not fresh)
            manifest = ic.image_manifest(types, config, annotations)
            await self._put_manifest(repository, tag, manifest)
            return PushedImage(
                repository, tag, manifest.digest, manifest.media_type, config.digest, {},
                created, dict(labels or {}), manifest.data,
            )  # fmt: skip
        return await self._push_index(
            repository, tag, types, created=created, labels=labels, salt=salt,
            annotations=annotations, fresh=fresh,
        )  # fmt: skip

    async def tag(self, repository: str, existing_digest_or_tag: str, new_tag: str) -> None:
        """Point `new_tag` at the manifest `existing_digest_or_tag` (GET it, PUT it back)."""
        resp = await self._request(
            "GET", repository, f"/manifests/{existing_digest_or_tag}",
            headers={"Accept": ic.ACCEPT_MANIFESTS}, expect=(200,),
        )  # fmt: skip
        media_type = resp.headers.get("Content-Type", ic.DOCKER_MANIFEST)
        await self._put_manifest(repository, new_tag, ic.Blob(resp.body, media_type))

    async def delete(self, repository: str, digest: str) -> None:
        """Delete the manifest `digest` (and so every tag on it)."""
        await self._request("DELETE", repository, f"/manifests/{digest}", expect=(202,))

    async def populate(
        self,
        repos: int,
        tags: int,
        *,
        prefix: str,
        concurrency: int = 16,
        kind: str = "docker",
        unique: bool = False,
    ) -> list[PushedImage]:
        """Push `repos` repositories ("{prefix}repo0000"…) times `tags` tags ("v0000"…).

        Tag j is created at 2024-01-01 + j minutes. By default tag j is the same image (same
        digest) in every repository, like one build pushed to many repositories: its blobs are then
        mounted, not uploaded, which halves the registry's work. `unique=True` makes every image
        distinct (slower).
        """
        semaphore = asyncio.Semaphore(concurrency)

        async def one(repo: str, index: int) -> PushedImage:
            async with semaphore:
                created = POPULATE_BASE_TIME + dt.timedelta(minutes=index)
                salt = None if unique else f"populate:{prefix}:{kind}:{index}"
                tag = f"v{index:04d}"
                return await self.push(repo, tag, kind=kind, created=created, salt=salt)

        jobs = [one(f"{prefix}repo{r:04d}", t) for r in range(repos) for t in range(tags)]
        return list(await asyncio.gather(*jobs))

    # --- pushing --------------------------------------------------------------------------------
    async def _push_index(
        self, repository: str, tag: str, types: ic.KindTypes, *, created: dt.datetime,
        labels: dict[str, str] | None, salt: str, annotations: dict[str, str] | None, fresh: bool,
    ) -> PushedImage:  # fmt: skip
        children: list[tuple[tuple[str, str, str | None], ic.Blob]] = []
        platforms: dict[str, str] = {}
        for platform in ic.INDEX_PLATFORMS:
            os_name, arch, variant = platform
            config = ic.config_blob(
                types.config, created=created, labels=labels, salt=salt,
                os_name=os_name, architecture=arch, variant=variant,
            )  # fmt: skip
            await self._ensure_blob(repository, config, check=not fresh)
            child = ic.image_manifest(types, config)
            await self._put_manifest(repository, child.digest, child)
            children.append((platform, child))
            platforms[f"{os_name}/{arch}"] = child.digest
        index = ic.index_manifest(types, children, annotations)
        await self._put_manifest(repository, tag, index)
        return PushedImage(
            repository, tag, index.digest, index.media_type, None, platforms, created,
            dict(labels or {}), index.data,
        )  # fmt: skip

    async def _put_manifest(self, repository: str, reference: str, manifest: ic.Blob) -> None:
        resp = await self._request(
            "PUT", repository, f"/manifests/{reference}", data=manifest.data,
            headers={"Content-Type": manifest.media_type}, expect=(201,),
        )  # fmt: skip
        got = resp.headers.get("Docker-Content-Digest")
        if got != manifest.digest:
            raise HarnessError(f"{repository}:{reference}: registry stored {got}, expected "
                               f"{manifest.digest}")  # fmt: skip

    async def _ensure_blob(self, repository: str, blob: ic.Blob, *, check: bool) -> None:
        """Upload `blob` once per repository (concurrent callers share one upload).

        A blob already uploaded to another repository is mounted from there (one request).
        """
        first = self._first_upload.get(blob.digest)
        if first is not None and first[0] != repository and not first[1].done():
            with contextlib.suppress(Exception):
                await asyncio.shield(first[1])
        key = (repository, blob.digest)
        task = self._blob_tasks.get(key)
        if task is None:
            task = asyncio.ensure_future(self._upload_blob(repository, blob, check))
            self._blob_tasks[key] = task
            self._first_upload.setdefault(blob.digest, (repository, task))
        try:
            await asyncio.shield(task)
        except BaseException:
            if task.done():
                self._blob_tasks.pop(key, None)
            raise

    async def _upload_blob(self, repository: str, blob: ic.Blob, check: bool) -> None:
        home = self._blob_home.get(blob.digest)
        can_mount = home is not None and home != repository
        if check and not can_mount:
            head = await self._request("HEAD", repository, f"/blobs/{blob.digest}", expect=None)
            if head.status == 200:
                self._blob_home.setdefault(blob.digest, repository)
                return
        start = "/blobs/uploads/"
        if can_mount:
            start += f"?mount={quote(blob.digest)}&from={quote(home or '')}"
        # A cross-repository mount needs pull access to the source repository too.
        source = home if can_mount else None
        resp = await self._request("POST", repository, start, expect=(201, 202), source=source)
        if resp.status == 202:
            location = resp.headers["Location"]
            url = str(URL(self.handle.url).join(URL(location, encoded=True)))
            url += ("&" if "?" in url else "?") + "digest=" + quote(blob.digest)
            headers = {"Content-Type": "application/octet-stream"}
            await self._request(
                "PUT", repository, url, data=blob.data, headers=headers, expect=(201,)
            )
        self._blob_home.setdefault(blob.digest, repository)

    # --- HTTP and auth --------------------------------------------------------------------------
    async def _request(
        self,
        method: str,
        repository: str,
        path_or_url: str,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        expect: tuple[int, ...] | None,
        source: str | None = None,
    ) -> _Response:
        """One request with auth (`source`: a repository we also need pull access to); on 401
        refresh the token once and retry."""
        url = URL(path_or_url, encoded=True)
        if not path_or_url.startswith(("http://", "https://")):
            url = URL(f"{self.handle.url}/v2/{repository}{path_or_url}", encoded=True)
        scopes = [f"repository:{repository}:pull,push,delete"]
        if source is not None:
            scopes.append(f"repository:{source}:pull")
        resp = await self._send(method, url, scopes, data, headers)
        if resp.status == 401 and self.handle.mode == "token":
            self._remember_challenge(resp.headers.get("WWW-Authenticate", ""))
            self._tokens.pop(" ".join(scopes), None)
            resp = await self._send(method, url, scopes, data, headers)
        if expect is not None and resp.status not in expect:
            snippet = resp.body[:300].decode(errors="replace")
            raise HarnessError(
                f"{method} {repository} {path_or_url.split('?')[0]}: HTTP {resp.status}, "
                f"expected {expect}: {snippet}"
            )
        return resp

    async def _send(
        self,
        method: str,
        url: URL,
        scopes: list[str],
        data: bytes | None,
        headers: dict[str, str] | None,
    ) -> _Response:
        assert self._session is not None, "use ImagePusher as an async context manager"
        all_headers = dict(headers or {})
        auth = await self._auth_header(scopes)
        if auth:
            all_headers["Authorization"] = auth
        async with self._session.request(method, url, data=data, headers=all_headers) as resp:
            body = await resp.read()
            return _Response(resp.status, dict(resp.headers), body)

    async def _auth_header(self, scopes: list[str]) -> str | None:
        handle = self.handle
        if handle.mode == "basic":
            return aiohttp.encode_basic_auth(handle.username or "", handle.password or "")
        if handle.mode != "token" or self._realm is None:
            return None  # token mode: the first 401 tells us the realm
        key = " ".join(scopes)
        token = self._tokens.get(key)
        if token is None:
            task = self._token_tasks.get(key)
            if task is None or task.done():
                task = asyncio.ensure_future(self._fetch_token(scopes))
                self._token_tasks[key] = task
            token = await asyncio.shield(task)
        return f"Bearer {token}"

    def _remember_challenge(self, header: str) -> None:
        params = dict(_CHALLENGE_PARAM.findall(header))
        if not header.lower().startswith("bearer") or "realm" not in params:
            raise HarnessError(f"{self.handle.name}: unexpected challenge {header!r}")
        self._realm = (params["realm"], params.get("service", ""))

    async def _fetch_token(self, scopes: list[str]) -> str:
        assert self._session is not None
        assert self._realm is not None
        realm, service = self._realm
        query = [("service", service)] + [("scope", scope) for scope in scopes]
        auth = aiohttp.encode_basic_auth(self.handle.username or "", self.handle.password or "")
        async with self._session.get(realm, params=query, headers={"Authorization": auth}) as resp:
            if resp.status != 200:
                raise HarnessError(f"token for {' '.join(scopes)}: HTTP {resp.status}")
            body: dict[str, Any] = await resp.json()
        token = str(body.get("token") or body.get("access_token") or "")
        self._tokens[" ".join(scopes)] = token
        return token


# --- sync helpers -------------------------------------------------------------------------------
def run_pusher(handle: RegistryHandle, fn: Callable[[ImagePusher], Awaitable[T]]) -> T:
    """Run `await fn(pusher)` from sync code (also works inside a running event loop)."""

    async def main() -> T:
        async with ImagePusher(handle) as pusher:
            return await fn(pusher)

    return run_sync(main)


def push_images(
    handle: RegistryHandle, repository: str, tags: str | Iterable[str], **push_kwargs: Any
) -> list[PushedImage]:
    """Sync: push one image per tag to `repository` (kwargs as for `ImagePusher.push`)."""
    names = [tags] if isinstance(tags, str) else list(tags)

    async def fn(pusher: ImagePusher) -> list[PushedImage]:
        return [await pusher.push(repository, tag, **push_kwargs) for tag in names]

    return run_pusher(handle, fn)


def populate(handle: RegistryHandle, repos: int, tags: int, **kwargs: Any) -> list[PushedImage]:
    """Sync `ImagePusher.populate`."""
    return run_pusher(handle, lambda pusher: pusher.populate(repos, tags, **kwargs))
