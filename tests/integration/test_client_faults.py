"""Faults injected by the proxy in front of the real registry: retries, backoff, Retry-After,
truncated and malformed answers, pagination (n, loops, foreign links), rate-limit pacing, and the
blob redirect to storage on another origin."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from aiohttp import web

from harness import PASSWORD, FaultProxy, PushedImage, RegistryHandle, fault_rules
from regwatch.config.secrets import StaticCredentials
from regwatch.errors import ProtocolError, RateLimitedError, TransportError
from regwatch.models import Endpoint, Secret
from regwatch.registry import RegistryClient, Transport

Push = Callable[..., list[PushedImage]]
ProxyFactory = Callable[..., FaultProxy]
TAGS = "/tags/list$"


def make_client(
    handle: RegistryHandle, proxy: FaultProxy, transport: Transport, *, paginate_size: int = 100
) -> RegistryClient:
    credentials = None
    if handle.username:
        credentials = StaticCredentials(handle.username, Secret(handle.password or ""))
    endpoint = Endpoint(proxy.url, paginate_size=paginate_size, timeout_ms=5000)
    return RegistryClient(endpoint, credentials, transport=transport)


def fast_transport(**settings: float) -> Transport:
    """Short backoffs keep the fault tests quick; the arithmetic is the production one."""
    return Transport(**{"backoff_base": 0.05, "backoff_cap": 0.5, **settings})  # type: ignore[arg-type]


@pytest.fixture
def repo(unique_name: str) -> str:
    return f"{unique_name}app"


@pytest.fixture
def proxy(
    registry_basic: RegistryHandle, fault_proxy_factory: ProxyFactory, repo: str, push_images: Push
) -> FaultProxy:
    """A proxy in front of the basic-auth registry, with `repo` holding tags v1, v2 and v3."""
    push_images(registry_basic, repo, ["v1", "v2", "v3"])
    return fault_proxy_factory(registry_basic)


@pytest.fixture
async def transport() -> AsyncIterator[Transport]:
    async with fast_transport() as shared:
        yield shared


@pytest.fixture
def client(
    registry_basic: RegistryHandle, proxy: FaultProxy, transport: Transport
) -> RegistryClient:
    return make_client(registry_basic, proxy, transport)


def assert_no_secret(exc: BaseException) -> None:
    assert PASSWORD not in str(exc)
    assert PASSWORD not in repr(exc)


async def test_429_retry_after_is_honoured(
    client: RegistryClient, proxy: FaultProxy, repo: str
) -> None:
    proxy.add(fault_rules.status(429, retry_after="1", path=TAGS))
    async with client:
        started = time.monotonic()
        assert sorted(await client.tags(repo)) == ["v1", "v2", "v3"]
        waited = time.monotonic() - started
    assert waited >= 1.0
    assert client.stats.rate_limited == 1
    assert client.stats.retries == 1
    assert proxy.count("GET", "/tags/list") == 2


async def test_retry_after_as_http_date(
    client: RegistryClient, proxy: FaultProxy, repo: str
) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)
    proxy.add(fault_rules.status(503, retry_after=when, path=TAGS))
    async with client:
        started = time.monotonic()
        await client.tags(repo)
        waited = time.monotonic() - started
    assert waited >= 0.9  # the date has a one-second resolution
    assert client.stats.retries == 1


async def test_retry_after_beyond_the_limit_fails_fast(
    client: RegistryClient, proxy: FaultProxy, repo: str
) -> None:
    proxy.add(fault_rules.status(429, retry_after="3600", path=TAGS))
    async with client:
        started = time.monotonic()
        with pytest.raises(RateLimitedError) as info:
            await client.tags(repo)
    assert time.monotonic() - started < 1.0
    assert info.value.retry_after == 3600
    assert f"rate limiting us (the tags of {repo})" in str(info.value)


async def test_5xx_is_retried_with_backoff_then_succeeds(
    client: RegistryClient, proxy: FaultProxy, repo: str
) -> None:
    proxy.add(fault_rules.status(503, path=TAGS, times=2))
    async with client:
        assert len(await client.tags(repo)) == 3
    assert client.stats.retries == 2
    assert client.stats.responses[503] == 2


async def test_persistent_5xx_is_a_transport_error_naming_the_repository(
    registry_basic: RegistryHandle, proxy: FaultProxy, repo: str
) -> None:
    proxy.add(fault_rules.status(500, path=TAGS, times=None))
    async with fast_transport(max_retries=2) as transport:
        client = make_client(registry_basic, proxy, transport)
        with pytest.raises(TransportError) as info:
            await client.tags(repo)
    assert info.value.repository == repo
    assert "500" in str(info.value)
    assert "after retries" in str(info.value)
    assert proxy.count("GET", "/tags/list") == 3
    assert_no_secret(info.value)


async def test_backoff_grows_between_attempts(
    registry_basic: RegistryHandle, proxy: FaultProxy, repo: str
) -> None:
    proxy.add(fault_rules.status(502, path=TAGS, times=3))
    async with fast_transport(backoff_base=0.2, backoff_cap=10) as transport:
        client = make_client(registry_basic, proxy, transport)
        started = time.monotonic()
        await client.tags(repo)
        waited = time.monotonic() - started
    # equal jitter: at least half of 0.2 + 0.4 + 0.8
    assert waited >= 0.7
    assert client.stats.retries == 3


async def test_connection_reset_is_retried(
    client: RegistryClient, proxy: FaultProxy, repo: str
) -> None:
    proxy.add(fault_rules.reset(path=TAGS, times=2))
    async with client:
        assert len(await client.tags(repo)) == 3
    statuses = [r.status for r in proxy.requests if "/tags/list" in r.path_qs]
    assert statuses == [0, 0, 200]
    # aiohttp itself retries a reset on a reused keep-alive connection once; ours do the rest
    assert client.stats.retries >= 1


async def test_truncated_body_is_an_error_not_garbage(
    client: RegistryClient, proxy: FaultProxy, repo: str
) -> None:
    proxy.add(fault_rules.truncate(path="/manifests/v1$", method="GET", times=1))
    async with client:
        info = await client.get_manifest(repo, "v1")  # retried after the cut
        assert info.config_digest is not None
        assert client.stats.retries == 1
        proxy.add(fault_rules.truncate(path="/manifests/v1$", method="GET", times=None))
        with pytest.raises(TransportError, match="cut short"):
            await client.get_manifest(repo, "v1")


async def test_malformed_json_is_a_protocol_error(
    client: RegistryClient, proxy: FaultProxy, repo: str
) -> None:
    proxy.add(fault_rules.malformed_json(path=TAGS))
    async with client:
        with pytest.raises(ProtocolError, match="not valid JSON") as info:
            await client.tags(repo)
    assert info.value.repository == repo
    assert client.stats.retries == 0


async def test_manifest_body_that_does_not_match_its_digest(
    client: RegistryClient, proxy: FaultProxy, repo: str
) -> None:
    proxy.add(fault_rules.malformed_json(path="/manifests/v1$", method="GET"))
    async with client:
        with pytest.raises(ProtocolError, match="does not match its digest"):
            await client.get_manifest(repo, "v1")


async def test_paginated_tags_are_gathered_completely_with_n(
    registry_basic: RegistryHandle,
    proxy: FaultProxy,
    transport: Transport,
    repo: str,
    push_images: Push,
) -> None:
    tags = [f"t{i:02d}" for i in range(8)]
    push_images(registry_basic, repo, tags)
    proxy.add(fault_rules.paginate_tags(100))  # the page size is the client's n
    async with make_client(registry_basic, proxy, transport, paginate_size=3) as client:
        pages = [page async for page in client.tag_pages(repo)]
    assert [len(p) for p in pages] == [3, 3, 3, 2]
    assert [t for p in pages for t in p] == sorted([*tags, "v1", "v2", "v3"])
    paths = [r.path_qs for r in proxy.requests if r.path_qs.startswith(f"/v2/{repo}/tags")]
    assert paths[0] == f"/v2/{repo}/tags/list?n=3"
    assert all("n=3" in p for p in paths)
    assert len(paths) == 4


async def test_pagination_loop_is_stopped(
    client: RegistryClient, proxy: FaultProxy, repo: str
) -> None:
    proxy.add(fault_rules.link_loop(path=TAGS))
    async with client:
        with pytest.raises(ProtocolError, match="loop"):
            await client.tags(repo)
    assert proxy.count("GET", "/tags/list") == 1  # the link pointed back at the page just fetched


async def test_pagination_loop_over_several_pages_is_stopped(
    client: RegistryClient, proxy: FaultProxy, repo: str
) -> None:
    loop_link = f'</v2/{repo}/tags/list?n=100&last=x>; rel="next"'
    proxy.add(fault_rules.status(200, path=TAGS, times=None, body={"name": repo, "tags": ["x"]},
                                 headers={"Link": loop_link}))  # fmt: skip
    async with client:
        with pytest.raises(ProtocolError, match="loop"):
            await client.tags(repo)
    assert proxy.count("GET", "/tags/list") == 2


@pytest.fixture
async def foreign_listener() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A TCP listener on 127.0.0.1 that records whatever a client sends to it."""
    received: list[bytes] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.read(65536))
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}", received
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_foreign_next_link_is_refused_and_gets_no_credentials(
    scheme: str,
    client: RegistryClient,
    proxy: FaultProxy,
    repo: str,
    foreign_listener: tuple[str, list[bytes]],
) -> None:
    host, received = foreign_listener
    proxy.add(fault_rules.link_foreign(host, scheme=scheme, path=TAGS))
    async with client:
        with pytest.raises(ProtocolError, match="another host or scheme") as info:
            await client.tags(repo)
    await asyncio.sleep(0.1)
    assert received == []  # nothing at all was sent there, let alone an Authorization header
    assert_no_secret(info.value)


async def test_next_link_to_another_scheme_on_the_same_host_is_refused(
    client: RegistryClient, proxy: FaultProxy, repo: str
) -> None:
    proxy.add(fault_rules.link_foreign(proxy.host, scheme="https", path=TAGS))
    async with client:
        with pytest.raises(ProtocolError, match="another host or scheme"):
            await client.tags(repo)


async def test_rate_limit_headers_slow_the_client_before_any_429(
    client: RegistryClient, proxy: FaultProxy, repo: str
) -> None:
    proxy.add(fault_rules.rate_limit_headers("100;w=1", "4;w=1", path="/manifests/"))
    async with client:
        await client.head_manifest(repo, "v1")  # learns: 4 left in a 1 s window
        assert (client.stats.limit, client.stats.remaining) == (100, 4)
        started = time.monotonic()
        for tag in ("v1", "v2", "v3", "v1"):
            await client.head_manifest(repo, tag)
        waited = time.monotonic() - started
    assert waited >= 0.7  # spaced 0.25 s apart: what is left lasts until the window resets
    assert client.stats.rate_limited == 0


async def test_exhausted_budget_waits_for_the_window(
    client: RegistryClient, proxy: FaultProxy, repo: str
) -> None:
    proxy.add(fault_rules.rate_limit_headers("100;w=1", "0;w=1", path="/manifests/", times=1))
    async with client:
        await client.head_manifest(repo, "v1")
        started = time.monotonic()
        await client.head_manifest(repo, "v2")
        assert time.monotonic() - started >= 0.9


@pytest.fixture
async def blob_storage() -> AsyncIterator[tuple[str, dict[str, bytes], list[dict[str, str]]]]:
    """An HTTP "blob storage" on another port of 127.0.0.1 that serves blobs it is given and
    records the headers of every request."""
    blobs: dict[str, bytes] = {}
    seen: list[dict[str, str]] = []

    async def serve(request: web.Request) -> web.StreamResponse:
        seen.append(dict(request.headers))
        body = blobs.get(request.match_info["digest"])
        if body is None:
            return web.Response(status=404)
        response = web.StreamResponse()
        response.enable_chunked_encoding()  # no Content-Length: the client must cap as it reads
        await response.prepare(request)
        for start in range(0, len(body), 1 << 20):
            await response.write(body[start : start + (1 << 20)])
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/store/{digest}", serve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", blobs, seen
    finally:
        await runner.cleanup()


async def test_config_blob_redirect_to_storage_drops_the_authorization_header(
    registry_basic: RegistryHandle,
    client: RegistryClient,
    proxy: FaultProxy,
    repo: str,
    blob_storage: tuple[str, dict[str, bytes], list[dict[str, str]]],
) -> None:
    storage_url, blobs, seen = blob_storage
    async with client:
        manifest = await client.get_manifest(repo, "v1")
        digest = manifest.config_digest
        assert digest is not None
        direct = await client.get_image_config(repo, digest)
        blobs[digest] = b"placeholder"
        location = {"Location": f"{storage_url}/store/{digest}?X-Signature=a%2Fb"}
        proxy.add(fault_rules.status(307, path="/blobs/", headers=location, times=None))
        with pytest.raises(ProtocolError, match="does not match its digest"):
            await client.get_image_config(repo, digest)  # storage served the wrong bytes
        assert proxy.count("GET", "/blobs/") == 2  # the registry request was authorized
        async with _raw_blob(registry_basic, repo, digest) as body:
            blobs[digest] = body
        redirected = await client.get_image_config(repo, digest)
    assert redirected == direct
    assert len(seen) == 2
    assert all("Authorization" not in headers for headers in seen)
    assert all(headers["User-Agent"].startswith("regwatch/") for headers in seen)


class _raw_blob:
    """Fetch a blob's bytes straight from the registry (test setup only)."""

    def __init__(self, handle: RegistryHandle, repo: str, digest: str) -> None:
        self.handle, self.repo, self.digest = handle, repo, digest

    async def __aenter__(self) -> bytes:
        import aiohttp

        raw = f"{self.handle.username}:{self.handle.password}".encode()
        headers = {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        async with aiohttp.ClientSession() as session:
            url = f"{self.handle.url}/v2/{self.repo}/blobs/{self.digest}"
            async with session.get(url, headers=headers) as resp:
                assert resp.status == 200
                return await resp.read()

    async def __aexit__(self, *exc: object) -> None:
        return None


async def test_blob_larger_than_the_cap_is_refused_while_reading(
    client: RegistryClient,
    proxy: FaultProxy,
    repo: str,
    blob_storage: tuple[str, dict[str, bytes], list[dict[str, str]]],
) -> None:
    storage_url, blobs, _seen = blob_storage
    async with client:
        digest = (await client.get_manifest(repo, "v1")).config_digest
        assert digest is not None
        blobs[digest] = b"x" * (17 << 20)  # above the 16 MiB config cap, sent chunked
        location = {"Location": f"{storage_url}/store/{digest}"}
        proxy.add(fault_rules.status(307, path="/blobs/", headers=location, times=None))
        with pytest.raises(ProtocolError, match="larger than"):
            await client.get_image_config(repo, digest)
    assert client.stats.bytes < (1 << 20)  # nothing of it was kept


async def test_manifest_larger_than_the_cap_is_refused(
    client: RegistryClient, proxy: FaultProxy, repo: str
) -> None:
    huge = "x" * (5 << 20)  # above distribution's 4 MiB manifest limit, with a Content-Length
    proxy.add(fault_rules.status(200, path="/manifests/v1$", method="GET", body=huge))
    async with client:
        with pytest.raises(ProtocolError, match="larger than 4096 KiB"):
            await client.get_manifest(repo, "v1")


async def test_compressed_bodies_are_decoded_and_capped_after_decompression(
    client: RegistryClient, proxy: FaultProxy, repo: str
) -> None:
    gzip_json = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    small = gzip.compress(json.dumps({"name": repo, "tags": ["z1", "z2"]}).encode())
    proxy.add(fault_rules.status(200, path=TAGS, body=small, headers=gzip_json))
    # 40 MiB of spaces compress to ~40 KiB: the 32 MiB list cap must hold on the decoded size
    bomb = gzip.compress(b" " * (40 << 20))
    proxy.add(fault_rules.status(200, path=TAGS, body=bomb, headers=gzip_json))
    async with client:
        assert await client.tags(repo) == ["z1", "z2"]
        with pytest.raises(ProtocolError, match="larger than"):
            await client.tags(repo)


async def test_read_timeout_is_retried_then_reported(
    registry_basic: RegistryHandle, proxy: FaultProxy, repo: str
) -> None:
    credentials = StaticCredentials(registry_basic.username or "", Secret(PASSWORD))
    endpoint = Endpoint(proxy.url, timeout_ms=800)
    async with fast_transport(max_retries=1) as transport:
        client = RegistryClient(endpoint, credentials, transport=transport)
        proxy.add(fault_rules.slow_headers(1.6, path=TAGS, times=1))
        assert len(await client.tags(repo)) == 3
        assert client.stats.retries == 1
        proxy.add(fault_rules.slow_body(1.6, path=TAGS, times=None))
        with pytest.raises(TransportError, match=r"no answer within 0\.8 s") as info:
            await client.tags(repo)
    assert info.value.repository == repo
    assert_no_secret(info.value)
