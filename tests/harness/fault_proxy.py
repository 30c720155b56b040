"""A fault-injecting reverse proxy in front of a test registry.

HTTP on the front (free 127.0.0.1 port), HTTP or HTTPS (trusting `ca_cert`) to the upstream. It
forwards method, raw path and query (never re-encoded), headers (Host rewritten; X-Forwarded-Host
and -Proto added so the registry's absolute upload `Location`s point back at the proxy) and body,
and streams the answer back unchanged — unless a rule (see `fault_rules`) says otherwise. Every
request is recorded in `requests` as (method, path_qs, status); status 0 = connection reset.

Runs on the shared harness loop thread, so sync tests and async tests (any loop) can use it:
`with FaultProxy(url) as proxy:`, `async with FaultProxy(url) as proxy:` or `start()`/`stop()`.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import ssl
import struct
import threading
from typing import Any, NamedTuple
from urllib.parse import quote

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from .fault_rules import Rule
from .loop import shared_loop
from .registry import RegistryHandle

HOP_BY_HOP = frozenset(
    h.lower()
    for h in ("Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE",
              "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length", "Host", "Date",
              "Server")
)  # fmt: skip
_TAGS_PATH = re.compile(r"^/v2/(?P<name>.+)/tags/list$")
_RECORDED = web.RequestKey("regwatch_recorded", bool)
_ERROR_CODES = {401: "UNAUTHORIZED", 403: "DENIED", 404: "NAME_UNKNOWN", 429: "TOOMANYREQUESTS"}


class RecordedRequest(NamedTuple):
    method: str
    path_qs: str  # raw, exactly as the client sent it
    status: int  # 0 when the proxy reset the connection


class _Upstream(NamedTuple):
    status: int
    headers: CIMultiDict[str]
    body: bytes


class FaultProxy:
    """See the module docstring. `proxy.add(fault_rules.status(503, path="/tags/list"))`."""

    def __init__(
        self, upstream_url: str, ca_cert: str | None = None, *, forwarded_headers: bool = True
    ) -> None:
        self.upstream = URL(upstream_url.rstrip("/"))
        self.ca_cert = ca_cert
        self.forwarded_headers = forwarded_headers
        self.port = 0
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._requests: list[RecordedRequest] = []
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def for_registry(cls, handle: RegistryHandle, **kwargs: Any) -> FaultProxy:
        return cls(handle.url, handle.ca_cert, **kwargs)

    # --- public ---------------------------------------------------------------------------------
    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def add(self, *rules: Rule) -> FaultProxy:
        with self._lock:
            self._rules.extend(rules)
        return self

    @property
    def rules(self) -> list[Rule]:
        with self._lock:
            return list(self._rules)

    def clear(self) -> None:
        """Forget every rule and every recorded request."""
        with self._lock:
            self._rules.clear()
            self._requests.clear()

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def count(self, method: str | None = None, path_regex: str | None = None) -> int:
        """How many recorded requests match `method` and `path_regex`, which is searched in the
        path (so `/tags/list$` works) and, failing that, in path and query (`last=b`)."""
        regex = re.compile(path_regex) if path_regex else None

        def matches(r: RecordedRequest) -> bool:
            if method is not None and r.method != method.upper():
                return False
            if regex is None:
                return True
            return bool(regex.search(r.path_qs.partition("?")[0]) or regex.search(r.path_qs))

        return sum(1 for r in self.requests if matches(r))

    def start(self) -> FaultProxy:
        shared_loop().run(self._start())
        return self

    def stop(self) -> None:
        shared_loop().run(self._stop())

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> FaultProxy:
        future = asyncio.run_coroutine_threadsafe(self._start(), shared_loop().loop)
        await asyncio.wrap_future(future)
        return self

    async def __aexit__(self, *exc: object) -> None:
        future = asyncio.run_coroutine_threadsafe(self._stop(), shared_loop().loop)
        await asyncio.wrap_future(future)

    # --- lifecycle (on the loop thread) ---------------------------------------------------------
    async def _start(self) -> None:
        ssl_ctx: ssl.SSLContext | bool = True
        if self.ca_cert:
            ssl_ctx = ssl.create_default_context(cafile=self.ca_cert)
        connector = aiohttp.TCPConnector(limit=100, ssl=ssl_ctx)
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=120),
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
        )
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # A short shutdown timeout: stalled handlers (slow_* faults) must not slow teardown.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=512)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- request handling -----------------------------------------------------------------------
    def _select(self, method: str, path: str) -> tuple[Rule | None, dict[str, str]]:
        """The first matching terminal rule (not yet consumed if it needs the upstream's 200),
        and the extra headers of the non-terminal rules matched before it."""
        extra: dict[str, str] = {}
        with self._lock:
            rules = list(self._rules)
        for rule in rules:
            if not rule.matches(method, path):
                continue
            if not rule.terminal:
                if rule.consume():
                    extra.update(rule.params["headers"])
                continue
            if rule.needs_upstream_ok or rule.consume():
                return rule, extra
        return None, extra

    def _record(self, request: web.Request, status: int) -> None:
        """Record once per request, before the answer leaves (so a client that got an answer
        always finds it in `requests`)."""
        if request.get(_RECORDED):
            return
        request[_RECORDED] = True
        with self._lock:
            self._requests.append(RecordedRequest(request.method, request.raw_path, status))

    async def _prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        self._record(request, response.status)
        await response.prepare(request)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.raw_path.partition("?")[0]
        rule, extra = self._select(request.method, path)
        try:
            response = await self._dispatch(rule, request, extra)
        except aiohttp.ClientError as exc:  # the upstream failed: say so like a gateway would
            body = {"errors": [{"code": "UNAVAILABLE", "message": f"upstream: {exc!r}"}]}
            response = web.json_response(body, status=502)
        if response is None:  # the connection was reset or cut: nothing more to send
            self._record(request, 0)
            return web.Response(status=499)
        self._record(request, response.status)
        return response

    async def _dispatch(
        self, rule: Rule | None, request: web.Request, extra: dict[str, str]
    ) -> web.StreamResponse | None:
        action = rule.action if rule else "pass"
        params = rule.params if rule else {}
        if action == "status":
            return self._status_response(params, extra)
        if action == "reset":
            self._record(request, 0)
            _abort(request)
            return None
        if action == "slow_headers":
            await asyncio.sleep(params["delay"])
            return await self._stream(request, extra)
        if action == "slow_body":
            return await self._stream(request, extra, body_delay=params["delay"])
        if rule is None or not rule.needs_upstream_ok:
            return await self._stream(request, extra)
        return await self._rewrite(rule, request, extra)

    # --- forwarding -----------------------------------------------------------------------------
    def _upstream_request(self, request: web.Request, raw_path_qs: str) -> dict[str, Any]:
        headers = CIMultiDict[str]()
        for name, value in request.headers.items():
            if name.lower() not in HOP_BY_HOP:
                headers.add(name, value)
        headers["Host"] = self.upstream.raw_authority
        if self.forwarded_headers:
            headers["X-Forwarded-Host"] = request.host
            headers["X-Forwarded-Proto"] = "http"
        url = URL(str(self.upstream) + raw_path_qs, encoded=True)
        return {"method": request.method, "url": url, "headers": headers, "allow_redirects": False}

    @staticmethod
    def _copy_headers(source: CIMultiDict[str] | Any, target: web.StreamResponse) -> None:
        for name, value in source.items():
            if name.lower() not in HOP_BY_HOP:
                target.headers.add(name, value)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:  # a request racing stop()
            raise web.HTTPServiceUnavailable(text="fault proxy is stopping")
        return self._session

    async def _stream(
        self, request: web.Request, extra: dict[str, str], *, body_delay: float = 0.0
    ) -> web.StreamResponse:
        """Forward the request and stream the answer back (optionally stalling before the body)."""
        session = self._client()
        body = await request.read()
        kwargs = self._upstream_request(request, request.raw_path)
        async with session.request(data=body or None, **kwargs) as upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            self._copy_headers(upstream.headers, response)
            response.headers.update(extra)
            if upstream.content_length is not None:
                response.content_length = upstream.content_length
            await self._prepare(request, response)
            if body_delay:
                await asyncio.sleep(body_delay)
            async for chunk in upstream.content.iter_chunked(64 * 1024):
                await response.write(chunk)
            await response.write_eof()
            return response

    async def _fetch(self, request: web.Request, raw_path_qs: str) -> _Upstream:
        session = self._client()
        body = await request.read()
        kwargs = self._upstream_request(request, raw_path_qs)
        async with session.request(data=body or None, **kwargs) as upstream:
            return _Upstream(upstream.status, CIMultiDict(upstream.headers), await upstream.read())

    @staticmethod
    def _buffered(up: _Upstream, extra: dict[str, str], body: bytes | None = None) -> web.Response:
        response = web.Response(status=up.status, body=up.body if body is None else body)
        FaultProxy._copy_headers(up.headers, response)
        response.headers.update(extra)
        return response

    # --- faults ---------------------------------------------------------------------------------
    @staticmethod
    def _status_response(params: dict[str, Any], extra: dict[str, str]) -> web.Response:
        code = int(params["code"])
        body = params["body"]
        headers = CIMultiDict[str]({"Content-Type": "application/json"})
        if body is None:
            err = _ERROR_CODES.get(code, "UNAVAILABLE" if code >= 500 else "UNKNOWN")
            body = {"errors": [{"code": err, "message": "injected by the fault proxy"}]}
        if isinstance(body, dict):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
            headers["Content-Type"] = "text/plain; charset=utf-8"
        if params["retry_after"] is not None:
            headers["Retry-After"] = str(params["retry_after"])
        headers.update(params["headers"])
        headers.update(extra)
        return web.Response(status=code, body=body, headers=headers)

    async def _rewrite(
        self, rule: Rule, request: web.Request, extra: dict[str, str]
    ) -> web.StreamResponse | None:
        """Faults that work on the upstream's 200 answer; anything else passes through."""
        path = request.raw_path
        if rule.action == "paginate_tags":
            path = path.partition("?")[0]  # distribution 2.8 ignores n/last: get the full list
        up = await self._fetch(request, path)
        if up.status != 200 or not rule.consume():
            return self._buffered(up, extra)
        if rule.action == "truncate":
            return await self._truncated(request, up, extra)
        if rule.action == "malformed_json":
            return self._buffered(up, extra, b'{"malformed": [1, 2,, "json"')
        if rule.action == "paginate_tags":
            return _tags_page(request, up, rule.params["page_size"], extra)
        if rule.action == "link_loop":
            link = f'<{request.raw_path}>; rel="next"'
        else:
            link = (
                f'<{rule.params["scheme"]}://{rule.params["host"]}{request.raw_path}>; rel="next"'
            )
        response = self._buffered(up, extra)
        response.headers["Link"] = link
        return response

    async def _truncated(
        self, request: web.Request, up: _Upstream, extra: dict[str, str]
    ) -> web.StreamResponse | None:
        response = web.StreamResponse(status=up.status)
        self._copy_headers(up.headers, response)
        response.headers.update(extra)
        response.content_length = len(up.body)
        await self._prepare(request, response)
        await response.write(up.body[: len(up.body) // 2])
        await asyncio.sleep(0.01)  # let the half body leave before the connection goes
        _abort(request)
        return None


def _abort(request: web.Request) -> None:
    """Reset the client connection (SO_LINGER 0 makes close() send RST)."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _tags_page(
    request: web.Request, up: _Upstream, page_size: int, extra: dict[str, str]
) -> web.Response:
    """One page of the upstream's full tag list, with a relative Link to the next page."""
    match = _TAGS_PATH.match(request.raw_path.partition("?")[0])
    document = json.loads(up.body)
    if document.get("tags") is None:  # an emptied repository: pass its `null` through
        return web.json_response(document, headers=extra)
    raw_n = request.query.get("n")
    if raw_n is not None and not raw_n.isdigit():
        body = {"errors": [{"code": "PAGINATION_NUMBER_INVALID", "message": "invalid n"}]}
        return web.json_response(body, status=400)
    limit = min(int(raw_n), page_size) if raw_n is not None else page_size
    tags = sorted(document.get("tags") or [])
    last = request.query.get("last")
    if last is not None:
        tags = [t for t in tags if t > last]
    page = tags[:limit]
    headers = dict(extra)
    if len(tags) > limit and match is not None and page:
        n_param = raw_n if raw_n is not None else str(page_size)
        next_qs = f"n={n_param}&last={quote(page[-1], safe='')}"
        headers["Link"] = f'</v2/{match["name"]}/tags/list?{next_qs}>; rel="next"'
    document["tags"] = page
    return web.json_response(document, headers=headers)
