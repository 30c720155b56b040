"""TLS: verification on by default, a CA bundle, insecureRegistry (also for the token realm),
and the wrong scheme either way."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from harness import PushedImage, RegistryHandle
from regwatch.config.secrets import StaticCredentials
from regwatch.errors import ConfigError, ProtocolError, TLSError
from regwatch.models import Endpoint, Secret
from regwatch.registry import RegistryClient

Push = Callable[..., list[PushedImage]]


def credentials(handle: RegistryHandle) -> StaticCredentials | None:
    if not handle.username:
        return None
    return StaticCredentials(handle.username, Secret(handle.password or ""))


@pytest.mark.parametrize("mode", ["anonymous", "basic", "token"])
async def test_untrusted_certificate_fails_with_a_hint_to_use_ca_cert(
    mode: str, request: pytest.FixtureRequest
) -> None:
    handle: RegistryHandle = request.getfixturevalue(f"registry_{mode}_tls")
    async with RegistryClient(Endpoint(handle.url), credentials(handle)) as client:
        with pytest.raises(TLSError) as info:
            await client.ping()
    assert "--ca-cert" in str(info.value)
    assert info.value.registry == handle.host
    assert client.stats.retries == 0  # a certificate problem does not heal by retrying


@pytest.mark.parametrize("mode", ["anonymous", "basic", "token"])
async def test_insecure_registry_skips_verification_including_the_token_realm(
    mode: str, request: pytest.FixtureRequest, unique_name: str, push_images: Push
) -> None:
    handle: RegistryHandle = request.getfixturevalue(f"registry_{mode}_tls")
    repo = f"{unique_name}insecure"
    push_images(handle, repo, "v1")
    endpoint = Endpoint(handle.url, insecure=True)
    async with RegistryClient(endpoint, credentials(handle)) as client:
        await client.ping()
        assert await client.tags(repo) == ["v1"]
        if mode == "token":  # the realm is an https:// URL signed by the same untrusted CA
            assert client.stats.token_fetches >= 1


async def test_ca_cert_trusts_the_registry_and_its_token_realm(
    registry_token_tls: RegistryHandle, unique_name: str, push_images: Push
) -> None:
    repo = f"{unique_name}ca"
    push_images(registry_token_tls, repo, "v1")
    assert registry_token_tls.token_server is not None
    assert registry_token_tls.token_server.realm.startswith("https://")
    endpoint = Endpoint(registry_token_tls.url, ca_cert=registry_token_tls.ca_cert)
    async with RegistryClient(endpoint, credentials(registry_token_tls)) as client:
        assert await client.tags(repo) == ["v1"]


async def test_unreadable_ca_bundle_is_a_config_error(
    tmp_path: Path, registry_anonymous_tls: RegistryHandle
) -> None:
    with pytest.raises(ConfigError, match="cannot load the CA bundle"):
        RegistryClient(Endpoint(registry_anonymous_tls.url, ca_cert=str(tmp_path / "nope.pem")))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(ConfigError, match="cannot load the CA bundle"):
        RegistryClient(Endpoint(registry_anonymous_tls.url, ca_cert=str(garbage)))


async def test_https_to_a_plain_http_registry(registry_anonymous: RegistryHandle) -> None:
    url = registry_anonymous.url.replace("http://", "https://")
    async with RegistryClient(Endpoint(url)) as client:
        with pytest.raises(TLSError) as info:
            await client.ping()
    assert "http://" in str(info.value)


async def test_http_to_a_tls_registry(registry_anonymous_tls: RegistryHandle) -> None:
    url = registry_anonymous_tls.url.replace("https://", "http://")
    async with RegistryClient(Endpoint(url)) as client:
        with pytest.raises(ProtocolError) as info:
            await client.ping()
    assert "https://" in str(info.value)
