"""How one client authenticates to one registry: challenge learning, Basic, Bearer tokens.

The registry tells us its scheme by answering 401 with `WWW-Authenticate` (a 400 with a challenge
counts too: some registries answer that for an expired token). The first request of a client
learns it with a single unauthenticated `GET /v2/`; a challenge met later (a registry that answers
/v2/ anonymously but protects repositories) is learned the same way.

- Basic: every request carries the credentials; the header is built once per credentials object.
- Bearer: tokens come from the realm, keyed by (realm, service, scopes): `repository:<name>:pull`
  for a repository, `registry:catalog:*` for the catalog, none for `/v2/`. A challenge that names
  other scopes for a request teaches us to ask for those next time. The token request is a GET with
  Basic credentials (or anonymous); where the GET is refused (404/405) the OAuth2 POST form is
  used. Docker's identity tokens (username `<token>`) always use the POST refresh_token grant.

The realm is untrusted: only http(s), and credentials never go over plain HTTP to a realm when the
registry itself is reached over HTTPS. `insecure`/`ca_cert` apply to the realm as to the registry.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Awaitable, Callable
from enum import Enum
from urllib.parse import urlencode

from yarl import URL

from regwatch.errors import AuthError, ProtocolError
from regwatch.models import BasicCredentials, CredentialSource
from regwatch.registry.challenge import Challenge, find_challenge, parse_challenges
from regwatch.registry.links import origin
from regwatch.registry.tokens import (
    Token,
    TokenCache,
    TokenKey,
    TokenResponseError,
    parse_token_response,
)
from regwatch.registry.transport import RequestContext, Response, Transport

log = logging.getLogger(__name__)
IDENTITY_TOKEN_USERNAME = "<token>"  # docker's convention for an OAuth2 refresh token
CLIENT_ID = "regwatch"
TOKEN_MAX_BODY = 1 << 20
CATALOG_SCOPE = "registry:catalog:*"
CREDENTIALS_HINT = "check the username and password (or the password file/command)"


class Mode(Enum):
    UNKNOWN = "unknown"
    NONE = "anonymous"
    BASIC = "basic"
    BEARER = "bearer"


def repository_scope(repository: str) -> str:
    return f"repository:{repository}:pull"


def is_challenge(response: Response) -> bool:
    """True for a 401, or a 400 that carries `WWW-Authenticate`."""
    status = response.status
    return status == 401 or (status == 400 and "WWW-Authenticate" in response.headers)


class Authenticator:
    """Authorization headers for one client's requests (see the module docstring)."""

    def __init__(
        self,
        registry: str,
        base_url: str,
        credentials: CredentialSource | None,
        transport: Transport,
        ctx: RequestContext,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self._base_url = base_url
        self._source = credentials
        self._transport = transport
        self._ctx = ctx
        self._clock = clock
        self.mode = Mode.UNKNOWN
        self._realm = ""
        self._service = ""
        self._scopes: dict[str | None, tuple[str, ...]] = {}
        self.tokens = TokenCache(clock)
        self._basic: tuple[BasicCredentials, str] | None = None
        self._post_only = False
        self._discovery: asyncio.Lock | None = None

    # --- the hot path ----------------------------------------------------------------------------
    async def header(self, scope: str | None) -> str | None:
        """The Authorization value for a request needing `scope` (None: no scope, e.g. /v2/)."""
        mode = self.mode
        if mode is Mode.BEARER:
            key = TokenKey(self._realm, self._service, self._scopes_for(scope))
            token = self.tokens.fresh(key)
            if token is None:
                token = await self.tokens.get(key, lambda: self._fetch_token(key))
            return token.header
        if mode is Mode.BASIC:
            return await self._basic_header()
        return None

    def _scopes_for(self, scope: str | None) -> tuple[str, ...]:
        scopes = self._scopes.get(scope)
        if scopes is None:
            scopes = (scope,) if scope else ()
            self._scopes[scope] = scopes
        return scopes

    async def _basic_header(self) -> str:
        creds = await self._credentials()
        if creds is None:
            raise AuthError(
                f"registry {self.registry} requires credentials",
                hint="give a username and a password (or --password-file/--password-command)",
                registry=self.registry,
                status=401,
            )
        cached = self._basic
        if cached is not None and cached[0] is creds:
            return cached[1]
        header = basic_header(creds)
        self._basic = (creds, header)
        return header

    async def _credentials(self) -> BasicCredentials | None:
        return await self._source.get() if self._source is not None else None

    # --- learning and refreshing -----------------------------------------------------------------
    async def discover(self, send_anonymous: Callable[[], Awaitable[Response]]) -> None:
        """Learn the scheme once per client, by the caller's unauthenticated `GET /v2/`."""
        if self.mode is not Mode.UNKNOWN:
            return
        if self._discovery is None:
            self._discovery = asyncio.Lock()
        async with self._discovery:
            if self.mode is not Mode.UNKNOWN:
                return
            response = await send_anonymous()
            if is_challenge(response):
                self.learn(response, None)
            elif response.status < 400:
                self.mode = Mode.NONE

    def learn(self, response: Response, scope: str | None) -> bool:
        """Take in a challenge. True if it taught us something new (a retry is worth it)."""
        challenges = parse_challenges(response.headers.getall("WWW-Authenticate", ()))
        bearer = find_challenge(challenges, "bearer")
        if bearer is not None and bearer.realm:
            return self._learn_bearer(bearer, scope)
        if find_challenge(challenges, "basic") is not None:
            changed = self.mode is not Mode.BASIC
            self.mode = Mode.BASIC
            if changed:
                log.debug("%s: basic authentication", self.registry)
            return changed
        if bearer is not None:
            raise ProtocolError(
                f"registry {self.registry} sent a Bearer challenge without a realm",
                registry=self.registry,
                status=response.status,
            )
        raise AuthError(
            f"registry {self.registry} answered {response.status} without a usable challenge",
            hint=CREDENTIALS_HINT,
            registry=self.registry,
            status=response.status,
        )

    def _learn_bearer(self, challenge: Challenge, scope: str | None) -> bool:
        changed = False
        realm, service = challenge.realm or "", challenge.service or ""
        if self.mode is not Mode.BEARER or (realm, service) != (self._realm, self._service):
            self.mode, self._realm, self._service = Mode.BEARER, realm, service
            changed = True
        wanted = challenge.scopes
        if wanted and scope is not None and self._scopes_for(scope) != wanted:
            self._scopes[scope] = wanted
            changed = True
        return changed

    async def refresh(self, sent: str | None, scope: str | None) -> None:
        """After a refused request: drop the token that was sent, or the cached credentials."""
        if self.mode is Mode.BEARER:
            key = TokenKey(self._realm, self._service, self._scopes_for(scope))
            token = self.tokens.fresh(key)
            if token is not None and token.header == sent:
                self.tokens.invalidate(key, token)
        elif self.mode is Mode.BASIC and self._source is not None:
            self._source.invalidate()
            self._basic = None

    def refused(self, response: Response, scope: str | None, repository: str | None) -> AuthError:
        """The error for a request the registry still refuses after a refresh."""
        challenges = parse_challenges(response.headers.getall("WWW-Authenticate", ()))
        bearer = find_challenge(challenges, "bearer")
        what = f"repository {repository}" if repository else "it"
        if bearer is not None and bearer.error == "insufficient_scope":
            hint = (
                "give credentials with pull access"
                if self._source is None
                else "the user lacks pull access; check the account's permissions"
            )
            return AuthError(
                f"registry {self.registry} refused access to {what} (insufficient scope)",
                hint=hint,
                registry=self.registry,
                repository=repository,
                status=response.status,
            )
        return AuthError(
            f"registry {self.registry} refused the credentials ({response.status})",
            hint=CREDENTIALS_HINT if self._source is not None else "give credentials",
            registry=self.registry,
            repository=repository,
            status=response.status,
        )

    # --- tokens ----------------------------------------------------------------------------------
    async def _fetch_token(self, key: TokenKey) -> Token:
        realm = self._checked_realm(key.realm)
        creds = await self._credentials()
        response = await self._request_token(realm, key, creds)
        if response.status == 401 and creds is not None and self._source is not None:
            self._source.invalidate()  # a rotated password: re-read the file / re-run the command
            creds = await self._credentials()
            response = await self._request_token(realm, key, creds)
        if response.status != 200:
            raise self._token_refused(realm, response, creds)
        try:
            body = json.loads(response.body)
            token = parse_token_response(body, self._clock(), self._transport.wall_clock())
        except (ValueError, TokenResponseError) as exc:
            reason = exc if isinstance(exc, TokenResponseError) else "not JSON"
            raise ProtocolError(
                f"token service of {self.registry} at {realm.host}: {reason}",
                registry=self.registry,
            ) from None
        self._ctx.stats.token_fetches += 1
        log.debug("%s: new token for %s from %s", self.registry, key.scopes, realm.host)
        return token

    async def _request_token(
        self, realm: URL, key: TokenKey, creds: BasicCredentials | None
    ) -> Response:
        if creds is not None and creds.username == IDENTITY_TOKEN_USERNAME:
            return await self._post_token(realm, key, creds)
        if not self._post_only:
            response = await self._get_token(realm, key, creds)
            if response.status not in (404, 405):
                return response
            self._post_only = True  # the GET is refused: this realm wants the OAuth2 POST
        return await self._post_token(realm, key, creds)

    async def _get_token(
        self, realm: URL, key: TokenKey, creds: BasicCredentials | None
    ) -> Response:
        query = [("service", key.service)] if key.service else []
        query += [("scope", scope) for scope in key.scopes]
        url = realm
        if query:
            separator = "&" if realm.raw_query_string else "?"
            url = URL(str(realm) + separator + urlencode(query), encoded=True)
        headers = {"Authorization": basic_header(creds)} if creds is not None else {}
        return await self._send_token_request("GET", url, headers, None)

    async def _post_token(
        self, realm: URL, key: TokenKey, creds: BasicCredentials | None
    ) -> Response:
        form = {"service": key.service, "scope": " ".join(key.scopes), "client_id": CLIENT_ID}
        if creds is None:
            raise AuthError(
                f"token service of {self.registry} refuses GET and the OAuth2 POST needs "
                "credentials",
                hint="give a username and a password",
                registry=self.registry,
            )
        if creds.username == IDENTITY_TOKEN_USERNAME:
            form.update(grant_type="refresh_token", refresh_token=creds.password.reveal())
        else:
            form.update(
                grant_type="password", username=creds.username, password=creds.password.reveal()
            )
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        data = urlencode(form).encode()
        return await self._send_token_request("POST", realm, headers, data)

    async def _send_token_request(
        self, method: str, url: URL, headers: dict[str, str], data: bytes | None
    ) -> Response:
        budget = self._transport.budget(f"{url.host}:{url.port}")
        return await self._transport.send(
            self._ctx, method, url, headers, max_body=TOKEN_MAX_BODY, budget=budget, data=data
        )

    def _checked_realm(self, realm: str) -> URL:
        try:
            scheme, _host, _port = origin(realm)
        except ValueError:
            raise ProtocolError(
                f"registry {self.registry} names a token realm that is not an http(s) URL",
                registry=self.registry,
            ) from None
        if scheme == "http" and self._base_url.startswith("https:") and self._source is not None:
            raise AuthError(
                f"registry {self.registry} sends us to a plain-http token realm; refusing to "
                "send credentials over it",
                hint="the registry's auth.token.realm should be an https:// URL",
                registry=self.registry,
            )
        return URL(realm)

    def _token_refused(
        self, realm: URL, response: Response, creds: BasicCredentials | None
    ) -> AuthError | ProtocolError:
        where = f"token service of {self.registry} at {realm.host}:{realm.port}"
        if response.status in (401, 403):
            hint = CREDENTIALS_HINT if creds is not None else "give a username and a password"
            return AuthError(
                f"{where} refused the credentials ({response.status})",
                hint=hint,
                registry=self.registry,
                status=response.status,
            )
        return ProtocolError(
            f"{where} answered {response.status}",
            hint="check the registry's token service",
            registry=self.registry,
            status=response.status,
        )


def basic_header(creds: BasicCredentials) -> str:
    raw = f"{creds.username}:{creds.password.reveal()}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")
