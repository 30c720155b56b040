"""Credential sources: where a registry client's username and password come from.

Each implements `regwatch.models.CredentialSource` (`async get()`, `invalidate()`); the client
calls `invalidate()` after the registry refused what `get()` returned, so the next `get()` reads
the source again.

- `StaticCredentials`: a password given in the config.
- `PasswordFileCredentials`: the whole file, surrounding whitespace trimmed (a multi-line JSON key
  for GCR's `_json_key` works; upstream kork reads only the first line). Re-read when the file
  changes (checked at most once a second) or after `invalidate()`.
- `PasswordCommandCredentials`: `bash -c <command>`, stdout trimmed. Unlike upstream, which forks
  the command on every request, its output is cached for `ttl` (11 h by default: ECR tokens last
  12 h) and re-run after `invalidate()`; one run at a time. A failing command is an error that
  shows its stderr.
- `DockerConfigCredentials`: a docker `config.json`: `credHelpers` (per registry), `credsStore`
  and `auths` (`auth` base64, `username`/`password`, `identitytoken`), helpers being
  `docker-credential-<name> get`. An identity token comes back with the username `<token>`, the
  docker convention the registry client turns into an OAuth2 refresh-token grant.

Nothing here ever puts a password or a command line into a message or a repr: commands may hold
secrets themselves.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from regwatch.errors import ConfigError, CredentialError
from regwatch.models import BasicCredentials, CredentialSource, Secret
from regwatch.reference import DOCKER_HUB_ALIASES
from regwatch.registry.auth import IDENTITY_TOKEN_USERNAME

DEFAULT_COMMAND_TTL = 3600.0 * 11
COMMAND_TIMEOUT = 120.0
FILE_CHECK_INTERVAL = 1.0
DOCKER_HUB_SERVER = "https://index.docker.io/v1/"
_STDERR_MAX = 500
_HELPER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class StaticCredentials:
    """A fixed username and password."""

    def __init__(self, username: str, password: Secret) -> None:
        self._credentials = BasicCredentials(username, password)

    async def get(self) -> BasicCredentials | None:
        return self._credentials

    def invalidate(self) -> None:
        """Nothing to re-read."""

    def __repr__(self) -> str:
        return f"StaticCredentials(username={self._credentials.username!r})"


class PasswordFileCredentials:
    """A username and the (trimmed) content of a password file."""

    def __init__(
        self,
        username: str,
        path: Path,
        *,
        clock: Callable[[], float] = time.monotonic,
        check_interval: float = FILE_CHECK_INTERVAL,
    ) -> None:
        self.username = username
        self.path = Path(path)
        self._clock = clock
        self._check_interval = check_interval
        self._cached: BasicCredentials | None = None
        self._signature: tuple[int, int] | None = None
        self._next_check = 0.0

    async def get(self) -> BasicCredentials | None:
        now = self._clock()
        if self._cached is not None and now < self._next_check:
            return self._cached
        try:
            stat = self.path.stat()
            signature = (stat.st_mtime_ns, stat.st_size)
            if self._cached is None or signature != self._signature:
                text = self.path.read_text(encoding="utf-8")
                self._cached = BasicCredentials(self.username, Secret(_password(text, self)))
                self._signature = signature
        except (OSError, UnicodeDecodeError) as exc:
            raise CredentialError(
                f"cannot read the password file {self.path} ({_reason(exc)})",
                hint="check the path and its permissions",
            ) from None
        self._next_check = now + self._check_interval
        return self._cached

    def invalidate(self) -> None:
        self._cached = None

    def __repr__(self) -> str:
        return f"PasswordFileCredentials(username={self.username!r}, path={str(self.path)!r})"


def _password(text: str, source: PasswordFileCredentials) -> str:
    password = text.strip()
    if not password:
        raise CredentialError(
            f"the password file {source.path} is empty",
            hint="it must hold the password (or the whole JSON key for _json_key)",
        )
    return password


class PasswordCommandCredentials:
    """A username and the (trimmed) stdout of a shell command, cached for `ttl` seconds."""

    def __init__(
        self,
        username: str,
        command: str,
        *,
        ttl: float = DEFAULT_COMMAND_TTL,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = COMMAND_TIMEOUT,
    ) -> None:
        self.username = username
        self._command = command
        self.ttl = ttl
        self._clock = clock
        self._timeout = timeout
        self._cached: BasicCredentials | None = None
        self._expires = 0.0
        self._lock: asyncio.Lock | None = None
        self._running = False
        self.runs = 0  # how often the command ran (for metrics and tests)

    async def get(self) -> BasicCredentials | None:
        cached = self._cached
        if cached is not None and self._clock() < self._expires:
            return cached
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            cached = self._cached
            if cached is not None and self._clock() < self._expires:
                return cached  # another task ran the command meanwhile
            self._running = True
            try:
                password = await run_password_command(self._command, self.username, self._timeout)
            finally:
                self._running = False
            self.runs += 1
            self._cached = BasicCredentials(self.username, Secret(password))
            self._expires = self._clock() + self.ttl
            return self._cached

    def invalidate(self) -> None:
        """Re-run the command on the next `get()` (unless a run is under way: it is newer than
        whatever the caller was refused with)."""
        if not self._running:
            self._cached = None

    def __repr__(self) -> str:
        return f"PasswordCommandCredentials(username={self.username!r})"


async def run_password_command(command: str, username: str, timeout: float) -> str:
    """Run `bash -c command`; its trimmed stdout, or CredentialError with its stderr."""
    try:
        proc = await asyncio.create_subprocess_exec(
            "bash",
            "-c",
            command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise CredentialError(
            f"cannot start bash for the password command ({_reason(exc)})"
        ) from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise CredentialError(
            f"the password command for user {username!r} did not finish within {timeout:g} s",
            hint="run it by hand to check it",
        ) from None
    if proc.returncode != 0:
        raise CredentialError(
            f"the password command for user {username!r} failed (exit status {proc.returncode})"
            f": {_excerpt(err)}",
            hint="run it by hand to check it",
        )
    password = out.decode("utf-8", errors="replace").strip()
    if not password:
        raise CredentialError(
            f"the password command for user {username!r} printed nothing",
            hint="it must print the password on stdout",
        )
    return password


def _excerpt(stderr: bytes) -> str:
    text = stderr.decode("utf-8", errors="replace").strip() or "no error output"
    return text if len(text) <= _STDERR_MAX else text[: _STDERR_MAX - 1] + "…"


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or type(exc).__name__


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
        ttl: float = DEFAULT_COMMAND_TTL,
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
                f"cannot read the docker config {self.path} ({_reason(exc)})",
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


async def run_credential_helper(name: str, server: str, timeout: float) -> BasicCredentials | None:
    """`docker-credential-<name> get` for `server`; None if the helper has nothing for it."""
    program = f"docker-credential-{name}"
    if not _HELPER_NAME.fullmatch(name) or shutil.which(program) is None:
        raise CredentialError(
            f"the credential helper {program} is not on PATH",
            hint="install it, or remove it from the docker config",
        )
    proc = await asyncio.create_subprocess_exec(
        program,
        "get",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(server.encode()), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise CredentialError(f"{program} did not answer within {timeout:g} s") from None
    if proc.returncode != 0:
        if b"credentials not found" in out.lower() + err.lower():
            return None
        raise CredentialError(
            f"{program} failed (exit status {proc.returncode}): {_excerpt(err or out)}",
            hint=f"run `echo {server} | {program} get` by hand to check it",
        )
    try:
        answer = json.loads(out)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise CredentialError(f"{program} printed something that is not its JSON answer")
    username, secret = answer.get("Username"), answer.get("Secret")
    if not isinstance(username, str) or not isinstance(secret, str) or not secret:
        return None
    return BasicCredentials(username, Secret(secret))


def credentials_from_options(
    username: str | None,
    password: Secret | str | None,
    password_file: str | Path | None,
    password_command: str | None,
    docker_config_file: str | Path | None,
    registry: str,
) -> CredentialSource | None:
    """The credential source for an account's (or the CLI's) options; None for anonymous."""
    secret = password if isinstance(password, Secret) else Secret(password or "")
    given = [
        name
        for name, value in (
            ("password", secret),
            ("passwordFile", password_file),
            ("passwordCommand", password_command),
            ("dockerconfigFile", docker_config_file),
        )
        if value
    ]
    if len(given) > 1:
        raise ConfigError(
            f"more than one password source given ({', '.join(given)})",
            hint="use at most one of password, passwordFile, passwordCommand, dockerconfigFile",
        )
    if docker_config_file:
        return DockerConfigCredentials(registry, Path(docker_config_file).expanduser())
    if not given:
        return None
    if not username:
        raise ConfigError(
            f"a {given[0]} was given without a username",
            hint="add a username (GCR: _json_key, ECR: AWS)",
        )
    if password_file:
        return PasswordFileCredentials(username, Path(password_file).expanduser())
    if password_command:
        return PasswordCommandCredentials(username, password_command)
    return StaticCredentials(username, secret)
