"""Database failures of an open store (server restarted or unreachable, disk full, lock timeout)
as StoreErrors, so callers (the API's 503, the CLI's `Error: …`) never see a driver exception.

Opening and migrating have their own mapping (`migrate.database_errors`); this one is for the
Store's transactions. The message names the store by its redacted URL and gives the driver's
first line (with the password, were it there, replaced); the SQLAlchemy exception stays the
`__cause__` for the log's traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from regwatch.errors import StoreError
from regwatch.store.url import redact_store_url

CONNECT_HINT = "check that the database server is up and reachable (regwatch.store.url)"
_CONNECTION_STATES = ("08", "57P")  # connection exception; operator intervention (shutdown)


@contextmanager
def store_errors(url: str, doing: str) -> Iterator[None]:
    """Raise a DBAPIError from the block as a StoreError: "cannot `doing` the store URL: …"."""
    try:
        yield
    except DBAPIError as exc:
        raise as_store_error(exc, url, doing) from exc


def as_store_error(exc: DBAPIError, url: str, doing: str) -> StoreError:
    """The StoreError for `exc`, with a hint to check the server when the connection failed."""
    lines = str(exc.orig).strip().splitlines()
    detail = lines[0] if lines else type(exc.orig).__name__
    parsed = make_url(url)
    if parsed.password:
        detail = detail.replace(str(parsed.password), "***")
    sqlstate = str(getattr(exc.orig, "sqlstate", None) or "")
    lost = (
        exc.connection_invalidated
        or sqlstate.startswith(_CONNECTION_STATES)
        # psycopg reports a refused or broken connection as OperationalError without sqlstate
        or (isinstance(exc, OperationalError) and parsed.get_backend_name() != "sqlite")
    )
    return StoreError(
        f"cannot {doing} the store {redact_store_url(url)}: {detail}",
        hint=CONNECT_HINT if lost else None,
    )
