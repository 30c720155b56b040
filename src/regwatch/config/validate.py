"""Halyard's account validation (`DockerRegistryAccountValidator`), with better messages.

Run on `account add`/`edit` (unless `--no-validate`) and by `regwatch config validate`. It checks
the settings, resolves the credentials (reads the password file, runs the password command) and
contacts the registry: with no repositories it reads the catalog (a refusal is an error, with the
hint that Docker Hub has no catalog), otherwise it reads each repository's tags. Errors stop the
change; warnings are printed and the change is saved.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from regwatch.config.model import DockerRegistryAccount
from regwatch.errors import (
    AuthError,
    NotFoundError,
    RegistryError,
    RegwatchError,
    TLSError,
    TransportError,
)
from regwatch.models import CredentialSource
from regwatch.reference import DOCKER_HUB_ALIASES
from regwatch.registry import RegistryClient

Severity = Literal["error", "warning"]
_PLACEHOLDER = re.compile(r"\$\{[^}]*\}")
_TAG_CONCURRENCY = 8
NO_CATALOG_HINT = (
    "Docker Hub, GHCR and some other registries have no catalog: list the repositories to "
    "index with --repositories (e.g. library/nginx)"
)


@dataclass(frozen=True)
class Finding:
    """One validation result. Messages never contain secrets."""

    severity: Severity
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message


def error(message: str, hint: str | None = None) -> Finding:
    return Finding("error", message, hint)


def warning(message: str, hint: str | None = None) -> Finding:
    return Finding("warning", message, hint)


def has_errors(findings: Iterable[Finding]) -> bool:
    return any(f.severity == "error" for f in findings)


def validate_account_sync(account: DockerRegistryAccount) -> list[Finding]:
    return asyncio.run(validate_account(account))


async def validate_account(account: DockerRegistryAccount) -> list[Finding]:
    """Every check, in Halyard's order; stops at the first step that found an error."""
    findings = check_settings(account)
    if has_errors(findings):
        return findings
    placeholder = find_placeholder(account)
    if placeholder:
        findings.append(
            warning(
                f"{placeholder} contains a ${{…}} placeholder; skipping the connection check",
                "regwatch validates the account once the placeholder is resolved",
            )
        )
        return findings
    source, credential_findings = await resolve_credentials(account)
    findings += credential_findings
    if has_errors(findings):
        return findings
    findings += await check_registry(account, source)
    return findings


# --- local checks ------------------------------------------------------------------------------
def check_settings(account: DockerRegistryAccount) -> list[Finding]:
    """Checks that need no network: credentials shape, CA file, catalog file."""
    findings: list[Finding] = []
    source = account.password_source
    if account.username and source is None:
        findings.append(
            warning(
                f"username {account.username!r} is set but no password",
                "add --password, --password-file or --password-command",
            )
        )
    if account.ca_cert:
        findings += _check_ca_cert(account)
    if account.catalog_file:
        findings += _check_catalog_file(account.catalog_file)
    return findings


def _check_ca_cert(account: DockerRegistryAccount) -> list[Finding]:
    path = account.endpoint().ca_cert or ""
    try:
        ssl.create_default_context(cafile=path)
    except FileNotFoundError:
        return [error(f"CA certificate file {path} does not exist", "check --ca-cert")]
    except (OSError, ssl.SSLError):
        return [
            error(
                f"CA certificate file {path} is not a readable PEM certificate bundle",
                "--ca-cert takes the PEM file of the CA that signed the registry's certificate",
            )
        ]
    if account.insecure_registry:
        return [
            warning(
                "insecureRegistry switches TLS verification off, so caCert is not used",
                "drop --insecure-registry (set it to false) to verify against the CA",
            )
        ]
    return []


def _check_catalog_file(path: str) -> list[Finding]:
    try:
        data = json.loads(Path(path).expanduser().read_text())
    except OSError as exc:
        return [error(f"cannot read catalog file {path}: {exc.strerror or exc}")]
    except (ValueError, UnicodeDecodeError):
        return [error(f"catalog file {path} is not JSON", _CATALOG_FILE_HINT)]
    repositories = data.get("repositories") if isinstance(data, dict) else None
    if not isinstance(repositories, list) or not all(isinstance(r, str) for r in repositories):
        return [error(f"catalog file {path} has no list of repositories", _CATALOG_FILE_HINT)]
    if not repositories:
        return [warning(f"catalog file {path} lists no repositories", _CATALOG_FILE_HINT)]
    return []


_CATALOG_FILE_HINT = 'it must look like {"repositories": ["team/app", …]}'


def find_placeholder(account: DockerRegistryAccount) -> str | None:
    """The first setting holding a `${…}` placeholder (Halyard skips the connection check)."""
    candidates = {
        "address": account.address,
        "username": account.username,
        "password": account.password.reveal() if account.password else None,
        "passwordFile": account.password_file,
        "passwordCommand": account.password_command,
    }
    for key, value in candidates.items():
        if value and _PLACEHOLDER.search(value):
            return key
    return None


async def resolve_credentials(
    account: DockerRegistryAccount,
) -> tuple[CredentialSource | None, list[Finding]]:
    """Build the credential source and resolve it once (file read, command run)."""
    try:
        source = account.credentials()
        if source is None:
            return None, []
        credentials = await source.get()
    except RegwatchError as exc:  # CredentialError, or ConfigError for a source without a user
        return None, [error(exc.message, exc.hint)]
    findings: list[Finding] = []
    if credentials is not None:
        secret = credentials.password.reveal()
        if not secret:
            findings.append(warning(f"the password from {account.password_source} is empty"))
        elif secret != secret.strip():
            findings.append(
                warning(
                    "the password has leading or trailing whitespace",
                    "registries rarely accept that; remove it unless it is intended",
                )
            )
    return source, findings


# --- the registry ------------------------------------------------------------------------------
async def check_registry(
    account: DockerRegistryAccount, source: CredentialSource | None
) -> list[Finding]:
    """Ping, then the catalog (no repositories) or each repository's tags."""
    async with RegistryClient(account.endpoint(), source) as client:
        try:
            await client.ping()
        except RegwatchError as exc:
            return [_connection_finding(account, exc)]
        if account.repositories:
            return await _check_tags(account, client)
        if account.catalog_file:
            return []  # read and checked locally; the registry is reachable
        return await _check_catalog(account, client)


async def _check_catalog(account: DockerRegistryAccount, client: RegistryClient) -> list[Finding]:
    try:
        repositories = list(await client.catalog())
    except (AuthError, NotFoundError) as exc:
        status = f" (HTTP {exc.status})" if exc.status else ""
        return [
            error(
                f"the registry {account.registry} refused to list its catalog{status}",
                NO_CATALOG_HINT,
            )
        ]
    except RegistryError as exc:
        return [_connection_finding(account, exc, what="cannot read the catalog")]
    if not repositories:
        return [
            warning(
                f"the catalog of {account.registry} is empty",
                "push an image first, or list the repositories with --repositories",
            )
        ]
    return _check_catalog_matches(account, repositories)


def _check_catalog_matches(
    account: DockerRegistryAccount, repositories: list[str]
) -> list[Finding]:
    kept = [r for r in repositories if r not in set(account.skip)]
    if account.repositories_regex:
        pattern = re.compile(account.repositories_regex)
        kept = [r for r in kept if pattern.fullmatch(r)]
        if not kept:
            return [
                warning(
                    f"no repository in the catalog of {account.registry} matches "
                    f"repositoriesRegex {account.repositories_regex!r}",
                    "the regex must match whole names, e.g. 'team-a/.*'",
                )
            ]
    return []


async def _check_tags(account: DockerRegistryAccount, client: RegistryClient) -> list[Finding]:
    limit = asyncio.Semaphore(_TAG_CONCURRENCY)

    async def one(repository: str) -> tuple[int, Finding | None]:
        async with limit:
            try:
                tags = await client.tags(repository)
            except RegistryError as exc:
                return 0, _tags_finding(account, repository, exc)
            return len(tags), None

    results = await asyncio.gather(*(one(r) for r in account.repositories))
    findings = [f for _, f in results if f is not None]
    if not findings and sum(count for count, _ in results) == 0:
        findings.append(
            warning(
                f"none of the repositories of account {account.name!r} has any tag",
                "push an image, or check the repository names",
            )
        )
    return findings


def _tags_finding(account: DockerRegistryAccount, repository: str, exc: RegistryError) -> Finding:
    if isinstance(exc, NotFoundError):
        hint = "check the name"
        if account.registry in DOCKER_HUB_ALIASES and "/" not in repository:
            hint = f"Docker Hub's official images are library/{repository}"
        return error(f"repository {repository!r} does not exist on {account.registry}", hint)
    if isinstance(exc, AuthError):
        return error(
            f"the registry {account.registry} refused access to repository {repository!r} "
            f"({exc.message})",
            _auth_hint(account),
        )
    return _connection_finding(account, exc, what=f"cannot read the tags of {repository!r}")


def _connection_finding(
    account: DockerRegistryAccount, exc: RegwatchError, *, what: str | None = None
) -> Finding:
    """An error for a failed request; the client's messages already name the registry."""
    message = exc.message
    if what is not None:
        message = f"{what}: {message}"
    elif account.registry not in message:
        message = f"cannot connect to the registry {account.registry}: {message}"
    if isinstance(exc, AuthError):
        return error(message, _auth_hint(account))
    if isinstance(exc, TLSError):
        return error(
            message,
            "trust the registry's CA with --ca-cert FILE (or, not recommended, "
            "--insecure-registry)",
        )
    if isinstance(exc, TransportError):
        return error(message, exc.hint or "check --address and that the registry is reachable")
    if isinstance(exc, NotFoundError):
        return error(message, "check --address: no Docker Registry v2 API answered there")
    return error(message, exc.hint)


def _auth_hint(account: DockerRegistryAccount) -> str:
    source = account.password_source
    if source is None:
        return "the registry needs credentials: add --username and --password"
    if source == "passwordFile":
        return (
            f"check the username and the password in {account.password_file}: leading or "
            "trailing whitespace, or a trailing newline, makes it wrong"
        )
    if source == "passwordCommand":
        return "check the username and what the password command prints"
    if source == "dockerconfigFile":
        return f"check the entry for {account.registry} in {account.dockerconfig_file}"
    return (
        "check the username and password; leading or trailing whitespace in the password "
        "makes it wrong"
    )
