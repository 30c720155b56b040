"""One exception tree for regwatch.

Every error carries a short message (what went wrong, naming the registry/repository/account) and,
where it helps, a hint (what to check). The CLI prints `Error: <message> — <hint>`; the API maps the
class to an HTTP status. Messages must never contain secrets: build them from names, never from
credentials or URLs that may carry them (see `regwatch.reference.redact_url`).
"""

from __future__ import annotations


class RegwatchError(Exception):
    """Base of every error regwatch raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message


# --- configuration -------------------------------------------------------------------------------
class ConfigError(RegwatchError):
    """The configuration file or a setting in it is wrong."""


class ValidationFailed(ConfigError):
    """Account validation found errors; nothing was saved."""


class CredentialError(RegwatchError):
    """A credential source (password file, command, docker config, helper) could not be used."""


# --- registry ------------------------------------------------------------------------------------
class RegistryError(RegwatchError):
    """Something went wrong talking to a registry."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        registry: str | None = None,
        repository: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.registry = registry
        self.repository = repository
        self.status = status


class AuthError(RegistryError):
    """The registry or its token service refused our credentials (401/403)."""


class NotFoundError(RegistryError):
    """The repository, tag or blob does not exist (404 NAME_UNKNOWN / MANIFEST_UNKNOWN / …)."""


class RateLimitedError(RegistryError):
    """The registry kept answering 429 after our retries."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class ProtocolError(RegistryError):
    """The registry answered something that violates the protocol (bad JSON, bad Link, loop…)."""


class TransportError(RegistryError):
    """Network failure: connection refused/reset, timeout, 5xx after retries."""


class TLSError(TransportError):
    """TLS handshake or certificate verification failed."""


# --- store ---------------------------------------------------------------------------------------
class StoreError(RegwatchError):
    """The store could not be opened, migrated or written."""


class SchemaMismatch(StoreError):
    """The database schema is not the one this version knows."""
