"""`regwatch registry …`: talk to one registry directly, for humans and for debugging.

`ping`, `catalog`, `tags` and `manifest` take the credential flags accounts use and print one item
per line (or a JSON document with `--json`). Errors go through the root command's handler:
`Error: <what> — <hint>` on stderr and exit 1. The password never appears in any output.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from regwatch.config.secrets import credentials_from_options
from regwatch.models import Endpoint, ImageConfig, ManifestInfo, Secret
from regwatch.reference import normalize_address, registry_name
from regwatch.registry import RegistryClient

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def connection_options(func: F) -> F:
    """The credential and TLS flags of an account, plus `--json`."""
    options = [
        click.option("--username", help="Registry user (GCR: _json_key, ECR: AWS)."),
        click.option(
            "--password",
            envvar="REGWATCH_REGISTRY_PASSWORD",
            help="Password (or set REGWATCH_REGISTRY_PASSWORD; better: --password-file).",
        ),
        click.option(
            "--password-file",
            type=click.Path(dir_okay=False, path_type=Path),
            help="File holding the password (whole file, surrounding whitespace trimmed).",
        ),
        click.option("--password-command", help="Shell command printing the password."),
        click.option(
            "--docker-config",
            type=click.Path(dir_okay=False, path_type=Path),
            help="A docker config.json to take credentials from (auths, credHelpers).",
        ),
        click.option("--insecure-registry", is_flag=True, help="Skip TLS verification."),
        click.option(
            "--ca-cert",
            type=click.Path(dir_okay=False, path_type=Path),
            help="PEM bundle of the CA that signed the registry's certificate.",
        ),
        click.option(
            "--client-timeout-millis",
            type=click.IntRange(min=1),
            default=60_000,
            show_default=True,
            help="Connect and read timeout per request.",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _client(address: str, opts: dict[str, Any], page_size: int = 100) -> RegistryClient:
    normalized = normalize_address(address)
    password = opts["password"]
    credentials = credentials_from_options(
        opts["username"],
        Secret(password) if password else None,
        opts["password_file"],
        opts["password_command"],
        opts["docker_config"],
        registry_name(normalized),
    )
    endpoint = Endpoint(
        address=normalized,
        insecure=opts["insecure_registry"],
        ca_cert=str(opts["ca_cert"]) if opts["ca_cert"] else None,
        timeout_ms=opts["client_timeout_millis"],
        paginate_size=page_size,
    )
    return RegistryClient(endpoint, credentials)


def _run(address: str, opts: dict[str, Any], call: Callable[[RegistryClient], Awaitable[T]],
         page_size: int = 100) -> T:  # fmt: skip
    async def main() -> T:
        async with _client(address, opts, page_size) as client:
            return await call(client)

    return asyncio.run(main())


def _emit(as_json: bool, document: dict[str, Any], lines: list[str]) -> None:
    if as_json:
        click.echo(json.dumps(document, indent=2, default=_json_default))
    else:
        for line in lines:
            click.echo(line)


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


@click.group()
def registry() -> None:
    """Query a registry directly (ping, catalog, tags, manifest)."""


@registry.command()
@click.argument("address")
@connection_options
def ping(address: str, as_json: bool, **opts: Any) -> None:
    """Check that ADDRESS answers the v2 API and accepts the credentials."""

    async def call(client: RegistryClient) -> str:
        await client.ping()
        return client.auth_mode

    mode = _run(address, opts, call)
    name = registry_name(address)
    _emit(as_json, {"registry": name, "ok": True, "auth": mode}, [f"OK {name} (auth: {mode})"])


@registry.command()
@click.argument("address")
@click.option("--page-size", type=click.IntRange(1, 10_000), default=100, show_default=True,
              help="n= of each page (paginateSize).")  # fmt: skip
@connection_options
def catalog(address: str, page_size: int, as_json: bool, **opts: Any) -> None:
    """List the repositories of ADDRESS (/v2/_catalog, every page)."""
    names = _run(address, opts, lambda client: client.catalog(), page_size)
    _emit(as_json, {"registry": registry_name(address), "repositories": names}, names)


@registry.command()
@click.argument("address")
@click.argument("repository")
@click.option("--page-size", type=click.IntRange(1, 10_000), default=100, show_default=True,
              help="n= of each page (paginateSize).")  # fmt: skip
@connection_options
def tags(address: str, repository: str, page_size: int, as_json: bool, **opts: Any) -> None:
    """List the tags of REPOSITORY on ADDRESS (every page)."""
    names = _run(address, opts, lambda client: client.tags(repository), page_size)
    document = {"registry": registry_name(address), "repository": repository, "tags": names}
    _emit(as_json, document, names)


@registry.command()
@click.argument("address")
@click.argument("repository")
@click.argument("reference")
@click.option("--config/--no-config", "with_config", default=True, show_default=True,
              help="Also read an image manifest's config (created, labels).")  # fmt: skip
@connection_options
def manifest(
    address: str, repository: str, reference: str, with_config: bool, as_json: bool, **opts: Any
) -> None:
    """Show the manifest REFERENCE (tag or digest) of REPOSITORY: digest, media type, platforms
    of an index, and the image config's creation date and labels."""

    async def call(client: RegistryClient) -> tuple[ManifestInfo, ImageConfig | None]:
        info = await client.get_manifest(repository, reference)
        config = None
        if with_config and info.config_digest:
            config = await client.get_image_config(repository, info.config_digest)
        return info, config

    info, config = _run(address, opts, call)
    document: dict[str, Any] = {
        "registry": registry_name(address),
        "repository": repository,
        "reference": reference,
        **asdict(info),
        "config": asdict(config) if config else None,
    }
    _emit(as_json, document, _manifest_lines(info, config))


def _manifest_lines(info: ManifestInfo, config: ImageConfig | None) -> list[str]:
    lines = [f"digest {info.digest}", f"mediaType {info.media_type}"]
    if info.size is not None:
        lines.append(f"size {info.size}")
    if info.config_digest:
        lines.append(f"config {info.config_digest}")
    lines += [f"platform {p.platform} {p.digest}" for p in info.platforms]
    lines += [f"annotation {key}={value}" for key, value in sorted(info.annotations.items())]
    if config is not None:
        if config.created is not None:
            lines.append(f"created {config.created.isoformat()}")
        if config.os or config.architecture:
            lines.append(f"os/arch {config.os or '?'}/{config.architecture or '?'}")
        lines += [f"label {key}={value}" for key, value in sorted(config.labels.items())]
    return lines
