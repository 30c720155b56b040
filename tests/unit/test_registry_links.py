"""Link header pagination: parsing, resolution with the query kept byte for byte, origin checks."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from regwatch.errors import ProtocolError
from regwatch.registry.links import next_link, parse_links, resolve, same_origin

BASE = "https://reg.example:5000/v2/_catalog?n=2"


def test_distribution_relative_link() -> None:
    link = next_link(['</v2/_catalog?last=org1%2Fapp0001&n=2>; rel="next"'])
    assert link == "/v2/_catalog?last=org1%2Fapp0001&n=2"
    assert resolve(BASE, link) == "https://reg.example:5000/v2/_catalog?last=org1%2Fapp0001&n=2"


def test_absolute_link_and_unquoted_rel() -> None:
    link = next_link(["<https://reg.example:5000/v2/a/tags/list?n=100&last=x>; rel=next"])
    assert link == "https://reg.example:5000/v2/a/tags/list?n=100&last=x"
    assert resolve(BASE, link) == link


def test_several_links_and_rel_lists() -> None:
    header = '</v2/x?page=1>; rel="prev", </v2/x?page=3>; rel="next last"; title="n"'
    assert next_link([header]) == "/v2/x?page=3"
    assert parse_links(header) == [
        ("/v2/x?page=1", {"rel": "prev"}),
        ("/v2/x?page=3", {"rel": "next last", "title": "n"}),
    ]


def test_no_next_link() -> None:
    assert next_link([]) is None
    assert next_link(['</v2/x?page=1>; rel="prev"']) is None
    assert next_link(["garbage without brackets"]) is None


def test_next_link_spread_over_several_headers() -> None:
    assert next_link(['</a>; rel="prev"', '</b>; rel="next"']) == "/b"
    assert next_link(['</b>; rel="next"', '</b>; rel="next"']) == "/b"


def test_two_different_next_links_are_ambiguous() -> None:
    with pytest.raises(ProtocolError, match="two different"):
        next_link(['</a>; rel="next"', '</b>; rel="next"'])


def test_ecr_opaque_token_is_not_reencoded() -> None:
    token = "ukD72mdD%2FmC8b5xV3susmJzzaTgp3hKwR9nRUW1yZZ6dLTTg%3D%3D"
    link = next_link([f'</v2/app/tags/list?last={token}&n=1000>; rel="next"'])
    assert link is not None
    resolved = resolve("https://123.dkr.ecr.us-east-1.amazonaws.com/v2/app/tags/list?n=1000", link)
    assert resolved.endswith(f"?last={token}&n=1000")
    assert str(URL(resolved, encoded=True)) == resolved  # what aiohttp will send


def test_query_only_link_keeps_path() -> None:
    assert resolve(BASE, "?last=b&n=2") == "https://reg.example:5000/v2/_catalog?last=b&n=2"


@pytest.mark.parametrize(
    ("target", "same"),
    [
        ("https://reg.example:5000/v2/_catalog?last=x", True),
        ("https://REG.example:5000/v2/x", True),
        ("/v2/_catalog?last=x", True),
        ("https://reg.example/v2/x", False),  # other port
        ("http://reg.example:5000/v2/x", False),  # other scheme
        ("https://evil.example:5000/v2/x", False),
        ("//evil.example:5000/v2/x", False),  # scheme-relative: another host
        ("ftp://reg.example:5000/v2/x", False),
        ("javascript:alert(1)", False),
    ],
)
def test_same_origin_after_resolution(target: str, same: bool) -> None:
    assert same_origin(resolve(BASE, target), BASE) is same


def test_default_ports_compare_equal() -> None:
    assert same_origin("https://r.example/v2/", "https://r.example:443/v2/x")
    assert same_origin("http://r.example:80/v2/", "http://r.example/v2/x")


_query_chars = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~%=&+/:@!$'()*,;",
    min_size=1,
    max_size=60,
)


@given(_query_chars)
def test_query_preserved_byte_for_byte(query: str) -> None:
    target = f"/v2/repo/tags/list?{query}"
    link = next_link([f'<{target}>; rel="next"'])
    assert link == target
    resolved = resolve(BASE, link)
    assert resolved == f"https://reg.example:5000{target}"
    assert URL(resolved, encoded=True).raw_query_string == query
    assert same_origin(resolved, BASE)


@given(st.text(max_size=120))
def test_link_parser_never_raises_unexpectedly(text: str) -> None:
    with contextlib.suppress(ProtocolError):
        next_link([text])
