"""RegistryClient against the real registry in all six setups (anonymous/basic/token, HTTP/TLS)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from harness import PASSWORD, PushedImage, RegistryHandle
from regwatch.config.secrets import StaticCredentials
from regwatch.errors import AuthError, NotFoundError, RegistryError
from regwatch.models import DOCKER_MANIFEST_V2, OCI_INDEX, OCI_MANIFEST, Endpoint, Secret
from regwatch.registry import RegistryClient, Transport

Push = Callable[..., list[PushedImage]]


def client_for(
    handle: RegistryHandle,
    *,
    password: str | None = None,
    anonymous: bool = False,
    paginate_size: int = 100,
    transport: Transport | None = None,
) -> RegistryClient:
    credentials = None
    if handle.username and not anonymous:
        credentials = StaticCredentials(handle.username, Secret(password or handle.password or ""))
    endpoint = Endpoint(handle.url, ca_cert=handle.ca_cert, paginate_size=paginate_size)
    return RegistryClient(endpoint, credentials, transport=transport)


def assert_no_secret(exc: BaseException, secret: str = PASSWORD) -> None:
    for text in (str(exc), repr(exc), repr(exc.args), str(getattr(exc, "hint", ""))):
        assert secret not in text


async def test_ping_catalog_tags_manifests_and_config(
    registry_any: RegistryHandle, unique_name: str, push_images: Push
) -> None:
    repo = f"{unique_name}app"
    [docker] = push_images(registry_any, repo, "v1", labels={"org.opencontainers.image.revision":
                                                             "abc123", "team": "core"})  # fmt: skip
    [oci] = push_images(registry_any, repo, "v2-oci", kind="oci")
    [index] = push_images(registry_any, repo, "multi", kind="oci-index")
    push_images(registry_any, f"{unique_name}other", ["a", "b"])

    async with client_for(registry_any, paginate_size=2) as client:
        await client.ping()
        expected_mode = {"anonymous": "anonymous", "basic": "basic", "token": "bearer"}
        assert client.auth_mode == expected_mode[registry_any.mode]

        catalog = await client.catalog()  # n=2: several pages through distribution's Link
        assert {repo, f"{unique_name}other"} <= set(catalog)
        assert catalog == sorted(catalog)
        assert sorted(await client.tags(repo)) == ["multi", "v1", "v2-oci"]

        head = await client.head_manifest(repo, "v1")
        assert (head.digest, head.media_type) == (docker.digest, DOCKER_MANIFEST_V2)
        assert head.size == len(docker.manifest)
        full = await client.get_manifest(repo, "v1")
        assert full.digest == docker.digest
        assert full.config_digest == docker.config_digest
        config = await client.get_image_config(repo, docker.config_digest or "")
        assert config.labels == {"org.opencontainers.image.revision": "abc123", "team": "core"}
        assert config.created == docker.created
        assert (config.os, config.architecture) == ("linux", "amd64")

        oci_info = await client.get_manifest(repo, "v2-oci")
        assert (oci_info.digest, oci_info.media_type) == (oci.digest, OCI_MANIFEST)

        index_head = await client.head_manifest(repo, "multi")
        assert (index_head.digest, index_head.media_type) == (index.digest, OCI_INDEX)
        index_info = await client.get_manifest(repo, "multi")
        assert index_info.is_index
        platforms = {f"{p.os}/{p.architecture}": p.digest for p in index_info.platforms}
        assert platforms == index.platforms
        assert [p.platform for p in index_info.platforms] == ["linux/amd64", "linux/arm64/v8"]

        by_digest = await client.get_manifest(repo, index.digest)
        assert by_digest.digest == index.digest
        assert client.stats.requests > 0
        assert client.stats.retries == 0


async def test_missing_repository_and_tag_name_what_is_missing(
    registry_any: RegistryHandle, unique_name: str, push_images: Push
) -> None:
    repo = f"{unique_name}present"
    push_images(registry_any, repo, "v1")
    async with client_for(registry_any) as client:
        with pytest.raises(NotFoundError) as missing_repo:
            await client.tags(f"{unique_name}absent")
        assert f"repository {unique_name}absent not found" in str(missing_repo.value)
        assert missing_repo.value.repository == f"{unique_name}absent"
        assert missing_repo.value.registry == registry_any.host
        with pytest.raises(NotFoundError, match=r"manifest .*present:nope not found") as tag:
            await client.head_manifest(repo, "nope")
        with pytest.raises(NotFoundError, match=r"manifest .*present:nope not found"):
            await client.get_manifest(repo, "nope")
        for exc in (missing_repo.value, tag.value):
            assert_no_secret(exc)


@pytest.mark.parametrize("mode", ["basic", "token"])
async def test_wrong_password_is_an_auth_error_with_a_hint(
    mode: str, request: pytest.FixtureRequest
) -> None:
    handle: RegistryHandle = request.getfixturevalue(f"registry_{mode}")
    wrong = "Wr0ng-" + PASSWORD
    async with client_for(handle, password=wrong) as client:
        with pytest.raises(AuthError) as info:
            await client.ping()
    assert "check the username and password" in str(info.value)
    assert info.value.registry == handle.host
    assert_no_secret(info.value, wrong)
    assert_no_secret(info.value)


@pytest.mark.parametrize("mode", ["basic", "token"])
async def test_no_credentials_for_a_protected_registry(
    mode: str, request: pytest.FixtureRequest, unique_name: str, push_images: Push
) -> None:
    handle: RegistryHandle = request.getfixturevalue(f"registry_{mode}")
    push_images(handle, f"{unique_name}private", "v1")
    async with client_for(handle, anonymous=True) as client:
        with pytest.raises(AuthError) as info:
            await client.tags(f"{unique_name}private")
    assert info.value.hint is not None
    assert "credentials" in str(info.value)


async def test_clients_share_one_transport(
    registry_anonymous: RegistryHandle, registry_token: RegistryHandle, push_images: Push,
    unique_name: str,
) -> None:  # fmt: skip
    push_images(registry_anonymous, f"{unique_name}a", "v1")
    push_images(registry_token, f"{unique_name}b", "v1")
    transport = Transport()
    try:
        async with client_for(registry_anonymous, transport=transport) as anon:
            assert await anon.tags(f"{unique_name}a") == ["v1"]
        # closing a client does not close a transport it was given
        async with client_for(registry_token, transport=transport) as token:
            assert await token.tags(f"{unique_name}b") == ["v1"]
        assert anon.stats.requests > 0
        assert token.stats.token_fetches >= 1
    finally:
        await transport.close()


@pytest.mark.parametrize(
    ("call", "args"),
    [("tags", ("../etc",)), ("tags", ("Upper/Case",)), ("head_manifest", ("ok", "bad tag")),
     ("get_manifest", ("ok", "sha256:zz")), ("get_image_config", ("ok", "v1")),
     ("tags", ("ok\n",)), ("head_manifest", ("ok", "v1\n")), ("tags", ("a" * 256,))],
)  # fmt: skip
async def test_invalid_names_are_refused_before_any_request(
    registry_anonymous: RegistryHandle, call: str, args: tuple[Any, ...]
) -> None:
    async with client_for(registry_anonymous) as client:
        with pytest.raises(RegistryError):
            await getattr(client, call)(*args)
        assert client.stats.requests == 0
