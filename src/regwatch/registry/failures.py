"""Turn a registry's error answer into the matching RegistryError, with a hint.

The registry's own error codes (`{"errors": [{"code": "NAME_UNKNOWN", "message": …}]}`) pick the
message; the registry's text is untrusted, so only its code and a short, printable excerpt of its
message are shown.
"""

from __future__ import annotations

import json
from typing import TypedDict

from regwatch.errors import (
    AuthError,
    NotFoundError,
    ProtocolError,
    RateLimitedError,
    RegistryError,
    TransportError,
)
from regwatch.registry.backoff import parse_retry_after
from regwatch.registry.transport import Response

_MESSAGE_MAX = 160


class _Where(TypedDict):
    registry: str
    repository: str | None
    status: int


def error_codes(body: bytes) -> list[tuple[str, str]]:
    """(code, message) pairs of a registry error body; [] if it is not one."""
    if not body or body[:1] not in (b"{", b" ", b"\n"):
        return []
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return []
    errors = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errors, list):
        return []
    pairs = []
    for entry in errors:
        if isinstance(entry, dict) and isinstance(entry.get("code"), str):
            message = entry.get("message")
            pairs.append((entry["code"], message if isinstance(message, str) else ""))
    return pairs


def _excerpt(text: str) -> str:
    clean = "".join(c if c.isprintable() else " " for c in text).strip()
    return clean if len(clean) <= _MESSAGE_MAX else clean[: _MESSAGE_MAX - 1] + "…"


def failure(
    response: Response,
    registry: str,
    *,
    what: str,
    repository: str | None = None,
    reference: str | None = None,
    blob: bool = False,
    wall_now: float = 0.0,
) -> RegistryError:
    """The error for a non-success `response` to a request about `what` (e.g. "tags of a/b")."""
    status = response.status
    codes = error_codes(response.body)
    detail = f": {codes[0][0]} {_excerpt(codes[0][1])}".rstrip() if codes else ""
    where: _Where = {"registry": registry, "repository": repository, "status": status}
    if status == 404:
        code_names = {code for code, _ in codes} | ({"BLOB_UNKNOWN"} if blob else set())
        return _not_found(registry, what, repository, reference, code_names)
    if status in (401, 403):
        message = f"registry {registry} denied {what} ({status}{detail})"
        return AuthError(message, hint="check that the account may pull from it", **where)
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), wall_now)
        wait = f"; it asks to wait {retry_after:.0f} s" if retry_after is not None else ""
        return RateLimitedError(
            f"registry {registry} is rate limiting us ({what}){wait}",
            hint="lower the scan rate or the concurrency, or try again later",
            retry_after=retry_after,
            **where,
        )
    if status >= 500:
        message = f"registry {registry} failed on {what} ({status}{detail}), also after retries"
        return TransportError(message, hint="the registry or its storage is failing", **where)
    hint = None
    if status == 400 and b"HTTP request to an HTTPS server" in response.body[:500]:
        hint = "the registry speaks HTTPS: use an https:// address"
    return ProtocolError(f"registry {registry} answered {status} to {what}{detail}", hint=hint,
                         **where)  # fmt: skip


def _not_found(
    registry: str,
    what: str,
    repository: str | None,
    reference: str | None,
    codes: set[str],
) -> NotFoundError:
    if "NAME_UNKNOWN" in codes or (repository and reference is None and not codes):
        # a list request (tags/list) that 404s without a code can only mean the repository
        return NotFoundError(
            f"repository {repository} not found on registry {registry}",
            hint="check the repository name (Docker Hub's official images are library/<name>)",
            registry=registry,
            repository=repository,
            status=404,
        )
    if reference is not None and "BLOB_UNKNOWN" not in codes:  # HEAD 404s carry no body
        sep = "@" if ":" in reference else ":"
        return NotFoundError(
            f"manifest {repository}{sep}{reference} not found on registry {registry}",
            hint="check the repository name and the tag or digest",
            registry=registry,
            repository=repository,
            status=404,
        )
    return NotFoundError(
        f"registry {registry}: {what} not found",
        hint="check the repository name and the digest",
        registry=registry,
        repository=repository,
        status=404,
    )
