"""regwatch's own service settings: the top-level `regwatch:` key of the config file.

```yaml
regwatch:
  store: {url: sqlite:///~/.regwatch/regwatch.db}
  listen: {host: 127.0.0.1, port: 7002}
  echoUrl: http://echo:8089/
  webhooks: [{url: https://ci.example.com/hook, format: echo, secret: …}]
  eventRetentionDays: 30    # finished deliveries and old events are pruned after this
```
Each setting can be overridden by a `REGWATCH_*` environment variable (see `ENV_OVERRIDES`).
Keys regwatch does not know are kept.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from pydantic import Field, ValidationError

from regwatch.config.model import ConfigNode, config_error, to_plain
from regwatch.config.triggers import EventSettingsMixin, WebhookSettings
from regwatch.errors import ConfigError

__all__ = ["ServiceSettings", "WebhookSettings", "parse_settings"]

DEFAULT_STORE_URL = "sqlite:///~/.regwatch/regwatch.db"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7002  # Clouddriver's port
DEFAULT_EVENT_RETENTION_DAYS = 30.0
MIN_EVENT_RETENTION_DAYS = 1.0  # rate caps are seeded from the last minute's deliveries
MAX_EVENT_RETENTION_DAYS = 36_500.0
EVENT_RETENTION_ENV = "REGWATCH_EVENT_RETENTION_DAYS"


class StoreSettings(ConfigNode):
    url: str = DEFAULT_STORE_URL


class ListenSettings(ConfigNode):
    host: str = DEFAULT_HOST
    port: int = Field(DEFAULT_PORT, ge=1, le=65_535)


class ServiceSettings(EventSettingsMixin):
    """Also: echoUrl, webhooks, triggers, delivery, notifications (see config/triggers.py)."""

    store: StoreSettings = Field(default_factory=StoreSettings)
    listen: ListenSettings = Field(default_factory=ListenSettings)
    # finished deliveries and the events left without any are pruned after this (store/prune.py)
    event_retention_days: float = Field(
        DEFAULT_EVENT_RETENTION_DAYS, ge=MIN_EVENT_RETENTION_DAYS, le=MAX_EVENT_RETENTION_DAYS
    )

    @property
    def event_retention(self) -> timedelta:
        return timedelta(days=self.event_retention_days)


# environment variable -> path of the setting under `regwatch:`
ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "REGWATCH_STORE_URL": ("store", "url"),
    "REGWATCH_LISTEN_HOST": ("listen", "host"),
    "REGWATCH_LISTEN_PORT": ("listen", "port"),
    "REGWATCH_ECHO_URL": ("echoUrl",),
    "REGWATCH_NOTIFICATIONS_TOKEN": ("notifications", "token"),
}


def parse_settings(
    data: Mapping[str, Any] | None,
    *,
    environ: Mapping[str, str] | None = None,
    where: str = "",
) -> ServiceSettings:
    """Validate the `regwatch:` node, with `REGWATCH_*` overrides applied on top."""
    merged = to_plain(data or {})
    env = os.environ if environ is None else environ
    for variable, path in ENV_OVERRIDES.items():
        value = env.get(variable)
        if value:
            node = merged
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = value
    retention = _event_retention_days(env)
    if retention is not None:
        merged["eventRetentionDays"] = retention
    try:
        return ServiceSettings.model_validate(merged)
    except ValidationError as exc:
        raise config_error(exc, f"{where}regwatch settings") from None


def _event_retention_days(environ: Mapping[str, str]) -> float | None:
    """REGWATCH_EVENT_RETENTION_DAYS (a number of days, at least one), or None when unset."""
    raw = environ.get(EVENT_RETENTION_ENV, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{EVENT_RETENTION_ENV}={raw!r} is not a number of days") from None
    if not MIN_EVENT_RETENTION_DAYS <= value <= MAX_EVENT_RETENTION_DAYS:  # also NaN
        raise ConfigError(
            f"{EVENT_RETENTION_ENV} must be between {MIN_EVENT_RETENTION_DAYS:g} and "
            f"{MAX_EVENT_RETENTION_DAYS:g} days, not {raw}"
        )
    return value
