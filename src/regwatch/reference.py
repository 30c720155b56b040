"""Pure helpers for registry addresses and image references. No I/O."""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit, urlunsplit

from regwatch.errors import ConfigError

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
DOCKER_HUB_API = "registry-1.docker.io"


def normalize_address(address: str) -> str:
    """Normalise a registry address as Halyard does.

    `https://` is added when no scheme is given; a trailing `/` and a trailing `/v2` are stripped.
    Only http and https are accepted, and the address may not carry credentials, a query or a
    fragment (they would leak into logs and upstream ignores them anyway).
    """
    raw = address.strip()
    if not raw:
        raise ConfigError("the registry address is empty", hint="e.g. --address index.docker.io")
    if not _SCHEME.match(raw):
        raw = "https://" + raw
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https"):
        raise ConfigError(
            f"unsupported scheme {parts.scheme!r} in registry address",
            hint="use https:// (or http:// for a plain-HTTP registry)",
        )
    if parts.username or parts.password:
        raise ConfigError(
            "the registry address must not contain credentials",
            hint="use --username and --password/--password-file/--password-command instead",
        )
    if parts.query or parts.fragment:
        raise ConfigError("the registry address must not contain a query or fragment")
    if not parts.hostname:
        raise ConfigError(f"the registry address {address!r} has no host name")
    path = parts.path
    while path.endswith("/"):
        path = path[:-1]
    if path.endswith("/v2"):
        path = path[: -len("/v2")]
    while path.endswith("/"):
        path = path[:-1]
    return urlunsplit(SplitResult(parts.scheme, parts.netloc.lower(), path, "", ""))


def registry_name(address: str) -> str:
    """The `registry` Clouddriver reports: the normalised address without its scheme."""
    normalized = normalize_address(address)
    return normalized.split("://", 1)[1]


def api_base(address: str) -> str:
    """The base URL the v2 API lives under. Docker Hub's API host differs from its name."""
    normalized = normalize_address(address)
    parts = urlsplit(normalized)
    if parts.hostname in DOCKER_HUB_ALIASES and parts.port is None:
        return urlunsplit(SplitResult(parts.scheme, DOCKER_HUB_API, parts.path, "", ""))
    return normalized


def redact_url(url: str) -> str:
    """Remove userinfo and the query string from a URL before it is logged or shown."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    query = "…" if parts.query else ""
    return urlunsplit(SplitResult(parts.scheme, host, parts.path, query, ""))
