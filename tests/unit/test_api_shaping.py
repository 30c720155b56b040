"""Pure response shaping: Clouddriver's JSON, field for field (spinnaker.md §4.1, §4.3)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regwatch.api.errors import describe_validation, error_body
from regwatch.api.models import CredentialsBrief, CredentialsExpanded, ImageItem
from regwatch.api.responses import json_bytes
from regwatch.api.shaping import (
    account_not_found,
    credentials_brief,
    credentials_expanded,
    image_item,
    normalize_query,
    permissions,
    row_items,
    rows_json,
    tag_order,
)
from regwatch.config.model import DockerRegistryAccount
from regwatch.models import TagRecord

BRIEF_FIELDS = [
    "name",
    "environment",
    "accountType",
    "cloudProvider",
    "requiredGroupMembership",
    "permissions",
    "accountId",
    "type",
    "challengeDestructiveActions",
    "primaryAccount",
]


def record(**fields: Any) -> TagRecord:
    values: dict[str, Any] = {
        "account": "dockerhub",
        "registry": "index.docker.io",
        "repository": "library/nginx",
        "tag": "1.25.3",
        "digest": "sha256:4c0f",
    }
    values.update(fields)
    return TagRecord(**values)


def account(**fields: Any) -> DockerRegistryAccount:
    return DockerRegistryAccount.model_validate(
        {"name": "dockerhub", "address": "https://index.docker.io", **fields}
    )


def test_an_image_is_clouddrivers_item_field_for_field() -> None:
    assert image_item(record(labels={"commitId": "abc"})) == {
        "repository": "library/nginx",
        "tag": "1.25.3",
        "account": "dockerhub",
        "registry": "index.docker.io",
        "digest": "sha256:4c0f",
        "artifact": {
            "name": "library/nginx",
            "type": "docker",
            "version": "1.25.3",
            "reference": "index.docker.io/library/nginx:1.25.3",
            "metadata": {"registry": "index.docker.io", "labels": {}},
        },
    }
    assert list(image_item(record())) == [
        "repository",
        "tag",
        "account",
        "registry",
        "digest",
        "artifact",
    ]


def test_include_details_adds_the_build_labels_and_the_labels() -> None:
    labels = {"commitId": "abc123", "buildNumber": "42", "other": "x"}
    item = image_item(record(labels=labels), include_details=True)
    assert list(item) == [
        "repository",
        "tag",
        "account",
        "registry",
        "digest",
        "commitId",
        "buildNumber",
        "branch",
        "artifact",
    ]
    assert (item["commitId"], item["buildNumber"], item["branch"]) == ("abc123", "42", None)
    assert item["artifact"]["metadata"]["labels"] == labels


def test_an_image_without_a_digest_says_null() -> None:
    assert json.loads(json_bytes(image_item(record(digest=None))))["digest"] is None


names = st.from_regex(
    r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*){0,2}", fullmatch=True
)
tags = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,40}", fullmatch=True)
registries = st.from_regex(r"[a-z0-9.-]{1,20}(?::[0-9]{1,5})?", fullmatch=True)
label_maps = st.dictionaries(st.text(min_size=1, max_size=12), st.text(max_size=20), max_size=4)


@given(registries, names, tags, label_maps, st.booleans())
def test_every_item_matches_the_documented_model(
    registry: str, repository: str, tag: str, labels: dict[str, str], details: bool
) -> None:
    rec = record(registry=registry, repository=repository, tag=tag, labels=labels)
    item = json.loads(json_bytes(image_item(rec, include_details=details)))
    ImageItem.model_validate(item)  # the OpenAPI model describes what is served
    artifact = item["artifact"]
    assert artifact["reference"] == f"{registry}/{repository}:{tag}"
    assert (artifact["name"], artifact["version"], artifact["type"]) == (repository, tag, "docker")
    assert artifact["metadata"] == {"registry": registry, "labels": labels if details else {}}
    assert ("commitId" in item) is details
    if details:
        assert item["commitId"] == labels.get("commitId")


any_text = st.text(max_size=30)  # quotes, backslashes, control and non-ASCII characters too


@given(
    st.lists(
        st.tuples(any_text, any_text, any_text, any_text, st.none() | any_text, label_maps),
        max_size=5,
    ),
    st.booleans(),
)
def test_rows_are_served_as_the_records_would_be_byte_for_byte(
    rows: list[tuple[str, str, str, str, str | None, dict[str, str]]], details: bool
) -> None:
    """The API's lean row path (find_image_rows tuples → bytes) answers what image_item of the
    same TagRecords answers, byte for byte."""
    records = [
        record(account=a, registry=g, repository=r, tag=t, digest=d, labels=labels)
        for a, g, r, t, d, labels in rows
    ]
    expected = json_bytes([image_item(rec, include_details=details) for rec in records])
    plain = [row if details else row[:5] for row in rows]
    assert json_bytes(row_items(plain, include_details=details)) == expected
    assert rows_json(plain, include_details=details) == expected


def test_brief_credentials_are_clouddrivers_list_entry() -> None:
    view = credentials_brief(account(permissions={"READ": ["devs"], "WRITE": ["devs"]}), True)
    assert list(view) == BRIEF_FIELDS
    assert view == {
        "name": "dockerhub",
        "environment": "dockerhub",
        "accountType": "dockerhub",
        "cloudProvider": "dockerRegistry",
        "requiredGroupMembership": [],
        "permissions": {"READ": ["devs"], "WRITE": ["devs"]},
        "accountId": None,
        "type": "dockerRegistry",
        "challengeDestructiveActions": False,
        "primaryAccount": True,
    }
    CredentialsBrief.model_validate(view)


def test_expanded_credentials_carry_the_settings() -> None:
    acct = account(
        environment="prod",
        accountType="hub",
        email="ops@example.com",
        trackDigests=True,
        cacheIntervalSeconds=45,
        skip=["library/old"],
        repositoriesRegex="library/.*",
    )
    view = credentials_expanded(acct, primary=False)
    CredentialsExpanded.model_validate(view)
    assert {k: view[k] for k in BRIEF_FIELDS} | {"environment": "prod"} == {
        **credentials_brief(acct, False),
        "environment": "prod",
    }
    expected = {
        "address": "https://index.docker.io",
        "registry": "index.docker.io",
        "v2Endpoint": "https://index.docker.io/v2",
        "email": "ops@example.com",
        "trackDigests": True,
        "inspectDigests": False,
        "sortTagsByDate": False,
        "cacheThreads": 1,
        "cacheIntervalSeconds": 45,
        "clientTimeoutMillis": 60000,
        "paginateSize": 100,
        "insecureRegistry": False,
        "skip": ["library/old"],
        "catalogFile": None,
        "repositoriesRegex": "library/.*",
        "enabled": True,
    }
    assert {k: view[k] for k in expected} == expected
    assert (view["environment"], view["accountType"], view["primaryAccount"]) == (
        "prod",
        "hub",
        False,
    )


@pytest.mark.parametrize(
    "credentials",
    [
        {"username": "robot$ci", "password": "s3cr3t-pass-1"},
        {"username": "_json_key", "passwordFile": "/run/secrets/s3cr3t-key-file.json"},
        {"username": "AWS", "passwordCommand": "echo s3cr3t-from-command"},
        {"dockerconfigFile": "/home/ci/.docker/s3cr3t-config.json"},
    ],
)
def test_credentials_never_show_a_secret_or_where_it_comes_from(
    credentials: dict[str, str],
) -> None:
    acct = account(**credentials)
    for view in (credentials_brief(acct, True), credentials_expanded(acct, True)):
        text = json_bytes(view).decode()
        for key, value in credentials.items():
            assert value not in text
            assert key not in text
        assert "s3cr3t" not in text


def test_required_group_membership_means_read_and_write() -> None:
    assert permissions(account(requiredGroupMembership=["ops"])) == {
        "READ": ["ops"],
        "WRITE": ["ops"],
    }
    explicit = account(requiredGroupMembership=["ops"], permissions={"READ": ["devs"]})
    assert permissions(explicit) == {"READ": ["devs"], "WRITE": []}
    assert permissions(account()) == {}


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (None, None),
        ("", None),
        ("*", None),
        ("**", None),
        ("  ", None),
        ("*nginx*", "nginx"),
        ("library/nginx:1", "library/nginx:1"),
        (" nginx ", "nginx"),
    ],
)
def test_q_is_a_substring_and_globs_at_its_ends_add_nothing(
    q: str | None, expected: str | None
) -> None:
    assert normalize_query(q) == expected


def test_tags_are_lexical_or_newest_first_per_account_and_sort_overrides() -> None:
    assert tag_order(account(), None) == "lexical"
    assert tag_order(account(sortTagsByDate=True), None) == "date"
    assert tag_order(account(sortTagsByDate=True), "semver") == "semver"


def test_not_found_message_is_clouddrivers() -> None:
    assert account_not_found("nope") == "Account does not exist (name: nope)"


def test_error_body_is_one_shape() -> None:
    body = error_body(404, "Account does not exist (name: x)", "/credentials/x")
    assert set(body) == {"timestamp", "status", "error", "message", "path"}
    assert (body["status"], body["error"]) == (404, "Not Found")
    assert error_body(400, "bad", "/p", hint="do this")["hint"] == "do this"


def test_validation_errors_name_each_parameter() -> None:
    errors = [
        {
            "loc": ("query", "count"),
            "type": "int_parsing",
            "msg": "Input should be a valid integer, unable to parse string as an integer",
        },
        {"loc": ("query", "repository"), "type": "missing", "msg": "Field required"},
    ]
    assert describe_validation(errors) == (
        "query parameter 'count': input should be a valid integer, unable to parse string as "
        "an integer; query parameter 'repository' is required"
    )
