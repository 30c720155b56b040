"""A run's status and error list from its repository results (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from regwatch.indexer.jobs import _Tally
from regwatch.indexer.results import RepositoryResult, ScanRun

OK = RepositoryResult("a", ok=True, tags=3, added=1)
FAILED = RepositoryResult("b", ok=False, tags=2, error="registry r failed on the tags of b (500)")
TAG_ERRORS = RepositoryResult("c", ok=True, tags=1, tag_errors=2, error="tag x: boom")


@pytest.mark.parametrize(
    ("results", "account_error", "stopped", "status"),
    [
        ([OK], None, False, "ok"),
        ([], None, False, "ok"),  # an empty catalog is a success
        ([OK, FAILED], None, False, "partial"),
        ([OK, TAG_ERRORS], None, False, "partial"),
        ([FAILED], None, False, "failed"),
        ([OK], "catalog failed", False, "partial"),
        ([], "catalog failed", False, "failed"),
        ([FAILED], "catalog failed", False, "failed"),
        ([OK], None, True, "partial"),
        ([], None, True, "partial"),  # stopped before any repository: nothing failed
    ],
)
def test_status(
    results: list[RepositoryResult], account_error: str | None, stopped: bool, status: str
) -> None:
    tally = _Tally(repositories=3, results=results, account_error=account_error, stopped=stopped)
    assert tally.status() == status


def test_store_errors_name_the_repository_or_none_for_the_account() -> None:
    tally = _Tally(
        repositories=4, results=[OK, FAILED, TAG_ERRORS], account_error="catalog failed",
        stopped=True,
    )  # fmt: skip
    assert tally.store_errors() == [
        {"repository": None, "error": "catalog failed"},
        {"repository": "b", "error": FAILED.error},
        {"repository": "c", "error": "2 tag(s) kept without fresh data; first: tag x: boom"},
        {"repository": None, "error": "stopped: 1 repositories not scanned"},
    ]


def test_run_json_view() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    run = ScanRun(
        run_id=7, account="hub", registry="r:5000", started_at=start,
        finished_at=start + timedelta(seconds=1.5), status="partial", requests=12, retries=1,
        rate_limited=0, token_fetches=2, repositories=2, repositories_ok=1,
        repositories_failed=1, tags=5, tags_added=5, tags_changed=0, tags_removed=0, events=0,
        tag_errors=0, errors={"b": "boom"},
    )  # fmt: skip
    data = run.to_dict()
    assert data["runId"] == 7
    assert data["seconds"] == 1.5
    assert data["errors"] == {"b": "boom"}
    assert data["startedAt"] == "2024-01-01T00:00:00+00:00"
    assert not run.failed
