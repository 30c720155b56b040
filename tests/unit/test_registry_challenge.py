"""WWW-Authenticate parsing: every form registries send, and garbage."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regwatch.registry.challenge import (
    Challenge,
    find_challenge,
    format_challenge,
    parse_challenges,
)


def test_docker_hub_bearer_quoted() -> None:
    header = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/nginx:pull"'
    )
    [challenge] = parse_challenges([header])
    assert challenge.scheme == "bearer"
    assert challenge.realm == "https://auth.docker.io/token"
    assert challenge.service == "registry.docker.io"
    assert challenge.scopes == ("repository:library/nginx:pull",)


def test_unquoted_realm_with_colons_and_slashes() -> None:
    [challenge] = parse_challenges(["Bearer realm=https://r.example:5001/auth/token,service=reg"])
    assert challenge.realm == "https://r.example:5001/auth/token"
    assert challenge.service == "reg"


def test_missing_service_and_spaces_around_equals() -> None:
    [challenge] = parse_challenges(['Bearer  realm = "https://o.example/openshift/token"'])
    assert challenge.realm == "https://o.example/openshift/token"
    assert challenge.service is None


def test_several_challenges_in_one_header() -> None:
    header = 'Bearer realm="https://a/token",service="svc", Basic realm="Registry Realm"'
    challenges = parse_challenges([header])
    assert [c.scheme for c in challenges] == ["bearer", "basic"]
    assert challenges[0].params == {"realm": "https://a/token", "service": "svc"}
    assert challenges[1].realm == "Registry Realm"


def test_several_headers() -> None:
    challenges = parse_challenges(['Basic realm="x"', 'Bearer realm="https://a/t"'])
    assert [c.scheme for c in challenges] == ["basic", "bearer"]
    bearer = find_challenge(challenges, "Bearer")
    assert bearer is not None
    assert bearer.realm == "https://a/t"
    assert find_challenge(challenges, "digest") is None


def test_basic_forms() -> None:
    assert parse_challenges(["Basic"]) == [Challenge("basic")]
    assert parse_challenges(['BASIC realm="r", charset="UTF-8"']) == [
        Challenge("basic", {"realm": "r", "charset": "UTF-8"})
    ]
    assert parse_challenges(["Basic dXNlcjpwYXNz=="]) == [Challenge("basic", {}, "dXNlcjpwYXNz==")]


def test_insufficient_scope_with_several_scopes() -> None:
    header = (
        'Bearer realm="https://a/t",service="s",error="insufficient_scope",'
        'scope="repository:a:pull repository:b:pull"'
    )
    [challenge] = parse_challenges([header])
    assert challenge.error == "insufficient_scope"
    assert challenge.scopes == ("repository:a:pull", "repository:b:pull")


def test_escapes_in_quoted_string_and_case_of_names() -> None:
    [challenge] = parse_challenges([r'Bearer Realm="a\"b\\c", SERVICE=x'])
    assert challenge.params == {"realm": 'a"b\\c', "service": "x"}


def test_missing_comma_between_parameters_is_forgiven() -> None:
    [challenge] = parse_challenges(['Bearer realm="https://a/t" service="s"'])
    assert challenge.params == {"realm": "https://a/t", "service": "s"}


@pytest.mark.parametrize(
    "garbage", ["", ",,,", "=", '"unterminated', "Bearer realm=", "Bearer ,,,", "\x00\x01", "==x"]
)
def test_garbage_gives_no_usable_challenge(garbage: str) -> None:
    challenges = parse_challenges([garbage])
    assert all(c.realm in (None, "") for c in challenges)


_token = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.",
    min_size=1,
    max_size=12,
)
_value = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=0, max_size=40)


@st.composite
def challenges(draw: st.DrawFn) -> Challenge:
    scheme = draw(_token).lower()
    names = draw(st.lists(_token.map(str.lower), unique=True, max_size=5))
    params = {name: draw(_value) for name in names}
    return Challenge(scheme, params)


@given(st.lists(challenges(), min_size=1, max_size=4))
def test_round_trip_of_formatted_challenges(items: list[Challenge]) -> None:
    header = ", ".join(format_challenge(c) for c in items)
    assert parse_challenges([header]) == items


@given(st.lists(challenges(), min_size=1, max_size=3))
def test_one_header_per_challenge_equals_one_combined_header(items: list[Challenge]) -> None:
    separate = parse_challenges([format_challenge(c) for c in items])
    combined = parse_challenges([", ".join(format_challenge(c) for c in items)])
    assert separate == combined == items


@given(st.text(max_size=200))
def test_parser_never_raises_on_arbitrary_text(text: str) -> None:
    for challenge in parse_challenges([text]):
        assert challenge.scheme == challenge.scheme.lower()
        assert all(isinstance(v, str) for v in challenge.params.values())
