"""Pure response shaping: store records and accounts → Clouddriver's JSON, field for field.

Shapes (`reference/spinnaker.md` §4.1, §4.3; Clouddriver's `DockerRegistryImageLookupController`
and `CredentialsController`):

- an image: `repository, tag, account, registry, digest` [+ `commitId, buildNumber, branch` with
  `includeDetails`] + `artifact {name, type: "docker", version, reference, metadata {registry,
  labels}}`, where `labels` is `{}` unless `includeDetails` asks for them;
- an account, brief: `name, environment, accountType, cloudProvider, requiredGroupMembership,
  permissions, accountId` + `type, challengeDestructiveActions, primaryAccount`; expanded: the
  account's settings as well, but (unlike upstream) never `passwordCommand`, `passwordFile`,
  a username, a password or any other credential.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from json.encoder import encode_basestring as _quote
from typing import Any

from regwatch.api.responses import json_bytes
from regwatch.config.model import DockerRegistryAccount
from regwatch.models import TagRecord
from regwatch.store import TagOrder

CLOUD_PROVIDER = "dockerRegistry"
ARTIFACT_TYPE = "docker"
DETAIL_LABELS = ("commitId", "buildNumber", "branch")
BRIEF_KEYS = (
    "name",
    "environment",
    "accountType",
    "cloudProvider",
    "requiredGroupMembership",
    "permissions",
    "accountId",
)


def image_item(record: TagRecord, include_details: bool = False) -> dict[str, Any]:
    """One `images/find` result."""
    return _item(
        (record.account, record.registry, record.repository, record.tag, record.digest),
        record.labels if include_details else None,
    )


def image_items(records: list[TagRecord], include_details: bool = False) -> list[dict[str, Any]]:
    return [image_item(record, include_details) for record in records]


def row_items(
    rows: Iterable[tuple[Any, ...]], include_details: bool = False
) -> list[dict[str, Any]]:
    """`image_item` of each `find_image_rows` row: `(account, registry, repository, tag,
    digest)`, plus `labels` last with `include_details`. Same JSON, without the TagRecords."""
    return [_item(row, (row[5] or {}) if include_details else None) for row in rows]


def _item(row: tuple[Any, ...], labels: Mapping[str, str] | None) -> dict[str, Any]:
    """The item of `(account, registry, repository, tag, digest, ...)`; `labels` None: without
    the details (and `metadata.labels` empty)."""
    account, registry, repository, tag, digest = row[:5]
    item: dict[str, Any] = {
        "repository": repository,
        "tag": tag,
        "account": account,
        "registry": registry,
        "digest": digest,
    }
    if labels is not None:
        for key in DETAIL_LABELS:
            item[key] = labels.get(key)
    item["artifact"] = {
        "name": repository,
        "type": ARTIFACT_TYPE,
        "version": tag,
        "reference": f"{registry}/{repository}:{tag}",
        "metadata": {"registry": registry, "labels": dict(labels or {})},
    }
    return item


def rows_json(rows: Iterable[tuple[Any, ...]], include_details: bool = False) -> bytes:
    """`json_bytes(row_items(rows, include_details))`, written directly: each string is escaped
    once (JSON escapes character by character, so the escaped `reference` is the escaped parts
    joined) and put into a template of the item. ~0.04 ms for 50 items instead of ~0.14 ms for
    building the dicts and encoding them (measured; the unit tests check the bytes are equal)."""
    parts = []
    for row in rows:
        account, registry, repository, tag = (
            _quote(row[0]),
            _quote(row[1]),
            _quote(row[2]),
            _quote(row[3]),
        )
        digest = "null" if row[4] is None else _quote(row[4])
        details, labels = "", "{}"
        if include_details:
            found: Mapping[str, str] = row[5] or {}
            details = "".join(f',"{key}":{_json(found.get(key))}' for key in DETAIL_LABELS)
            labels = _json(dict(found))
        reference = f'"{registry[1:-1]}/{repository[1:-1]}:{tag[1:-1]}"'
        parts.append(
            f'{{"repository":{repository},"tag":{tag},"account":{account},'
            f'"registry":{registry},"digest":{digest}{details},"artifact":{{"name":{repository},'
            f'"type":"{ARTIFACT_TYPE}","version":{tag},"reference":{reference},'
            f'"metadata":{{"registry":{registry},"labels":{labels}}}}}}}'
        )
    return ("[" + ",".join(parts) + "]").encode("utf-8")


def _json(value: Any) -> str:
    return json_bytes(value).decode("utf-8")


def normalize_query(q: str | None) -> str | None:
    """Upstream matches `q` as the glob `*{q}*`: leading/trailing `*` add nothing to a substring
    search, and a `q` of only `*` (or blank) matches everything."""
    if q is None:
        return None
    stripped = q.strip().strip("*")
    return stripped or None


def tag_order(account: DockerRegistryAccount, sort: str | None) -> TagOrder:
    """Upstream: lexical, or newest first when the account sorts tags by date. `sort` (ours)
    overrides: lexical | semver | date."""
    if sort is not None:
        return sort  # type: ignore[return-value]  # validated by the route
    return "date" if account.sort_tags_by_date else "lexical"


def permissions(account: DockerRegistryAccount) -> dict[str, list[str]]:
    """Fiat permissions; `requiredGroupMembership` means READ and WRITE when none are given."""
    read, write = list(account.permissions.read), list(account.permissions.write)
    if not read and not write and account.required_group_membership:
        read = list(account.required_group_membership)
        write = list(account.required_group_membership)
    if not read and not write:
        return {}
    return {"READ": read, "WRITE": write}


def credentials_expanded(account: DockerRegistryAccount, primary: bool) -> dict[str, Any]:
    """`GET /credentials/{name}` (and each entry of `?expand=true`), credentials left out."""
    view: dict[str, Any] = {
        "name": account.name,
        "environment": account.effective_environment,
        "accountType": account.effective_account_type,
        "cloudProvider": CLOUD_PROVIDER,
        "requiredGroupMembership": list(account.required_group_membership),
        "permissions": permissions(account),
        "accountId": None,
        "address": account.address,
        "registry": account.registry,
        "v2Endpoint": f"{account.address}/v2",
        "email": account.email,
        "trackDigests": account.track_digests,
        "inspectDigests": account.inspect_digests,
        "sortTagsByDate": account.sort_tags_by_date,
        "cacheThreads": account.cache_threads,
        "cacheIntervalSeconds": account.cache_interval_seconds,
        "clientTimeoutMillis": account.client_timeout_millis,
        "paginateSize": account.paginate_size,
        "insecureRegistry": account.insecure_registry,
        "skip": list(account.skip),
        "catalogFile": account.catalog_file,
        "repositoriesRegex": account.repositories_regex,
        "enabled": True,
    }
    return _decorate(view, primary)


def credentials_brief(account: DockerRegistryAccount, primary: bool) -> dict[str, Any]:
    """One entry of `GET /credentials`."""
    full = credentials_expanded(account, primary)
    view = {key: full[key] for key in BRIEF_KEYS}
    return _decorate(view, primary)


def _decorate(view: dict[str, Any], primary: bool) -> dict[str, Any]:
    """What Clouddriver's CredentialsController adds to every rendered account."""
    view["type"] = CLOUD_PROVIDER
    view["challengeDestructiveActions"] = False
    view["primaryAccount"] = primary
    return view


def account_not_found(name: str) -> str:
    """Clouddriver's 404 message."""
    return f"Account does not exist (name: {name})"
