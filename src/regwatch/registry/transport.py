"""HTTP transport shared by every RegistryClient of a process.

One aiohttp session (connection pool, no cookie jar, no proxy from the environment), one SSL
context per (insecure, CA bundle) pair built once, one RegistryBudget per registry. `send()` does
one logical request: budget slot, retries with jittered exponential backoff on 429/5xx and
connection errors (honouring `Retry-After`), and a size-capped body read. It returns the final
response whatever its status; mapping statuses to errors is the client's job, because only the
client knows which repository a request was about. Connection failures that outlast the retries
become TransportError, TLS failures TLSError (never retried: they do not heal).

Messages name the registry and the failure, never a header or a query string.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from regwatch import USER_AGENT
from regwatch.errors import ConfigError, ProtocolError, TLSError, TransportError
from regwatch.registry.backoff import RETRY_STATUSES, backoff_delay, parse_retry_after
from regwatch.registry.budget import RegistryBudget
from regwatch.registry.stats import ClientStats

log = logging.getLogger(__name__)
CA_HINT = "trust its CA with --ca-cert FILE, or skip verification with --insecure-registry"


@dataclass(frozen=True, slots=True)
class Response:
    """A fully read response."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    url: URL


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Per-client settings every request of that client shares (built once per client)."""

    registry: str
    ssl: ssl.SSLContext
    timeout: aiohttp.ClientTimeout
    budget: RegistryBudget
    stats: ClientStats
    rng: random.Random


class Transport:
    """The process-wide HTTP machinery. Create one, share it, `await close()` it at the end."""

    def __init__(
        self,
        *,
        max_connections: int = 256,
        max_per_registry: int = 32,
        max_retries: int = 4,
        backoff_base: float = 0.25,
        backoff_cap: float = 20.0,
        max_retry_after: float = 60.0,
        user_agent: str = USER_AGENT,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.max_connections = max_connections
        self.max_per_registry = max_per_registry
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_retry_after = max_retry_after
        self.user_agent = user_agent
        self.clock = clock
        self.wall_clock = wall_clock
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None
        self._ssl: dict[tuple[bool, str | None], ssl.SSLContext] = {}
        self._budgets: dict[str, RegistryBudget] = {}

    # --- shared resources ------------------------------------------------------------------------
    @property
    def session(self) -> aiohttp.ClientSession:
        """The aiohttp session, created on first use inside the running loop."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self.max_connections, limit_per_host=0, ttl_dns_cache=300
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": self.user_agent},
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
            )
        return self._session

    def ssl_context(self, insecure: bool, ca_cert: str | None) -> ssl.SSLContext:
        """The SSL context for an endpoint's settings, built once per distinct setting."""
        key = (insecure, ca_cert)
        context = self._ssl.get(key)
        if context is None:
            context = _build_ssl_context(insecure, ca_cert)
            self._ssl[key] = context
        return context

    def budget(self, registry: str) -> RegistryBudget:
        """The budget of `registry` (host[:port]), shared by every client of this transport."""
        budget = self._budgets.get(registry)
        if budget is None:
            budget = RegistryBudget(
                registry,
                self.max_per_registry,
                self.clock,
                sleep=self._sleep,
                max_wait=self.max_retry_after,
            )
            self._budgets[registry] = budget
        return budget

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def __aenter__(self) -> Transport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- requests --------------------------------------------------------------------------------
    async def send(
        self,
        ctx: RequestContext,
        method: str,
        url: URL,
        headers: Mapping[str, str],
        *,
        max_body: int,
        budget: RegistryBudget | None = None,
        data: bytes | None = None,
        repository: str | None = None,
    ) -> Response:
        """One request with retries; see the module docstring. Its outcome goes to `_finished`."""
        attempt = 0
        try:
            while True:
                try:
                    response = await self._attempt(
                        ctx, method, url, headers, max_body, budget, data
                    )
                except _RetryableError as exc:
                    if attempt >= self.max_retries:
                        raise TransportError(
                            f"registry {ctx.registry}: {exc} (after {attempt + 1} attempts)",
                            hint="check that the registry is up and reachable from here",
                            registry=ctx.registry,
                            repository=repository,
                        ) from None
                    delay = self._backoff(ctx, attempt)
                else:
                    if response.status not in RETRY_STATUSES or attempt >= self.max_retries:
                        return self._done(ctx, response)
                    retry_delay = self._retry_delay(ctx, response, attempt, budget or ctx.budget)
                    if retry_delay is None:  # the caller reports how long the registry wants
                        return self._done(ctx, response)
                    delay = retry_delay
                ctx.stats.retries += 1
                attempt += 1
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("%s %s %s: retry %d in %.2f s", ctx.registry, method, url.path,
                              attempt, delay)  # fmt: skip
                await self._sleep(delay)
        except Exception:
            self._finished(ctx, "error")
            raise

    def _done(self, ctx: RequestContext, response: Response) -> Response:
        self._finished(ctx, str(response.status))
        return response

    def _finished(self, ctx: RequestContext, outcome: str) -> None:
        """Hook: one logical request (retries included) ended with `outcome`, its final status
        or "error" (service/metrics.py counts them)."""

    def _retry_delay(
        self, ctx: RequestContext, response: Response, attempt: int, budget: RegistryBudget
    ) -> float | None:
        """Seconds before retrying a 429/5xx: `Retry-After` (which pauses the whole registry) or
        the backoff; None when the registry asks for more than `max_retry_after`."""
        retry_after = parse_retry_after(response.headers.get("Retry-After"), self.wall_clock())
        if retry_after is None:
            return self._backoff(ctx, attempt)
        if retry_after > self.max_retry_after:
            return None
        delay = retry_after + ctx.rng.uniform(0, min(1.0, retry_after * 0.1))
        budget.pause(delay)
        return delay

    def _backoff(self, ctx: RequestContext, attempt: int) -> float:
        return backoff_delay(attempt, ctx.rng, base=self.backoff_base, cap=self.backoff_cap)

    async def _attempt(
        self,
        ctx: RequestContext,
        method: str,
        url: URL,
        headers: Mapping[str, str],
        max_body: int,
        budget: RegistryBudget | None,
        data: bytes | None,
    ) -> Response:
        budget = budget or ctx.budget
        await budget.acquire()
        stats = ctx.stats
        stats.requests += 1
        try:
            async with self.session.request(
                method,
                url,
                headers=headers,
                data=data,
                ssl=ctx.ssl,
                timeout=ctx.timeout,
                allow_redirects=False,
            ) as resp:
                body = b"" if method == "HEAD" else await _read_capped(resp, max_body, ctx)
                budget.observe(resp.headers)
        except aiohttp.ClientSSLError as exc:
            raise _tls_error(ctx, exc) from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as exc:
            raise _RetryableError(_describe(exc, ctx)) from None
        except aiohttp.ClientError as exc:
            raise ProtocolError(
                f"registry {ctx.registry}: malformed HTTP response ({type(exc).__name__})",
                registry=ctx.registry,
            ) from None
        finally:
            budget.release()
        status = resp.status
        stats.responses[status] += 1
        stats.bytes += len(body)
        if status == 429:
            stats.rate_limited += 1
        return Response(status, resp.headers, body, url)


class _RetryableError(Exception):
    """A connection-level failure worth retrying; its message is safe to show."""


async def _read_capped(resp: aiohttp.ClientResponse, max_body: int, ctx: RequestContext) -> bytes:
    """The body, refusing to read more than `max_body` bytes.

    A compressed body is read piecewise even with a Content-Length, so that the cap applies to
    what it decompresses to (a small gzip bomb must not fill the memory)."""
    length = resp.content_length
    if length is not None and length > max_body:
        raise _too_large(ctx, max_body)
    if length is not None and "Content-Encoding" not in resp.headers:
        return await resp.read()
    chunks: list[bytes] = []
    total = 0
    async for chunk in resp.content.iter_chunked(65536):
        total += len(chunk)
        if total > max_body:
            raise _too_large(ctx, max_body)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(ctx: RequestContext, max_body: int) -> ProtocolError:
    return ProtocolError(
        f"registry {ctx.registry}: response larger than {max_body // 1024} KiB, refused",
        registry=ctx.registry,
    )


def _describe(exc: BaseException, ctx: RequestContext) -> str:
    """A short, secret-free description of a connection-level failure."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror or type(exc.os_error).__name__
        return f"cannot connect to {exc.host}:{exc.port} ({reason})"
    if isinstance(exc, TimeoutError):
        seconds = ctx.timeout.sock_read or ctx.timeout.sock_connect or 0
        return f"no answer within {seconds:g} s"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the response body was cut short"
    return f"connection failed ({type(exc).__name__})"


def _tls_error(ctx: RequestContext, exc: aiohttp.ClientSSLError) -> TLSError:
    reason = getattr(exc, "certificate_error", None) or exc.os_error
    text = getattr(reason, "verify_message", None) or getattr(reason, "reason", None) or ""
    if "WRONG_VERSION_NUMBER" in str(text).upper() or "wrong version" in str(exc).lower():
        return TLSError(
            f"registry {ctx.registry}: TLS handshake failed (the server does not speak TLS)",
            hint="if the registry serves plain HTTP, use an http:// address",
            registry=ctx.registry,
        )
    detail = f" ({text})" if text else ""
    return TLSError(
        f"registry {ctx.registry}: TLS certificate verification failed{detail}",
        hint=CA_HINT,
        registry=ctx.registry,
    )


def _build_ssl_context(insecure: bool, ca_cert: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_cert:
        try:
            context.load_verify_locations(cafile=ca_cert)
        except (OSError, ssl.SSLError) as exc:
            reason = exc.strerror or str(exc)
            raise ConfigError(
                f"cannot load the CA bundle {ca_cert} ({type(exc).__name__}: {reason})",
                hint="--ca-cert must name a readable PEM file",
            ) from None
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
