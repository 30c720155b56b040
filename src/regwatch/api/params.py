"""Query parameters of the hot lookup routes, parsed by hand.

FastAPI's per-parameter resolution and pydantic validation cost ~0.1 ms for the seven parameters
of `images/find`, as much as answering from the cache (bench/api.py). The lookup routes therefore
take the `Request`, read `request.query_params` here, and document their parameters for OpenAPI
with `openapi_extra` (`query_parameters`). The rules and the 400 messages are FastAPI's: the last
value of a repeated parameter wins; booleans accept pydantic's words; errors name the parameter
("query parameter 'count': input should be …").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from regwatch.api.errors import ApiError

_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})
SORTS = ("lexical", "semver", "date")


def _bad(name: str, message: str) -> ApiError:
    return ApiError(400, f"query parameter '{name}': {message}")


def text(params: Mapping[str, str], name: str, *, required: bool = False) -> str | None:
    value = params.get(name)
    if value is None and required:
        raise ApiError(400, f"query parameter '{name}' is required")
    return value


def count(params: Mapping[str, str], name: str = "count") -> int | None:
    """A non-negative integer, or None when absent."""
    value = params.get(name)
    if value is None:
        return None
    try:
        number = int(value.strip())
    except ValueError:
        raise _bad(
            name, "input should be a valid integer, unable to parse string as an integer"
        ) from None
    if number < 0:
        raise _bad(name, "input should be greater than or equal to 0")
    return number


def flag(params: Mapping[str, str], name: str) -> bool:
    value = params.get(name)
    if value is None:
        return False
    word = value.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise _bad(name, "input should be a valid boolean, unable to interpret input")


def choice(params: Mapping[str, str], name: str, allowed: Sequence[str]) -> str | None:
    value = params.get(name)
    if value is None or value in allowed:
        return value
    names = [f"'{option}'" for option in allowed]
    raise _bad(name, f"input should be {', '.join(names[:-1])} or {names[-1]}")


def query_parameter(
    name: str, description: str, schema: dict[str, Any] | None = None, required: bool = False
) -> dict[str, Any]:
    """One OpenAPI parameter object for `openapi_extra`."""
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def query_parameters(*parameters: dict[str, Any]) -> dict[str, Any]:
    return {"parameters": list(parameters)}


COUNT_DOC = query_parameter(
    "count",
    "at most this many results, after the filters (0: all)",
    {"type": "integer", "minimum": 0},
)
DETAILS_DOC = query_parameter(
    "includeDetails",
    "add commitId, buildNumber, branch and the labels (inspectDigests)",
    {"type": "boolean", "default": False},
)
Q_DOC = query_parameter("q", "substring of registry/repository:tag (case-insensitive)")
SORT_DOC = query_parameter(
    "sort",
    "regwatch only: lexical, semver (ascending) or date (newest first)",
    {"type": "string", "enum": list(SORTS)},
)
PROVIDER_DOC = query_parameter(
    "provider", 'only "dockerRegistry" is served', {"type": "string", "default": "dockerRegistry"}
)
FIND_DOCS = (
    Q_DOC,
    query_parameter("account", "exact account name"),
    query_parameter("repository", "exact repository name"),
    query_parameter("tag", "exact tag"),
    COUNT_DOC,
    DETAILS_DOC,
    query_parameter("region", "accepted and ignored, as upstream"),
)
TAGS_DOCS = (
    query_parameter("account", "the account", required=True),
    query_parameter("repository", "the repository", required=True),
    SORT_DOC,
)
