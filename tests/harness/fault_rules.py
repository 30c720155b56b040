"""Fault rules for `FaultProxy`: what to do to which requests, how many times.

A rule matches a request by method (None = any) and a regex searched in the raw path (without the
query). Rules are tried in the order they were added; the first matching terminal rule decides
the answer. `rate_limit_headers` is not terminal: it decorates whatever answer follows.
`times` is how many requests a rule applies to (None = forever).

Rules that rewrite an upstream answer (`truncate`, `malformed_json`, `paginate_tags`,
`link_loop`, `link_foreign`) apply only when the upstream answered 200; other answers (e.g. a
401 challenge before the client authenticates) pass through and do not use up `times`.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any

TAGS_LIST = r"^/v2/.+/tags/list$"
# Actions that need the upstream's 200 answer to work on.
NEEDS_UPSTREAM_OK = frozenset({"truncate", "malformed_json", "paginate_tags", "link_loop",
                               "link_foreign"})  # fmt: skip
NON_TERMINAL = frozenset({"rate_limit_headers"})


@dataclass
class Rule:
    action: str
    path: str = ""
    method: str | None = None
    times: int | None = 1
    params: dict[str, Any] = field(default_factory=dict)
    hits: int = 0  # requests it has applied to so far
    _regex: re.Pattern[str] = field(init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self._regex = re.compile(self.path)
        if self.method is not None:
            self.method = self.method.upper()

    @property
    def terminal(self) -> bool:
        return self.action not in NON_TERMINAL

    @property
    def needs_upstream_ok(self) -> bool:
        return self.action in NEEDS_UPSTREAM_OK

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times

    def matches(self, method: str, path: str) -> bool:
        if self.exhausted or (self.method is not None and self.method != method.upper()):
            return False
        return self._regex.search(path) is not None

    def consume(self) -> bool:
        """Use one application; False if another request used the last one meanwhile."""
        with self._lock:
            if self.exhausted:
                return False
            self.hits += 1
            return True


def status(
    code: int,
    *,
    retry_after: str | None = None,
    body: bytes | str | dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    path: str = "",
    method: str | None = None,
    times: int | None = 1,
) -> Rule:
    """Answer `code` without asking the upstream (default body: a registry-style JSON error)."""
    params = {"code": code, "retry_after": retry_after, "body": body, "headers": headers or {}}
    return Rule("status", path, method, times, params)


def reset(*, path: str = "", method: str | None = None, times: int | None = 1) -> Rule:
    """Close the connection abruptly (RST) without any response.

    Note: aiohttp's client silently retries an idempotent request (GET, HEAD…) once after a
    disconnect, so use `times=2` or more to make an aiohttp client see the failure.
    """
    return Rule("reset", path, method, times)


def slow_headers(
    delay_s: float, *, path: str = "", method: str | None = None, times: int | None = 1
) -> Rule:
    """Wait `delay_s` before forwarding the request at all (a server that is slow to answer)."""
    return Rule("slow_headers", path, method, times, {"delay": delay_s})


def slow_body(
    delay_s: float, *, path: str = "", method: str | None = None, times: int | None = 1
) -> Rule:
    """Send the upstream's status and headers, then stall `delay_s` before the body."""
    return Rule("slow_body", path, method, times, {"delay": delay_s})


def truncate(*, path: str = "", method: str | None = None, times: int | None = 1) -> Rule:
    """Advertise the full Content-Length, send half of the body, close the connection."""
    return Rule("truncate", path, method, times)


def malformed_json(*, path: str = "", method: str | None = None, times: int | None = 1) -> Rule:
    """Answer 200 with the upstream's Content-Type and a body that is not valid JSON."""
    return Rule("malformed_json", path, method, times)


def paginate_tags(page_size: int, *, path: str = TAGS_LIST, times: int | None = None) -> Rule:
    """Serve `GET …/tags/list` in pages (honouring `n` and `last`) with relative Link headers.

    The upstream's full list is sorted lexically, like distribution's catalog pagination. A
    standing rule by default (times=None).
    """
    return Rule("paginate_tags", path, "GET", times, {"page_size": page_size})


def link_loop(*, path: str = "", method: str | None = "GET", times: int | None = None) -> Rule:
    """Add `Link: <the same path and query>; rel="next"` to the upstream's answer."""
    return Rule("link_loop", path, method, times)


def link_foreign(
    host: str = "127.0.0.2:9",
    *,
    scheme: str = "http",
    path: str = "",
    method: str | None = "GET",
    times: int | None = 1,
) -> Rule:
    """Add an absolute `Link` to another host/scheme (a loopback default that nothing serves)."""
    return Rule("link_foreign", path, method, times, {"host": host, "scheme": scheme})


def rate_limit_headers(
    limit: int | str,
    remaining: int | str,
    *,
    path: str = "",
    method: str | None = None,
    times: int | None = None,
) -> Rule:
    """Add `RateLimit-Limit` / `RateLimit-Remaining` to the answer (not terminal)."""
    params = {"headers": {"RateLimit-Limit": str(limit), "RateLimit-Remaining": str(remaining)}}
    return Rule("rate_limit_headers", path, method, times, params)
