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
- `DockerConfigCredentials` (in `docker_config`, re-exported here): a docker `config.json`:
  `credHelpers`, `credsStore` and `auths`, helpers being `docker-credential-<name> get`.

The programs are run by `commands`.

Nothing here ever puts a password or a command line into a message or a repr: commands may hold
secrets themselves.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from regwatch.config.commands import COMMAND_TIMEOUT, DEFAULT_TTL, reason, run_password_command
from regwatch.config.docker_config import (
    DockerConfigCredentials,
    docker_config_path,
    server_key,
)
from regwatch.errors import ConfigError, CredentialError
from regwatch.models import BasicCredentials, CredentialSource, Secret
from regwatch.registry.auth import IDENTITY_TOKEN_USERNAME

__all__ = [
    "IDENTITY_TOKEN_USERNAME",
    "DockerConfigCredentials",
    "PasswordCommandCredentials",
    "PasswordFileCredentials",
    "StaticCredentials",
    "credentials_from_options",
    "docker_config_path",
    "run_password_command",
    "server_key",
]

DEFAULT_COMMAND_TTL = DEFAULT_TTL
FILE_CHECK_INTERVAL = 1.0


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
                f"cannot read the password file {self.path} ({reason(exc)})",
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
