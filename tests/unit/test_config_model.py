"""The account model: upstream's fields, defaults, exclusion rules and our error messages."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regwatch.config.model import (
    NAME_PATTERN,
    DockerRegistryAccount,
    DockerRegistryProvider,
    parse_account,
)
from regwatch.errors import ConfigError
from regwatch.models import Endpoint, Secret


def account(**extra: object) -> DockerRegistryAccount:
    return parse_account({"name": "hub", "address": "index.docker.io", **extra})


def test_upstream_defaults() -> None:
    a = account()
    assert (a.cache_threads, a.cache_interval_seconds) == (1, 30)
    assert (a.client_timeout_millis, a.paginate_size) == (60_000, 100)
    assert not (a.track_digests)
    assert not (a.inspect_digests)
    assert not (a.sort_tags_by_date)
    assert not (a.insecure_registry)
    assert a.repositories == []
    assert a.skip == []
    assert a.required_group_membership == []
    assert a.permissions.read == []
    assert a.permissions.write == []
    assert a.effective_environment == "hub"
    assert a.effective_account_type == "hub"
    assert a.password_source is None


def test_yaml_keys_are_upstreams_camel_case() -> None:
    a = parse_account(
        {
            "name": "gcr",
            "address": "gcr.io",
            "username": "_json_key",
            "passwordFile": "/keys/gcr.json",
            "cacheIntervalSeconds": 60,
            "clientTimeoutMillis": 5000,
            "paginateSize": 50,
            "cacheThreads": 2,
            "trackDigests": True,
            "sortTagsByDate": True,
            "inspectDigests": True,
            "insecureRegistry": True,
            "repositoriesRegex": "team/.*",
            "dockerconfigFile": None,
            "caCert": "/ca.pem",
            "accountType": "gcr-type",
            "environment": "prod",
            "permissions": {"READ": ["dev"], "WRITE": ["ops"]},
            "requiredGroupMembership": ["legacy"],
        }
    )
    assert a.password_file == "/keys/gcr.json"
    assert a.password_source == "passwordFile"
    assert (a.cache_interval_seconds, a.client_timeout_millis, a.paginate_size) == (60, 5000, 50)
    assert a.track_digests
    assert a.sort_tags_by_date
    assert a.inspect_digests
    assert a.insecure_registry
    assert a.permissions.read == ["dev"]
    assert a.permissions.write == ["ops"]
    assert a.effective_environment == "prod"
    assert a.effective_account_type == "gcr-type"
    document = a.to_document()
    assert document["passwordFile"] == "/keys/gcr.json"
    assert document["permissions"] == {"READ": ["dev"], "WRITE": ["ops"]}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("index.docker.io", "https://index.docker.io"),
        ("https://index.docker.io/", "https://index.docker.io"),
        ("https://registry.example.com:5000/v2/", "https://registry.example.com:5000"),
        ("http://127.0.0.1:5000/v2", "http://127.0.0.1:5000"),
        ("us-docker.pkg.dev/", "https://us-docker.pkg.dev"),
    ],
)
def test_address_is_normalised_as_halyard_does(given: str, expected: str) -> None:
    a = account(address=given)
    assert a.address == expected
    assert a.registry == expected.split("://", 1)[1]


def test_unknown_keys_are_kept() -> None:
    a = account(providerVersion="V1", somethingNew={"a": 1})
    assert a.model_extra == {"providerVersion": "V1", "somethingNew": {"a": 1}}
    assert a.to_document()["providerVersion"] == "V1"


def test_password_is_a_secret_everywhere_but_the_file() -> None:
    a = account(username="bob", password="hunter2-s3cret")
    assert isinstance(a.password, Secret)
    assert "hunter2" not in repr(a)
    assert "hunter2" not in str(a)
    assert a.to_public()["password"] == "********"
    assert "hunter2" not in a.model_dump_json()
    assert a.to_document()["password"] == "hunter2-s3cret"


def test_document_leaves_out_defaults_but_full_keeps_them() -> None:
    a = account(cacheThreads=1, permissions={"READ": ["dev"]})
    assert a.to_document() == {
        "name": "hub",
        "address": "https://index.docker.io",
        "permissions": {"READ": ["dev"]},
    }
    full = a.to_document(full=True)
    assert full["cacheThreads"] == 1
    assert full["paginateSize"] == 100
    assert full["permissions"] == {"READ": ["dev"], "WRITE": []}


def test_endpoint_and_registry() -> None:
    a = account(
        address="https://127.0.0.1:5000/",
        insecureRegistry=True,
        caCert="~/ca.pem",
        clientTimeoutMillis=1500,
        paginateSize=7,
    )
    endpoint = a.endpoint()
    assert isinstance(endpoint, Endpoint)
    assert endpoint.address == "https://127.0.0.1:5000"
    assert endpoint.insecure
    assert endpoint.timeout_ms == 1500
    assert endpoint.paginate_size == 7
    assert endpoint.ca_cert is not None
    assert not endpoint.ca_cert.startswith("~")
    assert a.registry == "127.0.0.1:5000"


@pytest.mark.parametrize(
    ("data", "message", "hint"),
    [
        ({"name": "Hub"}, "account 'Hub': name: 'Hub' is not a valid account name", "lower-case"),
        ({"name": "-hub"}, "name: '-hub' is not a valid account name", "letters, digits"),
        ({"address": None}, "address: ", None),
        ({"address": "ftp://x"}, "unsupported scheme 'ftp'", "https://"),
        ({"address": "https://u:p@host"}, "must not contain credentials", "--username"),
        (
            {"password": "a", "passwordFile": "/f"},
            "password and passwordFile are both set",
            "at most one",
        ),
        (
            {"passwordCommand": "c", "dockerconfigFile": "/d"},
            "passwordCommand and dockerconfigFile",
            "at most one",
        ),
        ({"repositories": ["a"], "catalogFile": "/c"}, "repositories and catalogFile", "not both"),
        (
            {"repositories": ["a"], "repositoriesRegex": "a.*"},
            "repositories and repositoriesRegex",
            "not both",
        ),
        (
            {"repositoriesRegex": "(unclosed"},
            "repositoriesRegex: '(unclosed' is not a valid regular expression",
            "whole",
        ),
        ({"cacheThreads": 0}, "cacheThreads: Input should be greater than or equal to 1", None),
        (
            {"paginateSize": 100_000},
            "paginateSize: Input should be less than or equal to 10000",
            None,
        ),
        (
            {"cacheIntervalSeconds": "often"},
            "cacheIntervalSeconds: Input should be a valid integer",
            None,
        ),
        ({"trackDigests": "perhaps"}, "trackDigests: Input should be a valid boolean", None),
    ],
)
def test_bad_accounts_give_one_line_errors(
    data: dict[str, object], message: str, hint: str | None
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_account({"name": "hub", "address": "index.docker.io", **data})
    error = caught.value
    assert message in error.message
    assert "\n" not in str(error)
    if hint is None:
        assert error.hint is None
    else:
        assert error.hint is not None
        assert hint in error.hint


def test_missing_address_is_required() -> None:
    with pytest.raises(ConfigError, match=r"account 'x': address: is required"):
        parse_account({"name": "x"})


def test_errors_never_echo_secret_input() -> None:
    with pytest.raises(ConfigError) as caught:
        account(password={"not": "a string, s3cret"})
    assert "s3cret" not in str(caught.value)


def test_an_empty_password_source_does_not_count() -> None:
    a = account(password="", passwordFile="/f")
    assert a.password_source == "passwordFile"


def test_lists_are_stripped_and_deduplicated() -> None:
    a = account(repositories=[" library/nginx", "library/nginx", "", "a/b"])
    assert a.repositories == ["library/nginx", "a/b"]


def test_provider_rejects_duplicate_names() -> None:
    hub = account()
    with pytest.raises(ValueError, match="defined twice"):
        DockerRegistryProvider(accounts=[hub, hub])
    assert DockerRegistryProvider(accounts=[hub]).find("hub") is hub


@given(st.from_regex(NAME_PATTERN, fullmatch=True))
def test_every_name_matching_halyards_regex_is_accepted(name: str) -> None:
    assert parse_account({"name": name, "address": "r.example"}).name == name


@given(st.text(min_size=1, max_size=20).filter(lambda s: not NAME_PATTERN.match(s)))
def test_every_other_name_is_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="not a valid account name"):
        parse_account({"name": name, "address": "r.example"})
