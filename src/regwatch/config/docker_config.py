"""Credentials from a docker `config.json`: `credHelpers` (per registry), then `credsStore`, then
`auths` (`auth` base64, `username`/`password`, `identitytoken`).

An identity token comes back with the username `<token>`, the docker convention the registry
client turns into an OAuth2 refresh-token grant. Helper answers are cached for a TTL and dropped by
`invalidate()`, so a refused credential makes the next `get()` ask the helper again.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from regwatch.config.commands import COMMAND_TIMEOUT, DEFAULT_TTL, reason, run_credential_helper
from regwatch.errors import CredentialError
from regwatch.models import BasicCredentials, Secret
from regwatch.reference import DOCKER_HUB_ALIASES
from regwatch.registry.auth import IDENTITY_TOKEN_USERNAME

DOCKER_HUB_SERVER = "https://index.docker.io/v1/"


def docker_config_path() -> Path:
    """`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`."""
    base = os.environ.get("DOCKER_CONFIG") or "~/.docker"
    return Path(base).expanduser() / "config.json"


def server_key(server: str) -> str:
    """A docker config `auths` key or registry address → host[:port] (Docker Hub unified)."""
    text = server.strip().lower()
    if "://" in text:
        text = text.split("://", 1)[1]
    host = text.split("/", 1)[0]
    return "index.docker.io" if host in DOCKER_HUB_ALIASES else host


class DockerConfigCredentials:
    """Credentials for `registry` (host[:port]) from a docker `config.json`."""

    def __init__(
        self,
        registry: str,
        path: Path | None = None,
        *,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = COMMAND_TIMEOUT,
    ) -> None:
        self.registry = registry
        self.path = Path(path) if path is not None else docker_config_path()
        self._key = server_key(registry)
        self._ttl = ttl
        self._clock = clock
        self._timeout = timeout
        self._cached: BasicCredentials | None = None
        self._expires = 0.0
        self._lock: asyncio.Lock | None = None

    async def get(self) -> BasicCredentials | None:
        if self._cached is not None and self._clock() < self._expires:
            return self._cached
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._cached is not None and self._clock() < self._expires:
                return self._cached
            creds = await self._resolve(self._load())
            self._cached = creds
            self._expires = self._clock() + self._ttl
            return creds

    def invalidate(self) -> None:
        self._cached = None

    def __repr__(self) -> str:
        return f"DockerConfigCredentials(registry={self.registry!r}, path={str(self.path)!r})"

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise CredentialError(
                f"cannot read the docker config {self.path} ({reason(exc)})",
                hint="check the path (usually ~/.docker/config.json)",
            ) from None
        except ValueError:
            raise CredentialError(f"the docker config {self.path} is not valid JSON") from None
        if not isinstance(data, dict):
            raise CredentialError(f"the docker config {self.path} is not a JSON object")
        return data

    async def _resolve(self, config: dict[str, Any]) -> BasicCredentials:
        helpers = config.get("credHelpers")
        if isinstance(helpers, dict):
            for server, helper in helpers.items():
                if isinstance(helper, str) and server_key(server) == self._key:
                    found = await self._from_helper(helper, server)
                    if found is not None:
                        return found
                    raise self._missing(f"the credential helper {helper!r}")
        store = config.get("credsStore")
        if isinstance(store, str) and store:
            found = await self._from_helper(store, self._server_url(config))
            if found is not None:
                return found
        found = self._from_auths(config.get("auths"))
        if found is not None:
            return found
        raise self._missing("it")

    def _missing(self, where: str) -> CredentialError:
        return CredentialError(
            f"the docker config {self.path}: {where} has no credentials for {self.registry}",
            hint=f"run `docker login {self.registry}` or check the file",
        )

    def _server_url(self, config: dict[str, Any]) -> str:
        """The server name as `docker login` stored it (Docker Hub's is a URL)."""
        if self._key == "index.docker.io":
            return DOCKER_HUB_SERVER
        auths = config.get("auths")
        if isinstance(auths, dict):
            for server in auths:
                if server_key(server) == self._key:
                    return str(server)
        return self.registry

    def _from_auths(self, auths: Any) -> BasicCredentials | None:
        if not isinstance(auths, dict):
            return None
        for server, entry in auths.items():
            if server_key(server) != self._key or not isinstance(entry, dict):
                continue
            creds = self._auth_entry(entry)
            if creds is not None:
                return creds
        return None

    def _auth_entry(self, entry: dict[str, Any]) -> BasicCredentials | None:
        token = entry.get("identitytoken")
        if isinstance(token, str) and token:
            return BasicCredentials(IDENTITY_TOKEN_USERNAME, Secret(token))
        auth = entry.get("auth")
        if isinstance(auth, str) and auth:
            try:
                decoded = base64.b64decode(auth, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise CredentialError(
                    f"the docker config {self.path}: the auth of {self.registry} is not base64"
                ) from None
            username, sep, password = decoded.partition(":")
            if not sep:
                raise CredentialError(
                    f"the docker config {self.path}: the auth of {self.registry} has no ':'"
                )
            return BasicCredentials(username, Secret(password.strip()))
        user, secret = entry.get("username"), entry.get("password")
        if isinstance(user, str) and isinstance(secret, str) and user and secret:
            return BasicCredentials(user, Secret(secret))
        return None

    async def _from_helper(self, name: str, server: str) -> BasicCredentials | None:
        return await run_credential_helper(name, server, self._timeout)
