"""One JSON error shape for every error the API returns.

    {"timestamp": 1732680000000, "status": 400, "error": "Bad Request",
     "message": "query parameter 'count': input should be a valid integer…",
     "path": "/dockerRegistry/images/find"}

It is Spring Boot's (what Clouddriver answers, and what Deck and Gate read `message` from), plus an
optional `hint`. FastAPI's 422 for a bad parameter becomes a 400 saying which parameter and why;
unknown routes and methods keep their 404/405; a StoreError (the database is down…) is a 503;
anything unexpected is a 500 that names no detail (the detail is logged).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from regwatch.api.responses import json_response
from regwatch.errors import ConfigError, RegwatchError, StoreError

log = logging.getLogger(__name__)


class ApiError(Exception):
    """Raise from a route to answer with the error shape."""

    def __init__(self, status: int, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.hint = hint


def error_body(status: int, message: str, path: str, hint: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "timestamp": int(time.time() * 1000),
        "status": status,
        "error": HTTPStatus(status).phrase,
        "message": message,
        "path": path,
    }
    if hint:
        body["hint"] = hint
    return body


def error_response(
    request: Request, status: int, message: str, hint: str | None = None
) -> Response:
    return json_response(error_body(status, message, request.url.path, hint), status=status)


def describe_validation(errors: Sequence[Any]) -> str:
    """A one-line message naming each bad parameter: "query parameter 'count': …"."""
    parts = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        where = f"{loc[0]} parameter '{'.'.join(loc[1:])}'" if len(loc) > 1 else "request"
        if error.get("type") == "missing":
            parts.append(f"{where} is required")
        else:
            parts.append(f"{where}: {_lower_first(str(error.get('msg', 'is invalid')))}")
    return "; ".join(parts) or "invalid request"


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error_response(request, 400, describe_validation(exc.errors()))


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(request, exc.status, exc.message, exc.hint)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    response = error_response(request, exc.status_code, message)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _regwatch_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RegwatchError)
    status = 503 if isinstance(exc, StoreError) else 400 if isinstance(exc, ConfigError) else 500
    log.warning("%s %s: %s", request.method, request.url.path, exc)
    return error_response(request, status, exc.message, exc.hint)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("%s %s failed", request.method, request.url.path)
    return error_response(request, 500, "internal error", "see the service's log")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RegwatchError, _regwatch_error)
    app.add_exception_handler(Exception, _unexpected_error)
