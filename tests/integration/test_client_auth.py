"""Authentication against the real registry and the harness token server: token cache, expiry,
refresh on 401/400, the OAuth2 POST fallback, token fields, credential rotation."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from harness import PASSWORD, USERNAME, FaultProxy, PushedImage, RegistryHandle, fault_rules
from regwatch.config.secrets import (
    DockerConfigCredentials,
    PasswordCommandCredentials,
    PasswordFileCredentials,
    StaticCredentials,
)
from regwatch.errors import AuthError
from regwatch.models import CredentialSource, Endpoint, Secret
from regwatch.registry import RegistryClient

Push = Callable[..., list[PushedImage]]


class Clock:
    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now


def make_client(
    handle: RegistryHandle,
    credentials: CredentialSource | None = None,
    *,
    url: str | None = None,
    clock: Callable[[], float] | None = None,
) -> RegistryClient:
    if credentials is None and handle.username:
        credentials = StaticCredentials(handle.username, Secret(handle.password or ""))
    endpoint = Endpoint(url or handle.url, ca_cert=handle.ca_cert)
    if clock is None:
        return RegistryClient(endpoint, credentials)
    return RegistryClient(endpoint, credentials, clock=clock)


def scope_of(repo: str) -> tuple[str, ...]:
    return (f"repository:{repo}:pull",)


async def test_token_is_fetched_once_and_reused(
    registry_token: RegistryHandle, unique_name: str, push_images: Push
) -> None:
    repo = f"{unique_name}cached"
    push_images(registry_token, repo, ["v1", "v2"])
    server = registry_token.token_server
    assert server is not None
    server.clear_requests()
    async with make_client(registry_token) as client:
        for _ in range(3):
            assert sorted(await client.tags(repo)) == ["v1", "v2"]
        for tag in ("v1", "v2"):
            await client.head_manifest(repo, tag)
            await client.get_manifest(repo, tag)
        assert [r.scopes for r in server.requests] == [scope_of(repo)]
        assert client.stats.token_fetches == 1
        await client.catalog()
        assert [r.scopes for r in server.requests][-1] == ("registry:catalog:*",)
        assert client.stats.token_fetches == 2


async def test_token_is_renewed_before_it_expires(
    registry_token: RegistryHandle, unique_name: str, push_images: Push
) -> None:
    repo = f"{unique_name}expiring"
    push_images(registry_token, repo, "v1")
    server = registry_token.token_server
    assert server is not None
    server.expires_in = 60
    server.clear_requests()
    clock = Clock()
    async with make_client(registry_token, clock=clock) as client:
        await client.tags(repo)
        clock.now += 50  # inside the lifetime and before the renewal margin (6 s)
        await client.tags(repo)
        assert len(server.issued()) == 1
        clock.now += 5  # 55 s: within the last 10 % of the 60 s lifetime → renewed first
        await client.tags(repo)
        assert len(server.issued()) == 2
        # no request was refused on the way: renewal happened before expiry, not after a 401
        assert client.stats.responses[401] == 1  # the discovery of /v2/ only


@pytest.mark.parametrize("status", [401, 400])
async def test_refused_token_is_refreshed_once_and_the_request_retried(
    status: int,
    registry_token: RegistryHandle,
    unique_name: str,
    push_images: Push,
    fault_proxy_factory: Callable[..., FaultProxy],
) -> None:
    repo = f"{unique_name}refresh"
    push_images(registry_token, repo, "v1")
    server = registry_token.token_server
    assert server is not None
    proxy = fault_proxy_factory(registry_token)
    challenge = (
        f'Bearer realm="{server.realm}",service="{server.service}",'
        f'scope="repository:{repo}:pull",error="invalid_token"'
    )
    server.clear_requests()
    async with make_client(registry_token, url=proxy.url) as client:
        assert await client.tags(repo) == ["v1"]
        proxy.add(fault_rules.status(status, path="/tags/list$",
                                     headers={"WWW-Authenticate": challenge}))  # fmt: skip
        assert await client.tags(repo) == ["v1"]
        assert len(server.issued()) == 2  # the refused token was replaced once
        assert proxy.count("GET", "/tags/list") == 3
        proxy.add(fault_rules.status(status, path="/tags/list$", times=None,
                                     headers={"WWW-Authenticate": challenge}))  # fmt: skip
        proxy.clear_requests()
        with pytest.raises(AuthError) as info:
            await client.tags(repo)
        assert proxy.count("GET", "/tags/list") == 2  # one refresh, then give up
        assert info.value.repository == repo
        assert PASSWORD not in str(info.value)


@pytest.mark.parametrize("refusal", [True, 405])
async def test_oauth2_post_when_the_get_is_refused(
    refusal: bool | int, registry_token: RegistryHandle, unique_name: str, push_images: Push
) -> None:
    repo = f"{unique_name}post"
    push_images(registry_token, repo, "v1")
    server = registry_token.token_server
    assert server is not None
    server.refuse_get = refusal
    server.clear_requests()
    async with make_client(registry_token) as client:
        assert await client.tags(repo) == ["v1"]
        await client.catalog()
    methods = [(r.method, r.status) for r in server.requests]
    expected_refusal = 404 if refusal is True else refusal
    # the GET is tried once; after its refusal this realm gets the POST only
    assert methods == [("GET", expected_refusal), ("POST", 200), ("POST", 200)]
    assert all(r.user == USERNAME for r in server.requests)


async def test_access_token_field(
    registry_token: RegistryHandle, unique_name: str, push_images: Push
) -> None:
    repo = f"{unique_name}access"
    push_images(registry_token, repo, "v1")
    assert registry_token.token_server is not None
    registry_token.token_server.token_field = "access_token"
    async with make_client(registry_token) as client:
        assert await client.tags(repo) == ["v1"]


async def test_insufficient_scope_is_an_auth_error_naming_the_repository(
    registry_token: RegistryHandle, unique_name: str, push_images: Push
) -> None:
    repo = f"{unique_name}denied"
    push_images(registry_token, repo, "v1")
    assert registry_token.token_server is not None
    registry_token.token_server.allowed_actions = set()  # tokens grant nothing
    async with make_client(registry_token) as client:
        with pytest.raises(AuthError, match=f"refused access to repository {repo}") as info:
            await client.tags(repo)
    assert "pull access" in str(info.value)


async def test_anonymous_pull_through_anonymous_tokens(
    registry_factory: Callable[..., RegistryHandle], push_images: Push
) -> None:
    handle = registry_factory("token", allow_anonymous_pull=True)
    push_images(handle, "public/app", "v1")
    assert handle.token_server is not None
    handle.token_server.clear_requests()
    async with RegistryClient(Endpoint(handle.url)) as client:
        await client.ping()
        assert await client.tags("public/app") == ["v1"]
    requests = handle.token_server.requests
    assert [(r.method, r.user, r.status) for r in requests] == [("GET", None, 200)] * 2


@pytest.mark.parametrize("kind", ["command", "file"])
async def test_rotated_password_is_re_read_after_a_refusal(
    kind: str,
    tmp_path: Path,
    registry_factory: Callable[..., RegistryHandle],
    push_images: Push,
) -> None:
    handle = registry_factory("token")
    push_images(handle, "rot/app", "v1")
    server = handle.token_server
    assert server is not None
    server.clear_requests()
    secret_file = tmp_path / "password"
    secret_file.write_text(PASSWORD + "\n")
    runs = tmp_path / "runs"
    source: CredentialSource
    if kind == "command":
        source = PasswordCommandCredentials(USERNAME, f"echo x >> {runs}; cat {secret_file}")
    else:
        source = PasswordFileCredentials(USERNAME, secret_file, check_interval=3600)
    clock = Clock()
    async with make_client(handle, source, clock=clock) as client:
        assert await client.tags("rot/app") == ["v1"]
        server.users[USERNAME] = "rotated-" + PASSWORD  # the password changes behind our back
        secret_file.write_text("rotated-" + PASSWORD)
        clock.now += 3600  # the token expired: a new one is needed
        assert await client.tags("rot/app") == ["v1"]
    statuses = [r.status for r in server.requests]
    assert statuses == [200, 401, 200]  # the stale password was refused once, then re-read
    if kind == "command":
        assert len(runs.read_text().splitlines()) == 2


async def test_identity_token_from_docker_config_uses_the_refresh_grant(
    tmp_path: Path, registry_token: RegistryHandle, unique_name: str, push_images: Push
) -> None:
    repo = f"{unique_name}identity"
    push_images(registry_token, repo, "v1")
    server = registry_token.token_server
    assert server is not None
    form = {"grant_type": "password", "username": USERNAME, "password": PASSWORD,
            "client_id": "docker", "access_type": "offline", "service": server.service}  # fmt: skip
    async with aiohttp.ClientSession() as session, session.post(server.realm, data=form) as resp:
        refresh_token = (await resp.json())["refresh_token"]
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps({"auths": {registry_token.host: {"identitytoken": refresh_token}}})
    )
    server.clear_requests()
    source = DockerConfigCredentials(registry_token.host, config)
    async with make_client(registry_token, source) as client:
        assert await client.tags(repo) == ["v1"]
    assert [(r.method, r.user, r.status) for r in server.requests] == [("POST", USERNAME, 200)]


async def test_basic_registry_with_a_password_file(
    tmp_path: Path, registry_basic: RegistryHandle, unique_name: str, push_images: Push
) -> None:
    repo = f"{unique_name}basicfile"
    push_images(registry_basic, repo, "v1")
    path = tmp_path / "pw"
    path.write_text(f"  {PASSWORD}\n")
    async with make_client(registry_basic, PasswordFileCredentials(USERNAME, path)) as client:
        await client.ping()
        assert await client.tags(repo) == ["v1"]
        assert client.auth_mode == "basic"


async def test_basic_registry_re_runs_the_password_command_after_a_401(
    tmp_path: Path, registry_basic: RegistryHandle, unique_name: str, push_images: Push
) -> None:
    """The first run prints a stale password; the 401 makes the client run the command again."""
    repo = f"{unique_name}basiccmd"
    push_images(registry_basic, repo, "v1")
    runs = tmp_path / "runs"
    good = tmp_path / "good"
    good.write_text(PASSWORD)
    command = (
        f"echo x >> {runs}; "
        f"if [ $(wc -l < {runs}) -eq 1 ]; then echo stale-password; else cat {good}; fi"
    )
    source = PasswordCommandCredentials(USERNAME, command)
    async with make_client(registry_basic, source) as client:
        assert await client.tags(repo) == ["v1"]
        assert await client.tags(repo) == ["v1"]  # cached: no third run
    assert len(runs.read_text().splitlines()) == 2
    assert client.stats.responses[401] == 2  # discovery, then the stale password
