"""One delivery attempt: render, sign and POST an event to a sink. Never raises for HTTP trouble.

Redirects are not followed (the signature and the sink's headers must not travel to another
URL); a 3xx is a failed attempt. Error texts name the sink, never its URL: webhook URLs often
carry their secret in the path or the query.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp

from regwatch.events.matching import Sink
from regwatch.events.payloads import render, request_headers
from regwatch.events.retry import parse_retry_after
from regwatch.store.records import StoredEvent

BODY_SNIPPET = 200


@dataclass(frozen=True)
class SendResult:
    ok: bool
    status: int | None = None  # None: no HTTP answer at all
    error: str | None = None
    retry_after: float | None = None


async def send_event(
    session: aiohttp.ClientSession,
    sink: Sink,
    event: StoredEvent,
    *,
    attempt: int,
    timeout: float,
) -> SendResult:
    body, content_type = render(event, sink.format)
    headers = request_headers(
        event,
        content_type=content_type,
        body=body,
        secret=sink.secret,
        extra=dict(sink.headers),
        attempt=attempt,
    )
    try:
        async with session.post(
            sink.url,
            data=body,
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            if 200 <= response.status < 300:
                return SendResult(ok=True, status=response.status)
            snippet = (await response.content.read(BODY_SNIPPET)).decode("utf-8", "replace")
            return SendResult(
                ok=False,
                status=response.status,
                error=_http_error(sink.name, response.status, response.reason, snippet),
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
    except TimeoutError:
        return SendResult(ok=False, error=f"sink {sink.name!r}: no answer within {timeout:g} s")
    except aiohttp.ClientConnectorError as exc:
        reason = exc.os_error.strerror or type(exc.os_error).__name__
        where = f"{exc.host}:{exc.port}"
        return SendResult(
            ok=False, error=f"sink {sink.name!r}: cannot connect to {where}: {reason}"
        )
    except (aiohttp.ClientError, asyncio.IncompleteReadError, OSError) as exc:
        return SendResult(ok=False, error=f"sink {sink.name!r}: {type(exc).__name__}")


def _http_error(sink: str, status: int, reason: str | None, snippet: str) -> str:
    text = f"sink {sink!r}: HTTP {status}" + (f" {reason}" if reason else "")
    snippet = " ".join(snippet.split())
    return f"{text}: {snippet}" if snippet else text
