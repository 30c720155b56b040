"""Pure parser for `WWW-Authenticate` headers (RFC 7235 challenges). No I/O.

A header may hold several challenges (`Bearer realm="…",service="…", Basic realm="x"`) and a
response may carry several headers; `parse_challenges` takes them all. Parameter values may be
quoted (with backslash escapes) or bare; registries in the wild send bare realms that contain ':'
and '/', so a bare value runs up to the next comma or whitespace. Scheme and parameter names are
case-insensitive and come back lower-cased.

The parser never raises: garbage yields fewer (or no) challenges, and the caller decides what a
missing or unusable challenge means.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

_ALNUM = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~" + _ALNUM)
_TOKEN68_CHARS = frozenset("-._~+/" + _ALNUM)
_SPACE = " \t"


@dataclass(frozen=True)
class Challenge:
    """One authentication challenge: a scheme (lower-case) and its parameters."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)
    token68: str | None = None

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")

    @property
    def service(self) -> str | None:
        return self.params.get("service")

    @property
    def scopes(self) -> tuple[str, ...]:
        """The `scope` parameter split on spaces (several scopes share one parameter)."""
        return tuple(self.params.get("scope", "").split())

    @property
    def error(self) -> str | None:
        return self.params.get("error")


def parse_challenges(values: Iterable[str]) -> list[Challenge]:
    """Every challenge in every `WWW-Authenticate` value, in order."""
    found: list[Challenge] = []
    for value in values:
        found.extend(_Parser(value).challenges())
    return found


def find_challenge(challenges: Iterable[Challenge], scheme: str) -> Challenge | None:
    """The first challenge of `scheme` (case-insensitive), if any."""
    wanted = scheme.lower()
    return next((c for c in challenges if c.scheme == wanted), None)


class _Parser:
    """A cursor over one header value."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def challenges(self) -> list[Challenge]:
        result: list[Challenge] = []
        while True:
            self._skip(_SPACE + ",")
            if self.pos >= len(self.text):
                return result
            scheme = self._token()
            if not scheme:
                self._skip_to_comma()  # garbage: resynchronise on the next comma
                continue
            result.append(self._challenge_body(scheme.lower()))

    def _challenge_body(self, scheme: str) -> Challenge:
        """What follows a scheme: nothing, a token68, or a comma-separated list of parameters."""
        self._skip(_SPACE)
        token68 = self._token68()
        if token68 is not None:
            return Challenge(scheme, {}, token68)
        params: dict[str, str] = {}
        while self.pos < len(self.text):
            if not self._looks_like_param():
                break
            name = self._token().lower()
            self._skip(_SPACE)
            self.pos += 1  # the '='
            self._skip(_SPACE)
            value = self._value()
            params.setdefault(name, value)
            self._skip(_SPACE)
            if self._peek() == ",":
                self._skip(_SPACE + ",")
            elif not self._looks_like_param():
                self._skip_to_comma()  # junk after a value; a missing comma is forgiven
                self._skip(_SPACE + ",")
        return Challenge(scheme, params)

    # --- lexical helpers ---------------------------------------------------------------------
    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _skip(self, chars: str) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in chars:
            self.pos += 1

    def _skip_to_comma(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] != ",":
            if self.text[self.pos] == '"':
                self._quoted()
            else:
                self.pos += 1

    def _token(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _TOKEN_CHARS:
            self.pos += 1
        return self.text[start : self.pos]

    def _looks_like_param(self) -> bool:
        """True if the cursor is at `name BWS "="` (and not at the next challenge's scheme)."""
        save = self.pos
        try:
            if not self._token():
                return False
            self._skip(_SPACE)
            return self._peek() == "="
        finally:
            self.pos = save

    def _token68(self) -> str | None:
        """A token68 (`abc+/==`) ending at a comma, whitespace or the end; else None.

        `name=value` and `name = value` are parameters, not token68: a parameter wins whenever a
        value (anything but more '=', a comma or the end) follows the '='.
        """
        if self._looks_like_param():
            save = self.pos
            self._token()
            self._skip(_SPACE)
            self.pos += 1  # the '='
            self._skip(_SPACE)
            value_follows = self._peek() not in ("", ",", "=")
            self.pos = save
            if value_follows:
                return None
        start = end = self.pos
        while end < len(self.text) and self.text[end] in _TOKEN68_CHARS:
            end += 1
        if end == start:
            return None
        while end < len(self.text) and self.text[end] == "=":
            end += 1
        if self.text[end : end + 1] not in ("", ",", " ", "\t"):
            return None
        self.pos = end
        return self.text[start:end]

    def _value(self) -> str:
        if self._peek() == '"':
            return self._quoted()
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in ', \t"':
            self.pos += 1
        return self.text[start : self.pos]

    def _quoted(self) -> str:
        """A quoted-string starting at the cursor; an unterminated one runs to the end."""
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            self.pos += 1
            if char == "\\" and self.pos < len(self.text):
                out.append(self.text[self.pos])
                self.pos += 1
            elif char == '"':
                break
            else:
                out.append(char)
        return "".join(out)


def format_challenge(challenge: Challenge) -> str:
    """The header form of a challenge (quoted values). Used by tests and the fault proxy."""
    if challenge.token68 is not None:
        return f"{challenge.scheme} {challenge.token68}"
    params = ",".join(f'{k}="{_escape(v)}"' for k, v in challenge.params.items())
    return f"{challenge.scheme} {params}" if params else challenge.scheme


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
