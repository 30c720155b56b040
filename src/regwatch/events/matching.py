"""Which sinks want an event: webhook filters and Echo's trigger rules. Pure.

A sink receives an event when the event passes the sink's `filters` and — if any trigger
delivers to the sink — at least one of those triggers matches. A sink no trigger points at
receives every event its filters let through (so `echoUrl`, with no filters, gets every event,
as Igor posts them, and Echo does its own matching).

Trigger rule (Echo's `DockerEventHandler`, `spinnaker.md` §5.2): account and repository equal,
exactly; a blank tag matches every tag except `latest`; otherwise the tag must match the whole
regular expression (Java's `String.matches`, i.e. `re.fullmatch`). Disabled triggers match
nothing.

Where matching happens: at delivery time. The store records one pending delivery per configured
sink for every event (`sink_names`), and the outbox worker asks `SinkSet.decide` before sending;
a delivery no trigger or filter wants is completed as `skipped`, with the reason, at once and
without any HTTP. Why not when recording: the store records a repository scan's events with one
list of sinks for the whole scan, and deciding at delivery time means a trigger added or fixed
while deliveries are still pending applies to them, and `regwatch events show` can say why a
sink did *not* get an event ("no trigger of sink 'ci' matches hub/app:latest").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from regwatch.config.settings import ServiceSettings
from regwatch.config.triggers import ECHO_SINK, TriggerSettings, WebhookFilters
from regwatch.models import Secret

LATEST = "latest"


@dataclass(frozen=True)
class Trigger:
    """A compiled trigger."""

    name: str
    account: str
    repository: str
    tag: re.Pattern[str] | None  # None: any tag but `latest`
    enabled: bool = True

    @classmethod
    def from_settings(cls, settings: TriggerSettings) -> Trigger:
        pattern = re.compile(settings.tag.strip()) if settings.tag.strip() else None
        return cls(settings.name, settings.account, settings.repository, pattern, settings.enabled)

    def matches(self, account: str, repository: str, tag: str) -> bool:
        if not (self.enabled and tag and account == self.account):
            return False
        if repository != self.repository:
            return False
        if self.tag is None:
            return tag != LATEST
        return self.tag.fullmatch(tag) is not None


def trigger_matches(trigger: TriggerSettings, account: str, repository: str, tag: str) -> bool:
    """Echo's rule for one configured trigger (see the module docstring)."""
    return Trigger.from_settings(trigger).matches(account, repository, tag)


@dataclass(frozen=True)
class Filters:
    """A compiled `WebhookFilters`: each empty part lets everything through."""

    accounts: frozenset[str] = frozenset()
    repositories: tuple[re.Pattern[str], ...] = ()
    tags: re.Pattern[str] | None = None
    kinds: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, filters: WebhookFilters) -> Filters:
        return cls(
            accounts=frozenset(filters.accounts),
            repositories=tuple(re.compile(p) for p in filters.repositories),
            tags=re.compile(filters.tags) if filters.tags else None,
            kinds=frozenset(filters.kinds),
        )

    def rejects(self, kind: str, account: str, repository: str, tag: str) -> str | None:
        """The name of the first filter that rejects the event, or None."""
        if self.kinds and kind not in self.kinds:
            return "kinds"
        if self.accounts and account not in self.accounts:
            return "accounts"
        if self.repositories and not any(p.fullmatch(repository) for p in self.repositories):
            return "repositories"
        if self.tags is not None and self.tags.fullmatch(tag) is None:
            return "tags"
        return None


@dataclass(frozen=True)
class Sink:
    """Where events go: a URL, a payload format, an optional secret and extra headers."""

    name: str
    url: str
    format: str = "echo"
    secret: Secret | None = None
    headers: tuple[tuple[str, str], ...] = ()
    filters: Filters = field(default_factory=Filters)
    triggers: tuple[Trigger, ...] = ()

    def decide(self, kind: str, account: str, repository: str, tag: str) -> str | None:
        """None when the sink wants the event, else why not (stored as the skip reason)."""
        rejected = self.filters.rejects(kind, account, repository, tag)
        if rejected:
            return f"filtered out by the {rejected} filter of sink {self.name!r}"
        if self.triggers and not any(t.matches(account, repository, tag) for t in self.triggers):
            return f"no trigger of sink {self.name!r} matches {account}/{repository}:{tag}"
        return None


class SinkSet:
    """The configured sinks, by name."""

    def __init__(self, sinks: Iterable[Sink]) -> None:
        self._sinks = {sink.name: sink for sink in sinks}

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> SinkSet:
        triggers: dict[str, list[Trigger]] = {}
        for item in settings.triggers:
            triggers.setdefault(item.sink, []).append(Trigger.from_settings(item))
        sinks: list[Sink] = []
        if settings.echo_url:
            sinks.append(
                Sink(ECHO_SINK, settings.echo_url, triggers=tuple(triggers.get("echo", ())))
            )
        for hook in settings.webhooks:
            name = hook.name or ""
            sinks.append(
                Sink(
                    name=name,
                    url=hook.url,
                    format=hook.format,
                    secret=hook.secret,
                    headers=tuple(hook.headers.items()),
                    filters=Filters.from_settings(hook.filters),
                    triggers=tuple(triggers.get(name, ())),
                )
            )
        return cls(sinks)

    @property
    def names(self) -> list[str]:
        return list(self._sinks)

    def get(self, name: str) -> Sink | None:
        return self._sinks.get(name)

    def __len__(self) -> int:
        return len(self._sinks)

    def sinks_for(self, kind: str, account: str, repository: str, tag: str) -> list[str]:
        """The names of the sinks that want this event."""
        return [
            name
            for name, sink in self._sinks.items()
            if sink.decide(kind, account, repository, tag) is None
        ]


def sink_names(settings: ServiceSettings) -> Sequence[str]:
    """What the indexer passes to `finish_repository_scan(sinks=…)`: every configured sink."""
    return settings.sink_names()
