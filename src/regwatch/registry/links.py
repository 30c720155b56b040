"""Pure helpers for `Link: <…>; rel="next"` pagination (RFC 8288). No I/O.

Registries hand back the next page as a relative (`</v2/_catalog?last=a&n=2>`) or absolute URL.
The query must be kept byte for byte: ECR's `last=` is an opaque, already-encoded token and
re-encoding it breaks paging (upstream bugs clouddriver#6354/#6357). So URLs are resolved with
plain string operations (`urllib.parse.urljoin` never decodes or re-encodes), and the caller hands
the result to aiohttp as an already-encoded `yarl.URL`.

A next link is untrusted: `same_origin` lets the caller refuse one that points to another scheme,
host or port before credentials follow it.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urljoin, urlsplit

from regwatch.errors import ProtocolError

_DEFAULT_PORTS = {"http": 80, "https": 443}


def parse_links(value: str) -> list[tuple[str, dict[str, str]]]:
    """Every `<target>; param=value; …` in one header value, as (target, params)."""
    links: list[tuple[str, dict[str, str]]] = []
    pos = 0
    while True:
        start = value.find("<", pos)
        if start < 0:
            return links
        end = value.find(">", start + 1)
        if end < 0:
            return links
        target = value[start + 1 : end].strip()
        params, pos = _params(value, end + 1)
        links.append((target, params))


def _params(value: str, pos: int) -> tuple[dict[str, str], int]:
    """Parameters after a `<target>`, up to the comma that starts the next link."""
    params: dict[str, str] = {}
    while pos < len(value):
        while pos < len(value) and value[pos] in " \t":
            pos += 1
        if pos >= len(value) or value[pos] == ",":
            return params, pos + 1
        if value[pos] != ";":
            pos = _skip_to_separator(value, pos)
            continue
        pos += 1
        name_end = pos
        while name_end < len(value) and value[name_end] not in "=;,":
            name_end += 1
        name = value[pos:name_end].strip().lower()
        pos = name_end
        param_value = ""
        if pos < len(value) and value[pos] == "=":
            param_value, pos = _param_value(value, pos + 1)
        if name:
            params.setdefault(name, param_value)
    return params, pos


def _param_value(value: str, pos: int) -> tuple[str, int]:
    while pos < len(value) and value[pos] in " \t":
        pos += 1
    if pos < len(value) and value[pos] == '"':
        close = value.find('"', pos + 1)
        close = len(value) if close < 0 else close
        return value[pos + 1 : close], close + 1
    end = pos
    while end < len(value) and value[end] not in ";,":
        end += 1
    return value[pos:end].strip(), end


def _skip_to_separator(value: str, pos: int) -> int:
    while pos < len(value) and value[pos] not in ";,":
        pos += 1
    return pos


def next_link(values: Iterable[str]) -> str | None:
    """The target of the `rel="next"` link among all `Link` header values, as written.

    `rel` may list several relation types (`rel="next last"`). Two different next links are a
    protocol error: there is no telling which one the registry meant.
    """
    found: str | None = None
    for value in values:
        for target, params in parse_links(value):
            if "next" not in params.get("rel", "").lower().split():
                continue
            if found is not None and target != found:
                raise ProtocolError('the registry sent two different rel="next" links')
            found = target
    return found


def resolve(base_url: str, target: str) -> str:
    """`target` resolved against the URL of the page it came with, query untouched."""
    return urljoin(base_url, target)


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) with the default port filled in; raises ValueError if unusable."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {scheme!r}")
    port = parts.port or _DEFAULT_PORTS[scheme]
    return scheme, parts.hostname.lower(), port


def same_origin(url_a: str, url_b: str) -> bool:
    """True if both URLs have the same scheme, host and port."""
    try:
        return origin(url_a) == origin(url_b)
    except ValueError:
        return False
