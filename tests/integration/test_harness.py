"""Tests of the test harness itself, with plain aiohttp (never regwatch code)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from yarl import URL

from harness import (
    ACCEPT_MANIFESTS,
    KINDS,
    PASSWORD,
    USERNAME,
    FaultProxy,
    HarnessError,
    ImagePusher,
    PushedImage,
    RegistryHandle,
    RegistryProcess,
    TokenServer,
    fault_rules,
)

# --- helpers ------------------------------------------------------------------------------------


def client(handle: RegistryHandle) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=handle.ssl_context() or True))


async def auth_headers(
    session: aiohttp.ClientSession, handle: RegistryHandle, scope: str
) -> dict[str, str]:
    """What a client would send after the challenge: Basic, or a Bearer token for `scope`."""
    creds = {
        "Authorization": aiohttp.encode_basic_auth(handle.username or "", handle.password or "")
    }
    if handle.mode == "basic":
        return creds
    if handle.mode == "token":
        ts = handle.token_server
        assert ts is not None
        query = {"service": ts.service, "scope": scope}
        async with session.get(ts.realm, params=query, headers=creds) as resp:
            assert resp.status == 200
            token = (await resp.json())["token"]
        return {"Authorization": f"Bearer {token}"}
    return {}


def decode(handle: RegistryHandle, token: str) -> dict[str, Any]:
    ts = handle.token_server
    assert ts is not None
    cert = x509.load_pem_x509_certificate(ts.rootcertbundle.read_bytes())
    return jwt.decode(token, cert.public_key(), algorithms=["ES256"], audience=ts.service)  # type: ignore[arg-type]


async def fetch(session: aiohttp.ClientSession, url: str, **kwargs: Any) -> bytes:
    async with session.get(url, **kwargs) as resp:
        return await resp.read()


@pytest.fixture
async def anon_session(registry_anonymous: RegistryHandle) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


# --- registries ---------------------------------------------------------------------------------


async def test_v2_answers_with_the_right_challenge(registry_any: RegistryHandle) -> None:
    handle = registry_any
    assert handle.url == f"{'https' if handle.tls else 'http'}://{handle.host}"
    assert (handle.ca_cert is not None) == handle.tls
    async with client(handle) as session:
        async with session.get(f"{handle.url}/v2/") as resp:
            challenge = resp.headers.get("WWW-Authenticate")
            status = resp.status
        if handle.mode == "anonymous":
            assert status == 200
            assert challenge is None
            return
        assert status == 401
        if handle.mode == "basic":
            assert challenge == 'Basic realm="regwatch-test-registry"'
        else:
            ts = handle.token_server
            assert ts is not None
            assert ts.realm.startswith("https://" if handle.tls else "http://")
            assert challenge == f'Bearer realm="{ts.realm}",service="{ts.service}"'
        headers = await auth_headers(session, handle, "")
        async with session.get(f"{handle.url}/v2/", headers=headers) as resp:
            assert resp.status == 200


async def test_wrong_basic_password_is_refused(registry_basic: RegistryHandle) -> None:
    async with client(registry_basic) as session:
        auth = {"Authorization": aiohttp.encode_basic_auth(USERNAME, PASSWORD + "x")}
        async with session.get(f"{registry_basic.url}/v2/", headers=auth) as resp:
            assert resp.status == 401


@pytest.mark.parametrize("kind", KINDS)
async def test_pushed_image_heads_back(
    registry_any: RegistryHandle, unique_name: str, kind: str
) -> None:
    repo = f"{unique_name}img"
    async with ImagePusher(registry_any) as pusher:
        image = await pusher.push(repo, "v1", kind=kind, labels={"team": "a b"})
    async with client(registry_any) as session:
        headers = await auth_headers(session, registry_any, f"repository:{repo}:pull")
        headers["Accept"] = ACCEPT_MANIFESTS
        url = f"{registry_any.url}/v2/{repo}/manifests/v1"
        async with session.head(url, headers=headers) as resp:
            assert resp.status == 200
            assert resp.headers["Docker-Content-Digest"] == image.digest
            assert resp.headers["Content-Type"] == image.media_type
        is_index = kind in ("oci-index", "docker-list")
        assert set(image.platforms) == ({"linux/amd64", "linux/arm64"} if is_index else set())
        assert (image.config_digest is None) == is_index
        for child in image.platforms.values():
            child_url = f"{registry_any.url}/v2/{repo}/manifests/{child}"
            async with session.head(child_url, headers=headers) as resp:
                assert resp.status == 200
                assert resp.headers["Docker-Content-Digest"] == child


async def test_image_content_carries_created_labels_and_annotations(
    registry_anonymous: RegistryHandle, unique_name: str
) -> None:
    repo = f"{unique_name}content"
    created = dt.datetime(2023, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
    async with ImagePusher(registry_anonymous) as pusher:
        oci = await pusher.push(
            repo, "oci", kind="oci", labels={"a": "1"}, created=created, annotations={"k": "v"}
        )
        same1 = await pusher.push(repo, "s1", created=created, salt="fixed")
        same2 = await pusher.push(repo, "s2", created=created, salt="fixed")
        fresh = await pusher.push(repo, "f1", created=created)
    assert same1.digest == same2.digest != fresh.digest
    async with aiohttp.ClientSession() as session:
        base = f"{registry_anonymous.url}/v2/{repo}"
        async with session.get(f"{base}/blobs/{oci.config_digest}") as resp:
            config = json.loads(await resp.read())
        async with session.get(
            f"{base}/manifests/oci", headers={"Accept": ACCEPT_MANIFESTS}
        ) as resp:
            raw = await resp.read()
    assert config["created"] == "2023-05-06T07:08:09Z"
    assert config["config"]["Labels"] == {"a": "1"}
    assert json.loads(raw)["annotations"] == {"k": "v"}
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == oci.digest
    assert raw == oci.manifest


async def test_tag_and_delete(registry_token: RegistryHandle, unique_name: str) -> None:
    repo = f"{unique_name}td"
    async with ImagePusher(registry_token) as pusher:
        image = await pusher.push(repo, "v1", kind="docker-list")
        await pusher.tag(repo, "v1", "v2")
        async with client(registry_token) as session:
            scope = f"repository:{repo}:pull"
            headers = await auth_headers(session, registry_token, scope)
            tags_url = f"{registry_token.url}/v2/{repo}/tags/list"
            async with session.get(tags_url, headers=headers) as resp:
                assert sorted((await resp.json())["tags"]) == ["v1", "v2"]
            await pusher.delete(repo, image.digest)
            async with session.get(tags_url, headers=headers) as resp:
                assert (await resp.json())["tags"] is None


async def test_populate_makes_repositories_times_tags(
    registry_anonymous: RegistryHandle, unique_name: str
) -> None:
    async with ImagePusher(registry_anonymous) as pusher:
        images = await pusher.populate(3, 4, prefix=unique_name)
        unique = await pusher.populate(2, 2, prefix=f"{unique_name}u", unique=True)
    assert len(images) == 12
    assert {(i.repository, i.tag) for i in images} == {
        (f"{unique_name}repo{r:04d}", f"v{t:04d}") for r in range(3) for t in range(4)
    }
    assert len({i.digest for i in images}) == 4  # tag j is the same image in every repository
    assert len({i.digest for i in unique}) == 4
    async with aiohttp.ClientSession() as session:
        # the session's registry holds other tests' repositories: list from just before ours
        # (a catalog page is 100 names, and ours may sort beyond the first page)
        catalog = f"{registry_anonymous.url}/v2/_catalog"
        after = {"last": unique_name.rstrip("/"), "n": "100"}
        async with session.get(catalog, params=after) as resp:
            repos = [r for r in (await resp.json())["repositories"] if r.startswith(unique_name)]
        assert len(repos) == 5
        tags_url = f"{registry_anonymous.url}/v2/{unique_name}repo0002/tags/list"
        async with session.get(tags_url) as resp:
            assert sorted((await resp.json())["tags"]) == ["v0000", "v0001", "v0002", "v0003"]


def test_sync_push_helper(
    registry_basic_tls: RegistryHandle,
    unique_name: str,
    push_images: Callable[..., list[PushedImage]],
) -> None:
    images = push_images(registry_basic_tls, f"{unique_name}sync", ["a", "b"], kind="oci")
    assert [i.tag for i in images] == ["a", "b"]
    assert images[0].digest != images[1].digest


def test_private_registry_with_extra_config_stops_cleanly(
    registry_factory: Callable[..., RegistryHandle],
) -> None:
    handle = registry_factory(extra_config={"catalog": {"maxentries": 2}})
    assert json.loads(handle.config_path.read_text())["catalog"] == {"maxentries": 2}  # type: ignore[union-attr]

    async def ask(n: int) -> int:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{handle.url}/v2/_catalog?n={n}") as resp,
        ):
            return resp.status

    assert asyncio.run(ask(2)) == 200
    assert asyncio.run(ask(3)) == 400  # maxentries from extra_config is in force
    process = handle.process
    assert process is not None
    process.down()
    assert not process.running
    process.up()
    assert asyncio.run(ask(2)) == 200
    process.stop()
    assert not process.running
    assert not handle.storage_dir.exists()


def test_missing_binary_fails_loudly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(HarnessError, match="scripts/setup"):
        RegistryProcess("anonymous").start()


# --- token server -------------------------------------------------------------------------------


async def test_token_server_grants_exactly_the_asked_scopes(registry_token: RegistryHandle) -> None:
    ts = registry_token.token_server
    assert ts is not None
    creds = {"Authorization": aiohttp.encode_basic_auth(USERNAME, PASSWORD)}
    bad = {"Authorization": aiohttp.encode_basic_auth(USERNAME, "x")}
    query = [
        ("service", ts.service),
        ("scope", "repository:a/b:pull,push"),
        ("scope", "registry:catalog:*"),
    ]
    async with aiohttp.ClientSession() as session:
        async with session.get(ts.realm, params=query, headers=creds) as resp:
            assert resp.status == 200
            body = await resp.json()
        async with session.get(ts.realm, params=query) as resp:
            anonymous = await resp.json()
        async with session.get(ts.realm, params=query, headers=bad) as resp:
            assert resp.status == 401
    claims = decode(registry_token, body["token"])
    assert claims["access"] == [
        {"type": "repository", "name": "a/b", "actions": ["pull", "push"]},
        {"type": "registry", "name": "catalog", "actions": ["*"]},
    ]
    assert claims["sub"] == USERNAME
    assert claims["iss"] == ts.issuer
    assert claims["exp"] - claims["iat"] == body["expires_in"] == 300
    assert {"nbf", "jti"} <= set(claims)
    assert decode(registry_token, anonymous["token"])["access"] == []
    assert [(r.method, r.user, r.status) for r in ts.requests] == [
        ("GET", USERNAME, 200),
        ("GET", None, 200),
        ("GET", USERNAME, 401),
    ]
    assert ts.requests[0].scopes == ("repository:a/b:pull,push", "registry:catalog:*")


async def test_registry_accepts_token_only_for_its_scope(
    registry_token_tls: RegistryHandle, unique_name: str
) -> None:
    repo, other = f"{unique_name}mine", f"{unique_name}other"
    async with ImagePusher(registry_token_tls) as pusher:
        await pusher.push(repo, "v1")
        await pusher.push(other, "v1")
    async with client(registry_token_tls) as session:
        headers = await auth_headers(session, registry_token_tls, f"repository:{repo}:pull")
        base = registry_token_tls.url
        async with session.get(f"{base}/v2/{repo}/tags/list", headers=headers) as resp:
            assert resp.status == 200
        async with session.get(f"{base}/v2/{other}/tags/list", headers=headers) as resp:
            assert resp.status == 401
            assert 'error="insufficient_scope"' in resp.headers["WWW-Authenticate"]
        async with session.get(f"{base}/v2/_catalog", headers=headers) as resp:
            assert resp.status == 401


async def test_token_server_oauth_post_and_knobs(registry_token: RegistryHandle) -> None:
    ts = registry_token.token_server
    assert ts is not None
    form = {
        "grant_type": "password",
        "username": USERNAME,
        "password": PASSWORD,
        "service": ts.service,
        "scope": "repository:x:pull registry:catalog:*",
        "client_id": "regwatch-tests",
        "access_type": "offline",
    }
    ts.users["someone else"] = "x"
    ts.refuse_get = True
    ts.token_field = "both"
    ts.issued_at = False
    ts.expires_in = 42
    async with aiohttp.ClientSession() as session:
        async with session.get(ts.realm, params={"scope": "repository:x:pull"}) as resp:
            assert resp.status == 404
        async with session.post(ts.realm, data=form) as resp:
            assert resp.status == 200
            body = await resp.json()
        async with session.post(ts.realm, data={**form, "password": "nope"}) as resp:
            assert resp.status == 401
        refresh = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"],
                   "client_id": "c", "scope": "repository:y:pull"}  # fmt: skip
        async with session.post(ts.realm, data=refresh) as resp:
            refreshed = await resp.json()
        ts.refuse_get = False
        async with session.get(ts.realm, params={"scope": "repository:x:pull"}) as resp:
            both = await resp.json()
    assert "token" not in body
    assert "issued_at" not in body
    assert body["expires_in"] == 42
    assert [a["name"] for a in decode(registry_token, body["access_token"])["access"]] == [
        "x",
        "catalog",
    ]
    assert decode(registry_token, refreshed["access_token"])["sub"] == USERNAME
    assert both["token"] == both["access_token"]
    assert [r.status for r in ts.requests] == [404, 200, 401, 200, 200]
    assert len(ts.issued()) == 3


async def test_anonymous_pull_knob(registry_token: RegistryHandle) -> None:
    ts = registry_token.token_server
    assert ts is not None
    ts.allow_anonymous_pull = True
    async with aiohttp.ClientSession() as session:
        params = {"service": ts.service, "scope": "repository:p/q:pull,push"}
        async with session.get(ts.realm, params=params) as resp:
            token = (await resp.json())["token"]
    assert decode(registry_token, token)["access"] == [
        {"type": "repository", "name": "p/q", "actions": ["pull"]}
    ]


def test_token_server_knobs_are_reset_between_tests(registry_token: RegistryHandle) -> None:
    ts = registry_token.token_server
    assert ts is not None
    # The previous tests changed these; the autouse fixture put them back.
    assert (ts.refuse_get, ts.token_field, ts.expires_in, ts.allow_anonymous_pull) == (
        False,
        "token",
        300,
        False,
    )
    assert ts.requests == []
    assert ts.users == {USERNAME: PASSWORD}


def test_kid_is_the_libtrust_fingerprint(registry_token: RegistryHandle) -> None:
    ts = registry_token.token_server
    assert ts is not None
    header = jwt.get_unverified_header(ts.issue(USERNAME, []))
    cert = x509.load_pem_x509_certificate(ts.rootcertbundle.read_bytes())
    der = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    assert header["kid"].split(":") == [digest[i : i + 4] for i in range(0, 48, 4)]
    assert header["alg"] == "ES256"


# --- fault proxy --------------------------------------------------------------------------------


@pytest.fixture
def proxy(
    registry_anonymous: RegistryHandle, fault_proxy_factory: Callable[..., FaultProxy]
) -> FaultProxy:
    return fault_proxy_factory(registry_anonymous)


async def test_proxy_forwards_and_records(
    proxy: FaultProxy, anon_session: aiohttp.ClientSession
) -> None:
    url = URL(f"{proxy.url}/v2/_catalog?n=1&last=a%2Fb", encoded=True)  # kept as is, not requoted
    async with anon_session.get(url) as resp:
        assert resp.status == 200
        assert resp.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    async with anon_session.get(f"{proxy.url}/v2/nope/tags/list") as resp:
        assert resp.status == 404
    assert proxy.requests == [
        ("GET", "/v2/_catalog?n=1&last=a%2Fb", 200),
        ("GET", "/v2/nope/tags/list", 404),
    ]
    assert proxy.count("GET", r"/tags/list") == 1
    async with anon_session.get(f"{proxy.url}/v2/nope/tags/list?n=5&last=b") as resp:
        assert resp.status == 404
    assert proxy.count("GET", r"/tags/list$") == 2  # searched in the path without the query
    assert proxy.count(path_regex=r"last=b") == 1  # or in path and query
    assert proxy.count("HEAD") == 0


async def test_proxy_forwards_the_raw_query_unchanged(
    proxy: FaultProxy, anon_session: aiohttp.ClientSession
) -> None:
    raw = "/v2/_catalog?last=a%2Fb%7E&n=1&odd=%3d%20+x"
    async with FaultProxy(proxy.url) as front:  # front -> proxy -> registry
        async with anon_session.get(URL(f"{front.url}{raw}", encoded=True)) as resp:
            assert resp.status == 200
        assert front.requests == [("GET", raw, 200)]
    assert proxy.requests == [("GET", raw, 200)]  # what the second hop received


async def test_status_fault_with_retry_after_then_recovers(
    proxy: FaultProxy, anon_session: aiohttp.ClientSession
) -> None:
    proxy.add(fault_rules.status(429, retry_after="1", path=r"^/v2/$", times=2))
    statuses = []
    for _ in range(3):
        async with anon_session.get(f"{proxy.url}/v2/") as resp:
            statuses.append((resp.status, resp.headers.get("Retry-After")))
    assert statuses == [(429, "1"), (429, "1"), (200, None)]


async def test_status_fault_with_custom_challenge(
    proxy: FaultProxy, anon_session: aiohttp.ClientSession
) -> None:
    challenge = 'Bearer realm="http://127.0.0.2:9/token",service="x"'
    proxy.add(fault_rules.status(401, headers={"WWW-Authenticate": challenge}, method="HEAD"))
    async with anon_session.get(f"{proxy.url}/v2/") as resp:
        assert resp.status == 200  # method does not match
    async with anon_session.head(f"{proxy.url}/v2/") as resp:
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"] == challenge


async def test_reset_fault(proxy: FaultProxy, anon_session: aiohttp.ClientSession) -> None:
    # aiohttp silently retries an idempotent request once after a disconnect: reset twice.
    proxy.add(fault_rules.reset(path="/v2/", times=2))
    with pytest.raises(aiohttp.ClientConnectionError):
        await fetch(anon_session, f"{proxy.url}/v2/")
    async with anon_session.get(f"{proxy.url}/v2/") as resp:
        assert resp.status == 200
    assert [r.status for r in proxy.requests] == [0, 0, 200]


async def test_slow_body_fault(proxy: FaultProxy, anon_session: aiohttp.ClientSession) -> None:
    proxy.add(fault_rules.slow_body(0.3))
    start = time.monotonic()
    async with anon_session.get(f"{proxy.url}/v2/_catalog") as resp:
        headers_at = time.monotonic() - start
        await resp.read()
        body_at = time.monotonic() - start
    assert headers_at < 0.25
    assert body_at >= 0.3


async def test_slow_body_fault_trips_a_read_timeout(
    proxy: FaultProxy, anon_session: aiohttp.ClientSession
) -> None:
    proxy.add(fault_rules.slow_headers(0.5))
    timeout = aiohttp.ClientTimeout(sock_read=0.1)
    with pytest.raises(asyncio.TimeoutError):
        await fetch(anon_session, f"{proxy.url}/v2/", timeout=timeout)


async def test_truncate_fault(
    proxy: FaultProxy, registry_anonymous: RegistryHandle, unique_name: str,
    anon_session: aiohttp.ClientSession,
) -> None:  # fmt: skip
    repo = f"{unique_name}trunc"
    async with ImagePusher(registry_anonymous) as pusher:
        await pusher.push(repo, "v1")
    proxy.add(fault_rules.truncate(path="/manifests/"))
    url = f"{proxy.url}/v2/{repo}/manifests/v1"
    with pytest.raises(aiohttp.ClientPayloadError):
        await fetch(anon_session, url, headers={"Accept": ACCEPT_MANIFESTS})
    assert proxy.requests[-1].status == 200


async def test_malformed_json_fault(proxy: FaultProxy, anon_session: aiohttp.ClientSession) -> None:
    proxy.add(fault_rules.malformed_json(path="/_catalog"))
    async with anon_session.get(f"{proxy.url}/v2/_catalog") as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        raw = await resp.read()
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)


async def test_paginate_tags(
    proxy: FaultProxy, registry_anonymous: RegistryHandle, unique_name: str,
    anon_session: aiohttp.ClientSession,
) -> None:  # fmt: skip
    repo = f"{unique_name}pages"
    tags = ["b", "a", "e", "c", "d"]
    async with ImagePusher(registry_anonymous) as pusher:
        for tag in tags:
            await pusher.push(repo, tag, salt="same")
    proxy.add(fault_rules.paginate_tags(2))
    pages, links = await follow(anon_session, proxy.url, f"/v2/{repo}/tags/list")
    assert pages == [["a", "b"], ["c", "d"], ["e"]]
    assert links[0] == f'</v2/{repo}/tags/list?n=2&last=b>; rel="next"'
    pages, _ = await follow(anon_session, proxy.url, f"/v2/{repo}/tags/list?n=1&last=c")
    assert pages == [["d"], ["e"]]
    async with anon_session.get(f"{proxy.url}/v2/{repo}/tags/list?n=x") as resp:
        assert resp.status == 400


async def follow(
    session: aiohttp.ClientSession, base: str, path: str
) -> tuple[list[list[str]], list[str]]:
    pages: list[list[str]] = []
    links: list[str] = []
    while path and len(pages) < 10:
        async with session.get(f"{base}{path}") as resp:
            pages.append((await resp.json())["tags"])
            link = resp.headers.get("Link", "")
        links.append(link)
        path = link[1 : link.index(">")] if link else ""
    return pages, links


async def test_link_loop_and_foreign_link(
    proxy: FaultProxy, anon_session: aiohttp.ClientSession
) -> None:
    proxy.add(fault_rules.link_foreign("evil.invalid:8443", scheme="https", path="/_catalog"))
    proxy.add(fault_rules.link_loop(path="/_catalog"))
    url = f"{proxy.url}/v2/_catalog?n=1"
    async with anon_session.get(url) as resp:
        assert resp.headers["Link"] == '<https://evil.invalid:8443/v2/_catalog?n=1>; rel="next"'
    for _ in range(2):
        async with anon_session.get(url) as resp:
            assert resp.headers["Link"] == '</v2/_catalog?n=1>; rel="next"'


async def test_rate_limit_headers_decorate_other_answers(
    proxy: FaultProxy, anon_session: aiohttp.ClientSession
) -> None:
    proxy.add(fault_rules.rate_limit_headers("100;w=21600", 7))
    proxy.add(fault_rules.status(503, path="/_catalog"))
    async with anon_session.get(f"{proxy.url}/v2/_catalog") as resp:
        assert resp.status == 503
        assert resp.headers["RateLimit-Remaining"] == "7"
    async with anon_session.get(f"{proxy.url}/v2/") as resp:
        assert resp.status == 200
        assert resp.headers["RateLimit-Limit"] == "100;w=21600"
    proxy.clear()
    async with anon_session.get(f"{proxy.url}/v2/") as resp:
        assert "RateLimit-Limit" not in resp.headers
    assert len(proxy.requests) == 1


async def test_push_through_proxy_to_tls_upstream(
    registry_anonymous_tls: RegistryHandle, unique_name: str
) -> None:
    async with FaultProxy.for_registry(registry_anonymous_tls) as proxy:
        via_proxy = dataclasses.replace(
            registry_anonymous_tls, url=proxy.url, host=proxy.host, tls=False, ca_cert=None
        )
        async with ImagePusher(via_proxy) as pusher:
            image = await pusher.push(f"{unique_name}via", "v1", kind="oci")
        # The registry's upload Location pointed back at the proxy: the PUT went through it.
        assert proxy.count("PUT", r"/blobs/uploads/") >= 1
        assert proxy.count("PUT", r"/manifests/v1$") == 1
        async with aiohttp.ClientSession() as session:
            url = f"{proxy.url}/v2/{unique_name}via/manifests/v1"
            async with session.head(url, headers={"Accept": ACCEPT_MANIFESTS}) as resp:
                assert resp.status == 200
                assert resp.headers["Docker-Content-Digest"] == image.digest
                assert int(resp.headers["Content-Length"]) == len(image.manifest)


async def test_token_realm_through_a_fault_proxy(
    registry_factory: Callable[..., RegistryHandle], unique_name: str
) -> None:
    with TokenServer({USERNAME: PASSWORD}) as ts:
        async with FaultProxy(ts.url) as proxy:
            handle = registry_factory("token", token_server=ts, token_realm=f"{proxy.url}/token")
            proxy.add(fault_rules.status(503, path="^/token$"))
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{handle.url}/v2/") as resp:
                    assert f'realm="{proxy.url}/token"' in resp.headers["WWW-Authenticate"]
                with pytest.raises(HarnessError, match="HTTP 503"):
                    async with ImagePusher(handle) as pusher:
                        await pusher.push(f"{unique_name}r", "v1")
            async with ImagePusher(handle) as pusher:
                await pusher.push(f"{unique_name}r", "v1")
            assert [r.status for r in proxy.requests] == [503, 200]
            assert [r.status for r in ts.requests] == [200]


async def test_registry_notifications_via_extra_config(
    registry_factory: Callable[..., RegistryHandle], unique_name: str
) -> None:
    received: list[dict[str, Any]] = []

    async def sink(request: web.Request) -> web.Response:
        received.extend((await request.json())["events"])
        return web.Response()

    app = web.Application()
    app.router.add_post("/events", sink)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/events"
        endpoint = {"name": "t", "url": url, "timeout": "2s", "threshold": 3, "backoff": "100ms"}
        handle = registry_factory(extra_config={"notifications": {"endpoints": [endpoint]}})
        async with ImagePusher(handle) as pusher:
            image = await pusher.push(f"{unique_name}n", "v1")
        for _ in range(100):
            pushes = [e for e in received if e["action"] == "push" and e["target"].get("tag")]
            if pushes:
                break
            await asyncio.sleep(0.05)
        assert [(e["target"]["tag"], e["target"]["digest"]) for e in pushes] == [
            ("v1", image.digest)
        ]
    finally:
        await runner.cleanup()
