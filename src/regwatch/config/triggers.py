"""Settings for events: webhook sinks, triggers, delivery (retries, rate caps), push notifications.

```yaml
regwatch:
  echoUrl: http://echo:8089/          # sink "echo": every event, as Igor posts them
  webhooks:
  - name: ci
    url: https://ci.example.com/hook
    format: echo                      # or cloudevents
    secret: s3cret                    # X-Regwatch-Signature: sha256=<HMAC-SHA256 of the body>
    headers: {X-Team: payments}
    filters: {accounts: [hub], repositories: ['team/.*'], tags: 'v.*', kinds: [tag_added]}
  triggers:                           # Echo's docker trigger rules, each delivering to a sink
  - {name: nginx, account: hub, repository: library/nginx, tag: '1\\.25\\..*', sink: ci}
  delivery:
    rateCap: {perMinute: 60, burst: 60}      # per account and sink; a burst is held, not dropped
    accountRateCaps: {hub: {perMinute: 10, burst: 10}}
    retryForHours: 24
  notifications: {token: …}           # shared secret for POST /webhooks/registry
```
Regular expressions are checked here, so a bad one is rejected when it is configured.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from regwatch.config.model import ConfigNode, SecretField

ECHO_SINK = "echo"
EventKind = Literal["tag_added", "digest_changed"]
SINK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_regex(value: str, what: str) -> str:
    """Compile `value` (stripped) or raise a ValueError that names `what` and gives a hint."""
    stripped = value.strip()
    try:
        re.compile(stripped)
    except re.error as exc:
        raise ValueError(
            f"{value!r} is not a valid regular expression for {what}: {exc} — it must match "
            r"the whole name, e.g. 'v1\..*'"
        ) from None
    return stripped


class WebhookFilters(ConfigNode):
    """Which events a webhook wants; an empty filter lets everything through."""

    accounts: list[str] = Field(default_factory=list)  # exact account names
    repositories: list[str] = Field(default_factory=list)  # full-match regular expressions
    tags: str | None = None  # a full-match regular expression (`latest` included)
    kinds: list[EventKind] = Field(default_factory=list)

    @field_validator("repositories")
    @classmethod
    def _check_repositories(cls, values: list[str]) -> list[str]:
        return [check_regex(v, "a webhook's repository filter") for v in values if v.strip()]

    @field_validator("tags")
    @classmethod
    def _check_tags(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return check_regex(value, "a webhook's tag filter")


class TriggerSettings(ConfigNode):
    """One trigger, with Echo's docker trigger rules (`spinnaker.md` §5.2).

    Account and repository match exactly; a blank tag matches any tag except `latest`, otherwise
    the tag must match the whole regular expression.
    """

    name: str
    account: str
    repository: str
    tag: str = ""
    sink: str
    enabled: bool = True

    @field_validator("name", "account", "repository", "sink")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("tag")
    @classmethod
    def _check_tag(cls, value: str) -> str:
        return check_regex(value, "a trigger's tag") if value.strip() else ""


class RateCap(ConfigNode):
    """A token bucket: `burst` deliveries at once, then `perMinute`."""

    per_minute: float = Field(60, gt=0, le=100_000)
    burst: int = Field(60, ge=1, le=100_000)


class DeliverySettings(ConfigNode):
    rate_cap: RateCap = Field(default_factory=RateCap)
    account_rate_caps: dict[str, RateCap] = Field(default_factory=dict)
    retry_base_seconds: float = Field(5.0, gt=0, le=3600)
    retry_max_seconds: float = Field(1800.0, gt=0, le=86_400)
    retry_for_hours: float = Field(24.0, gt=0, le=24 * 30)
    timeout_seconds: float = Field(10.0, gt=0, le=300)  # per attempt
    concurrency: int = Field(8, ge=1, le=256)  # attempts in flight
    # how long a claimed delivery (and the dispatcher role) stays with an instance that died
    lease_seconds: float = Field(30.0, ge=1, le=3600)

    @model_validator(mode="after")
    def _check_lease(self) -> DeliverySettings:
        if self.lease_seconds <= self.timeout_seconds:
            raise ValueError(
                "delivery.leaseSeconds must be longer than delivery.timeoutSeconds — a delivery "
                "still in flight when its lease ends would be sent twice"
            )
        return self

    def cap_for(self, account: str) -> RateCap:
        return self.account_rate_caps.get(account, self.rate_cap)


class NotificationSettings(ConfigNode):
    """Inbound push notifications: refused unless a token is configured."""

    token: SecretField | None = None


class WebhookSettings(ConfigNode):
    """One webhook sink (its name is what triggers and deliveries refer to)."""

    name: str | None = None  # default: webhook-1, webhook-2… by position (name them!)
    url: str
    format: Literal["echo", "cloudevents"] = "echo"
    secret: SecretField | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    filters: WebhookFilters = Field(default_factory=WebhookFilters)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str | None) -> str | None:
        if value is not None and not SINK_NAME.match(value):
            raise ValueError(
                f"{value!r} is not a valid webhook name — use letters, digits, '.', '_' and '-'"
            )
        return value

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return check_http_url(value)


def check_http_url(value: str) -> str:
    value = value.strip()
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError("must be an http:// or https:// URL")
    return value


class EventSettingsMixin(ConfigNode):
    """The event-related keys of `ServiceSettings`, with the checks that span them."""

    echo_url: str | None = None
    webhooks: list[WebhookSettings] = Field(default_factory=list)
    triggers: list[TriggerSettings] = Field(default_factory=list)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    notifications: NotificationSettings = Field(default_factory=NotificationSettings)

    @field_validator("echo_url")
    @classmethod
    def _check_echo_url(cls, value: str | None) -> str | None:
        return check_http_url(value) if value and value.strip() else None

    @model_validator(mode="after")
    def _check_names(self) -> EventSettingsMixin:
        names: set[str] = {ECHO_SINK} if self.echo_url else set()
        for index, webhook in enumerate(self.webhooks):
            if webhook.name is None:
                webhook.name = f"webhook-{index + 1}"
            if webhook.name == ECHO_SINK or webhook.name in names:
                raise ValueError(
                    f"webhooks: the name {webhook.name!r} is used twice — {ECHO_SINK!r} is "
                    "the echoUrl sink; give each webhook its own name"
                )
            names.add(webhook.name)
        seen: set[str] = set()
        for trigger in self.triggers:
            if trigger.name in seen:
                raise ValueError(f"triggers: the name {trigger.name!r} is used twice")
            seen.add(trigger.name)
            if trigger.sink not in names:
                known = ", ".join(sorted(names)) or "none"
                raise ValueError(
                    f"triggers: {trigger.name!r} delivers to {trigger.sink!r}, which is not a "
                    f"configured sink — configured sinks: {known}"
                )
        return self

    def sink_names(self) -> list[str]:
        """Every configured sink: `echo` when echoUrl is set, then the webhooks in order."""
        names = [ECHO_SINK] if self.echo_url else []
        return names + [w.name for w in self.webhooks if w.name]
