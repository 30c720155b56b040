"""The Docker Registry account and provider node, as Halyard and Clouddriver define them.

Field names (as YAML keys), defaults and exclusion rules are upstream's (`spinnaker.md` §1.1);
`caCert` is ours. Keys regwatch does not know are kept (`extra="allow"`) so that a Halyard file
survives a round trip. Everything here is pure: reading password files or contacting the
registry happens in `regwatch.config.secrets` and `regwatch.config.validate`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    SerializationInfo,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from regwatch.errors import ConfigError, RegwatchError
from regwatch.models import CredentialSource, Endpoint, Secret
from regwatch.reference import normalize_address, registry_name

NAME_PATTERN = re.compile(r"^[a-z0-9]+([-a-z0-9]*[a-z0-9])?$")
PASSWORD_SOURCES = ("password", "passwordFile", "passwordCommand", "dockerconfigFile")
REVEAL = {"reveal_secrets": True}  # serialization context that writes real passwords (file only)


def _to_secret(value: object) -> Secret | None:
    if value is None or isinstance(value, Secret):
        return value
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return Secret(str(value))
    raise ValueError("must be a string")


def _from_secret(value: Secret, info: SerializationInfo) -> str:
    context = info.context if isinstance(info.context, Mapping) else {}
    return value.reveal() if context.get("reveal_secrets") else Secret.MASK


SecretField = Annotated[
    Secret,
    PlainValidator(_to_secret),
    PlainSerializer(_from_secret),
    WithJsonSchema({"type": "string", "writeOnly": True}),
]


class ConfigNode(BaseModel):
    """Base of the halconfig nodes: camelCase keys, unknown keys kept, inputs never echoed."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="allow",
        hide_input_in_errors=True,
        validate_assignment=True,
    )


class Permissions(ConfigNode):
    """Fiat roles: `permissions: {READ: [roles], WRITE: [roles]}`."""

    read: list[str] = Field(default_factory=list, alias="READ")
    write: list[str] = Field(default_factory=list, alias="WRITE")


class DockerRegistryAccount(ConfigNode):
    """One `providers.dockerRegistry.accounts[]` entry."""

    name: str
    environment: str | None = None
    account_type: str | None = None
    address: str
    username: str | None = None
    password: SecretField | None = None
    password_file: str | None = None
    password_command: str | None = None
    dockerconfig_file: str | None = None
    email: str | None = None
    repositories: list[str] = Field(default_factory=list)
    repositories_regex: str | None = None
    catalog_file: str | None = None
    skip: list[str] = Field(default_factory=list)
    cache_threads: int = Field(1, ge=1, le=64)
    cache_interval_seconds: int = Field(30, ge=1, le=86_400)
    client_timeout_millis: int = Field(60_000, ge=1, le=3_600_000)
    paginate_size: int = Field(100, ge=1, le=10_000)
    track_digests: bool = False
    inspect_digests: bool = False
    sort_tags_by_date: bool = False
    insecure_registry: bool = False
    ca_cert: str | None = None
    permissions: Permissions = Field(default_factory=Permissions)
    required_group_membership: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError(
                f"{value!r} is not a valid account name — use lower-case letters, digits and "
                "dashes, starting and ending with a letter or digit"
            )
        return value

    @field_validator("address")
    @classmethod
    def _normalise_address(cls, value: str) -> str:
        try:
            return normalize_address(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("repositories", "skip", "required_group_membership")
    @classmethod
    def _clean_list(cls, values: list[str]) -> list[str]:
        cleaned = [v.strip() for v in values if v and v.strip()]
        return list(dict.fromkeys(cleaned))

    @field_validator("repositories_regex")
    @classmethod
    def _check_regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(
                    f"{value!r} is not a valid regular expression: {exc} — it must match "
                    "whole repository names, e.g. 'team-a/.*'"
                ) from None
        return value

    @model_validator(mode="after")
    def _check_exclusions(self) -> DockerRegistryAccount:
        sources = [key for key in PASSWORD_SOURCES if self._is_set(key)]
        if len(sources) > 1:
            raise ValueError(
                f"{' and '.join(sources)} are both set — you can specify at most one of "
                "password, passwordFile, passwordCommand and dockerconfigFile"
            )
        if self.repositories and (self.catalog_file or self.repositories_regex):
            other = "catalogFile" if self.catalog_file else "repositoriesRegex"
            raise ValueError(
                f"repositories and {other} are both set — list repositories, or discover them "
                "from the catalog (optionally filtered by repositoriesRegex), not both"
            )
        return self

    def _is_set(self, alias: str) -> bool:
        value = getattr(self, _FIELD_BY_ALIAS[alias])
        return bool(value) if isinstance(value, str | Secret) else value is not None

    # --- views other layers need --------------------------------------------------------------
    @property
    def registry(self) -> str:
        """The address without its scheme (host[:port][/path]), as Clouddriver reports it."""
        return registry_name(self.address)

    @property
    def effective_environment(self) -> str:
        return self.environment or self.name

    @property
    def effective_account_type(self) -> str:
        return self.account_type or self.name

    @property
    def password_source(self) -> str | None:
        """The YAML key of the password source in use, if any."""
        return next((key for key in PASSWORD_SOURCES if self._is_set(key)), None)

    def endpoint(self) -> Endpoint:
        """How the registry client reaches this account's registry."""
        ca_cert = os.path.expanduser(self.ca_cert) if self.ca_cert else None
        return Endpoint(
            address=self.address,
            insecure=self.insecure_registry,
            ca_cert=ca_cert,
            timeout_ms=self.client_timeout_millis,
            paginate_size=self.paginate_size,
        )

    def credentials(self) -> CredentialSource | None:
        """The account's credential source, or None for anonymous access."""
        from regwatch.config.secrets import credentials_from_options

        return credentials_from_options(
            self.username,
            self.password,
            self.password_file,
            self.password_command,
            self.dockerconfig_file,
            self.registry,
        )

    def to_document(self, *, full: bool = False) -> dict[str, Any]:
        """The account as written to the file: real passwords, no None values.

        With `full=False` values equal to the defaults are left out as well.
        """
        data = self.model_dump(mode="json", exclude_none=True, context=REVEAL)
        return data if full else _without_defaults(data, _default_document())

    def to_public(self) -> dict[str, Any]:
        """Every field for display (`account get`): defaults resolved, secrets masked."""
        data = self.model_dump(mode="json")
        data["environment"] = self.effective_environment
        data["accountType"] = self.effective_account_type
        return data


_FIELD_BY_ALIAS = {
    (info.alias or name): name for name, info in DockerRegistryAccount.model_fields.items()
}
ACCOUNT_ALIASES = frozenset(_FIELD_BY_ALIAS)
ACCOUNT_KEYS = ACCOUNT_ALIASES | frozenset(_FIELD_BY_ALIAS.values())


class DockerRegistryProvider(ConfigNode):
    """The `providers.dockerRegistry` node."""

    enabled: bool = False
    primary_account: str | None = None
    accounts: list[DockerRegistryAccount] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_unique_names(self) -> DockerRegistryProvider:
        seen: set[str] = set()
        for account in self.accounts:
            if account.name in seen:
                raise ValueError(f"account {account.name!r} is defined twice")
            seen.add(account.name)
        return self

    def find(self, name: str) -> DockerRegistryAccount | None:
        return next((a for a in self.accounts if a.name == name), None)


def parse_account(data: Mapping[str, Any], *, where: str = "") -> DockerRegistryAccount:
    """Validate one account mapping; a ConfigError with a one-line message on failure."""
    try:
        return DockerRegistryAccount.model_validate(dict(data))
    except ValidationError as exc:
        name = data.get("name")
        label = f"account {name!r}" if isinstance(name, str) and name else "account"
        raise config_error(exc, f"{where}{label}") from None


def config_error(exc: ValidationError, subject: str) -> RegwatchError:
    """Turn a pydantic error into a one-line ConfigError (input values are never included)."""
    first = exc.errors(include_input=False, include_url=False)[0]
    loc = ".".join(str(part) for part in first["loc"])
    msg = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "missing":
        msg = "is required"
    message, _, hint = msg.partition(" — ")
    prefix = f"{subject}: {loc}" if loc else subject
    more = len(exc.errors()) - 1
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return ConfigError(f"{prefix}: {message}", hint=hint or None)


def to_plain(value: Any) -> Any:
    """A deep copy of a ruamel node (or any mapping/list tree) as plain dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    return value


def _default_document() -> dict[str, Any]:
    """Every field's default, as `to_document(full=True)` writes it."""
    return DockerRegistryAccount.model_construct(name="", address="").model_dump(
        mode="json", exclude_none=True
    )


def _without_defaults(data: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """`data` without the known keys whose value is the default (nested mappings too)."""
    kept: dict[str, Any] = {}
    for key, value in data.items():
        default = defaults.get(key, _MISSING)
        if isinstance(value, dict) and isinstance(default, dict):
            value = _without_defaults(value, default)
            if value:
                kept[key] = value
        elif value != default:
            kept[key] = value
    return kept


_MISSING = object()
