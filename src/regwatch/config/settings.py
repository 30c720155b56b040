"""regwatch's own service settings: the top-level `regwatch:` key of the config file.

```yaml
regwatch:
  store: {url: sqlite:///~/.regwatch/regwatch.db}
  listen: {host: 127.0.0.1, port: 7002}
  echoUrl: http://echo:8089/
  webhooks: [{url: https://ci.example.com/hook, format: echo, secret: …}]
```
Each setting can be overridden by a `REGWATCH_*` environment variable (see `ENV_OVERRIDES`).
Keys regwatch does not know are kept.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, ValidationError

from regwatch.config.model import ConfigNode, SecretField, config_error, to_plain

DEFAULT_STORE_URL = "sqlite:///~/.regwatch/regwatch.db"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7002  # Clouddriver's port


class StoreSettings(ConfigNode):
    url: str = DEFAULT_STORE_URL


class ListenSettings(ConfigNode):
    host: str = DEFAULT_HOST
    port: int = Field(DEFAULT_PORT, ge=1, le=65_535)


class WebhookSettings(ConfigNode):
    """One webhook sink; the events layer reads the keys it defines beyond these."""

    url: str
    format: Literal["echo", "cloudevents"] = "echo"
    secret: SecretField | None = None
    headers: dict[str, str] = Field(default_factory=dict)


class ServiceSettings(ConfigNode):
    store: StoreSettings = Field(default_factory=StoreSettings)
    listen: ListenSettings = Field(default_factory=ListenSettings)
    echo_url: str | None = None
    webhooks: list[WebhookSettings] = Field(default_factory=list)


# environment variable -> path of the setting under `regwatch:`
ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "REGWATCH_STORE_URL": ("store", "url"),
    "REGWATCH_LISTEN_HOST": ("listen", "host"),
    "REGWATCH_LISTEN_PORT": ("listen", "port"),
    "REGWATCH_ECHO_URL": ("echoUrl",),
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
    try:
        return ServiceSettings.model_validate(merged)
    except ValidationError as exc:
        raise config_error(exc, f"{where}regwatch settings") from None
