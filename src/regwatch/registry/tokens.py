"""Bearer tokens: response parsing, expiry arithmetic and a single-flight cache.

Expiry (https://distribution.github.io/distribution/spec/auth/token/): `expires_in` is a lifetime
in seconds, at least 60 (a missing or smaller value means 60). `issued_at` (RFC 3339, the token
server's clock) shortens the lifetime by the token's age when it reached us; a server clock ahead
of ours counts as age 0, and an age beyond the whole lifetime can only be clock skew (we just
received the token), so it is ignored rather than making every token look expired on arrival.

Tokens are renewed before they expire: `renew_at` is `RENEW_FRACTION` of the lifetime (at most
`RENEW_MAX_MARGIN` seconds) ahead of the expiry, so no request goes out with a token that is about
to lapse. The cache is keyed by (realm, service, scopes) and lets one fetch per key run at a time;
every other caller of that key waits for its result.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

MIN_LIFETIME = 60.0
RENEW_FRACTION = 0.1
RENEW_MAX_MARGIN = 60.0
TOKEN_FIELDS = ("token", "access_token", "bearer_token")


class TokenKey(NamedTuple):
    """What a token is good for."""

    realm: str
    service: str
    scopes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Token:
    """A bearer token with its monotonic-clock deadlines. Never shows its value."""

    header: str = field(repr=False)  # the whole "Bearer …" Authorization value
    expires_at: float
    renew_at: float
    refresh_token: str | None = field(default=None, repr=False)

    def fresh(self, now: float) -> bool:
        return now < self.renew_at


class TokenResponseError(ValueError):
    """The token service's answer has no usable token. The message never holds token text."""


def token_lifetime(expires_in: Any, issued_at: Any, wall_now: float) -> float:
    """Seconds the token stays valid from now (see the module docstring)."""
    lifetime = MIN_LIFETIME
    is_number = isinstance(expires_in, int | float) and not isinstance(expires_in, bool)
    if is_number and math.isfinite(expires_in):
        lifetime = max(float(expires_in), MIN_LIFETIME)
    issued = parse_issued_at(issued_at)
    if issued is None:
        return lifetime
    age = wall_now - issued
    if age <= 0 or age >= lifetime:
        return lifetime
    return lifetime - age


def parse_issued_at(value: Any) -> float | None:
    """`issued_at` as a POSIX timestamp, or None if absent or unparseable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.timestamp()


def renew_margin(lifetime: float) -> float:
    return min(RENEW_MAX_MARGIN, lifetime * RENEW_FRACTION)


def parse_token_response(body: Any, now: float, wall_now: float) -> Token:
    """A Token from a token service's JSON answer, with deadlines on the monotonic clock `now`."""
    if not isinstance(body, dict):
        raise TokenResponseError("the token service answered something that is not a JSON object")
    value = next((body[k] for k in TOKEN_FIELDS if isinstance(body.get(k), str) and body[k]), None)
    if value is None:
        raise TokenResponseError("the token service's answer has no token or access_token")
    lifetime = token_lifetime(body.get("expires_in"), body.get("issued_at"), wall_now)
    refresh = body.get("refresh_token")
    return Token(
        header=f"Bearer {value}",
        expires_at=now + lifetime,
        renew_at=now + lifetime - renew_margin(lifetime),
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
    )


class TokenCache:
    """Tokens by TokenKey; one fetch in flight per key."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._tokens: dict[TokenKey, Token] = {}
        self._inflight: dict[TokenKey, asyncio.Future[Token]] = {}

    def __len__(self) -> int:
        return len(self._tokens)

    def fresh(self, key: TokenKey) -> Token | None:
        """The cached token for `key` if it is not due for renewal (the hot path)."""
        token = self._tokens.get(key)
        if token is not None and self._clock() < token.renew_at:
            return token
        return None

    def invalidate(self, key: TokenKey, token: Token | None = None) -> None:
        """Forget `key`'s token, but only if it is still `token` (when given): a newer token that
        another task fetched meanwhile is kept."""
        current = self._tokens.get(key)
        if current is not None and (token is None or current is token):
            del self._tokens[key]

    async def get(self, key: TokenKey, fetch: Callable[[], Awaitable[Token]]) -> Token:
        """A fresh token for `key`: the cached one, the one being fetched, or a new fetch."""
        while True:
            token = self.fresh(key)
            if token is not None:
                return token
            pending = self._inflight.get(key)
            if pending is None:
                return await self._lead(key, fetch)
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # this task was cancelled, not the fetch
                # the task fetching the token was cancelled: try again, perhaps as the leader

    async def _lead(self, key: TokenKey, fetch: Callable[[], Awaitable[Token]]) -> Token:
        future: asyncio.Future[Token] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            token = await fetch()
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # mark it retrieved: there may be no waiter
            raise
        except BaseException:
            future.cancel()
            raise
        else:
            self._tokens[key] = token
            future.set_result(token)
            return token
        finally:
            del self._inflight[key]
