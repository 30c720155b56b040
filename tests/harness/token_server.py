"""A Docker token server (https://distribution.github.io/distribution/spec/auth/token/) for tests.

Runs on the shared harness loop thread, on a free 127.0.0.1 port, over HTTP or HTTPS. It answers

- `GET /token?service=…&scope=…&scope=…` with optional Basic credentials, and
- `POST /token` (OAuth2 form: grant_type=password|refresh_token, username, password, service,
  scope, client_id, access_type=offline) answering `access_token`.

Wrong credentials get 401. Anonymous requests get a token with no access unless
`allow_anonymous_pull`; authenticated users get exactly the scopes they asked for (optionally cut
down by `allowed_actions`). Tokens are ES256 JWTs whose `kid` is the libtrust fingerprint of the
signing key, whose certificate is in `rootcertbundle` for the registry's `auth.token` config.

Knobs (plain attributes, settable at any time, restored by `reset()`, which the test suite runs
after every test): `expires_in`, `token_field`, `refuse_get`, `refuse_post`, `issued_at`,
`allow_anonymous_pull`, `allowed_actions`, and `users` (name -> password).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import secrets
import shutil
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Any, NamedTuple

import jwt
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .loop import shared_loop
from .tls import TLSMaterial

DEFAULT_SERVICE = "regwatch-test-registry"
DEFAULT_ISSUER = "regwatch-test-issuer"


class TokenRequest(NamedTuple):
    """One request the token server answered."""

    method: str  # "GET" | "POST"
    scopes: tuple[str, ...]  # as asked, e.g. ("repository:a/b:pull,push",)
    user: str | None  # the authenticated (or, on a 401, the claimed) user; None if anonymous
    status: int  # what the server answered (200, 401, 400, 404…)


def libtrust_key_id(public_key: Any) -> str:
    """The libtrust fingerprint distribution expects in a JWT's `kid` header."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    return ":".join(b32[i : i + 4] for i in range(0, len(b32), 4))


def parse_scope(scope: str) -> tuple[str, str, list[str]] | None:
    """Split `type:name:actions` (the name may itself contain ':'); None if malformed."""
    first, last = scope.find(":"), scope.rfind(":")
    if first <= 0 or last == first:
        return None
    actions = [a for a in scope[last + 1 :].split(",") if a]
    return scope[:first], scope[first + 1 : last], actions


def _self_signed(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "regwatch test token signer")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )


_live: weakref.WeakSet[TokenServer] = weakref.WeakSet()


def reset_all() -> None:
    """Restore the knobs and clear the counters of every running token server."""
    for server in list(_live):
        server.reset()


class TokenServer:
    """The test token server. Use as a context manager, or `start()` / `stop()`."""

    def __init__(
        self,
        users: dict[str, str],
        *,
        service: str = DEFAULT_SERVICE,
        issuer: str = DEFAULT_ISSUER,
        tls: TLSMaterial | None = None,
        allow_anonymous_pull: bool = False,
    ) -> None:
        self._initial_users = dict(users)
        self.users = dict(users)
        self.service = service
        self.issuer = issuer
        self.tls = tls
        self._default_anonymous_pull = allow_anonymous_pull
        self._lock = threading.Lock()
        self._requests: list[TokenRequest] = []
        self._refresh_tokens: dict[str, str] = {}
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.key_id = libtrust_key_id(self._key.public_key())
        self._dir = Path(tempfile.mkdtemp(prefix="regwatch-token-"))
        self.rootcertbundle = self._dir / "token-signer.pem"
        self.rootcertbundle.write_bytes(
            _self_signed(self._key).public_bytes(serialization.Encoding.PEM)
        )
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.reset()

    # --- knobs ----------------------------------------------------------------------------------
    def reset(self) -> None:
        """Restore every knob (and the user table) to its default and forget recorded requests."""
        self.users = dict(self._initial_users)
        self.expires_in: int | None = 300  # None: omit expires_in (clients must assume 60 s)
        self.token_field = "token"  # GET answer key: "token" | "access_token" | "both"
        self.refuse_get: bool | int = False  # True → 404; an int → that status
        self.refuse_post: bool | int = False
        self.issued_at = True  # include issued_at in the answer
        self.allow_anonymous_pull = self._default_anonymous_pull
        self.allowed_actions: set[str] | None = None  # None: grant whatever is asked
        self.clear_requests()

    @property
    def requests(self) -> list[TokenRequest]:
        """A snapshot of every request answered so far."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def issued(self) -> list[TokenRequest]:
        """Only the requests that got a token (status 200)."""
        return [r for r in self.requests if r.status == 200]

    # --- lifecycle ------------------------------------------------------------------------------
    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def realm(self) -> str:
        return f"{self.url}/token"

    def start(self) -> TokenServer:
        shared_loop().run(self._start())
        _live.add(self)
        return self

    def stop(self) -> None:
        _live.discard(self)
        if self._runner is not None:
            shared_loop().run(self._runner.cleanup())
            self._runner = None
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> TokenServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/token", self._handle_get)
        app.router.add_post("/token", self._handle_post)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        ssl_ctx = self.tls.server_context() if self.tls else None
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=ssl_ctx, backlog=512)
        await site.start()
        self.port = self._runner.addresses[0][1]

    # --- tokens ---------------------------------------------------------------------------------
    def grant(self, user: str | None, scopes: list[str]) -> list[dict[str, Any]]:
        """The `access` claim for `user` (None = anonymous) asking for `scopes`."""
        merged: dict[tuple[str, str], list[str]] = {}
        for scope in scopes:
            parsed = parse_scope(scope)
            if parsed is None:
                continue
            kind, name, actions = parsed
            if user is None:
                ok = self.allow_anonymous_pull and kind == "repository"
                actions = [a for a in actions if ok and a == "pull"]
            elif self.allowed_actions is not None:
                actions = [a for a in actions if a in self.allowed_actions]
            if actions:
                have = merged.setdefault((kind, name), [])
                have.extend(a for a in actions if a not in have)
        return [{"type": k, "name": n, "actions": a} for (k, n), a in merged.items()]

    def issue(self, user: str | None, scopes: list[str]) -> str:
        """Sign a token for `user` with the access `grant()` gives for `scopes`."""
        now = int(time.time())
        lifetime = self.expires_in if self.expires_in is not None else 60
        claims = {
            "iss": self.issuer,
            "sub": user or "",
            "aud": self.service,
            "exp": now + lifetime,
            "nbf": now - 5,
            "iat": now,
            "jti": secrets.token_hex(12),
            "access": self.grant(user, scopes),
        }
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"kid": self.key_id})

    def public_key_pem(self) -> bytes:
        return self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    # --- HTTP -----------------------------------------------------------------------------------
    def _record(self, method: str, scopes: list[str], user: str | None, status: int) -> None:
        with self._lock:
            self._requests.append(TokenRequest(method, tuple(scopes), user, status))

    @staticmethod
    def _error(status: int, code: str, message: str) -> web.Response:
        headers = {"WWW-Authenticate": 'Basic realm="regwatch-token"'} if status == 401 else {}
        body = {"errors": [{"code": code, "message": message}], "error": code.lower()}
        return web.json_response(body, status=status, headers=headers)

    def _check_service(self, service: str | None) -> web.Response | None:
        if service and service != self.service:
            return self._error(400, "INVALID_SERVICE", "unknown service")
        return None

    def _basic_user(self, header: str | None) -> tuple[str | None, bool]:
        """(user, ok) from an Authorization header; (None, True) when absent."""
        if not header:
            return None, True
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None, False
        try:
            user, sep, password = base64.b64decode(value.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None, False
        return user, bool(sep) and self.users.get(user) == password

    @staticmethod
    def _refusal(refuse: bool | int) -> int:
        return 404 if refuse is True else int(refuse)

    def _token_body(self, token: str, keys: list[str]) -> dict[str, Any]:
        body: dict[str, Any] = {key: token for key in keys}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        if self.issued_at:
            body["issued_at"] = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
        return body

    async def _handle_get(self, request: web.Request) -> web.Response:
        scopes = [s for value in request.query.getall("scope", []) for s in value.split()]
        user, ok = self._basic_user(request.headers.get("Authorization"))
        if self.refuse_get:
            status = self._refusal(self.refuse_get)
            self._record("GET", scopes, user, status)
            return self._error(status, "UNSUPPORTED", "GET not supported, use the OAuth2 POST")
        if not ok:
            self._record("GET", scopes, user, 401)
            return self._error(401, "UNAUTHORIZED", "invalid username or password")
        bad = self._check_service(request.query.get("service"))
        if bad is not None:
            self._record("GET", scopes, user, 400)
            return bad
        token = self.issue(user, scopes)
        self._record("GET", scopes, user, 200)
        keys = ["token", "access_token"] if self.token_field == "both" else [self.token_field]
        return web.json_response(self._token_body(token, keys))

    async def _handle_post(self, request: web.Request) -> web.Response:
        form = await request.post()
        scopes = str(form.get("scope", "")).split()
        user, status, message = self._post_user(form)
        if self.refuse_post:
            status, message = self._refusal(self.refuse_post), "POST not supported"
        if status == 200:
            bad = self._check_service(str(form.get("service", "")) or None)
            if bad is not None:
                self._record("POST", scopes, user, 400)
                return bad
        self._record("POST", scopes, user, status)
        if status != 200:
            code = "UNAUTHORIZED" if status == 401 else "INVALID_REQUEST"
            return self._error(status, code, message)
        body = self._token_body(self.issue(user, scopes), ["access_token"])
        body["scope"] = " ".join(scopes)
        if form.get("access_type") == "offline" and user is not None:
            refresh = secrets.token_urlsafe(24)
            self._refresh_tokens[refresh] = user
            body["refresh_token"] = refresh
        return web.json_response(body)

    def _post_user(self, form: Any) -> tuple[str | None, int, str]:
        """(user, status, message) for an OAuth2 form."""
        if not form.get("client_id"):
            return None, 400, "client_id is required"
        grant_type = form.get("grant_type")
        if grant_type == "password":
            user = str(form.get("username", ""))
            if self.users.get(user) == str(form.get("password", "")) and user:
                return user, 200, ""
            return user or None, 401, "invalid username or password"
        if grant_type == "refresh_token":
            known = self._refresh_tokens.get(str(form.get("refresh_token", "")))
            return (known, 200, "") if known else (None, 401, "invalid refresh token")
        return None, 400, "unsupported grant_type"
