"""The service in-process (uvicorn on 127.0.0.1, real store, real registries): what each endpoint
answers after real scans, hot reload, scan requests, a registry going down, metrics.

The subprocess variant (`regwatch serve` itself, SIGTERM) is tests/e2e/test_serve_*.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import random
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from api_support import serve_app

from harness import PushedImage, RegistryHandle, fault_rules
from harness.clouddriver import expected_item
from regwatch.api import create_app
from regwatch.api.cache import DEFAULT_TTL, ResponseCache
from regwatch.config.halconfig import edit_config
from regwatch.config.model import DockerRegistryAccount
from regwatch.indexer.reload import load_snapshot
from regwatch.service import Service
from regwatch.store import Store, open_store


@dataclass
class Running:
    service: Service
    base: str
    config: Path
    session: aiohttp.ClientSession
    cache: ResponseCache

    async def get(self, path: str, **params: Any) -> tuple[int, Any]:
        async with self.session.get(self.base + path, params=params) as resp:
            if path == "/metrics":
                return resp.status, await resp.text()
            return resp.status, await resp.json(content_type=None)

    async def post(self, path: str) -> tuple[int, Any]:
        async with self.session.post(self.base + path) as resp:
            return resp.status, await resp.json(content_type=None)

    async def health(self) -> dict[str, Any]:
        status, body = await self.get("/health")
        assert status == 200
        return dict(body)

    async def state(self, account: str) -> str | None:
        return (await self.health())["accounts"].get(account, {}).get("state")


@contextlib.asynccontextmanager
async def serving(
    config: Path, store_url: str, *, cache_seconds: float = DEFAULT_TTL
) -> AsyncIterator[Running]:
    snapshot = load_snapshot(config, environ={})
    service = Service(
        snapshot,
        open_store(store_url),
        rng=random.Random(3),
        poll_interval=0.1,
        environ={},
        stop_timeout=10,
    )
    app = create_app(service, cache_seconds=cache_seconds)
    async with serve_app(app) as base, aiohttp.ClientSession() as session:
        yield Running(service, base, config, session, app.state.cache)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


def add_account(config: Path, name: str, address: str, **fields: Any) -> None:
    account = DockerRegistryAccount.model_validate({"name": name, "address": address, **fields})
    with edit_config(config) as cfg:
        cfg.add_account(account)
        cfg.set_enabled(True)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return tmp_path / "config"


@dataclass
class Anonymous:
    """The session's anonymous registry (repositories under a unique prefix) and the config."""

    handle: RegistryHandle
    prefix: str
    push: Callable[..., list[PushedImage]]
    config: Path
    store_url: str

    def repository(self, name: str, tags: list[str]) -> str:
        """Push `tags` to the repository `name` (under the prefix); its full name."""
        repo = f"{self.prefix}{name}"
        self.push(self.handle, repo, tags)
        return repo

    def images(self, repo: str, tags: list[str], **kwargs: Any) -> list[PushedImage]:
        """Push `tags` to the repository `repo` (a full name); the pushed images."""
        return self.push(self.handle, repo, tags, **kwargs)

    def add(self, account: str, *repositories: str, **fields: Any) -> None:
        """Add an account for those repositories, scanned hourly unless `fields` say otherwise
        (scans here are requested)."""
        add_account(
            self.config,
            account,
            self.handle.url,
            repositories=list(repositories),
            **{"cacheIntervalSeconds": 3600, **fields},
        )

    def serving(self, **kwargs: Any) -> contextlib.AbstractAsyncContextManager[Running]:
        return serving(self.config, self.store_url, **kwargs)


@pytest.fixture
def anonymous(
    registry_anonymous: RegistryHandle,
    unique_name: str,
    push_images: Callable[..., list[PushedImage]],
    config: Path,
    store_url: str,
) -> Anonymous:
    return Anonymous(registry_anonymous, unique_name, push_images, config, store_url)


async def tags_of(svc: Running, account: str, repository: str) -> Any:
    return (await svc.get("/dockerRegistry/images/tags", account=account, repository=repository))[1]


async def repository_lookups(
    svc: Running, account: str, repository: str
) -> tuple[list[str], list[str]]:
    """The repository's tags (images/tags) and the tags of its images (images/find): the two
    cached lookups."""
    tags = await tags_of(svc, account, repository)
    _, found = await svc.get(
        "/dockerRegistry/images/find", account=account, repository=repository, count="10"
    )
    return tags, [item["tag"] for item in found]


async def scans_of(svc: Running, account: str) -> Any:
    return (await svc.health())["accounts"][account]["scans"]


async def test_every_endpoint_answers_what_the_registry_holds(anonymous: Anonymous) -> None:
    registry_anonymous, unique_name = anonymous.handle, anonymous.prefix
    app, web = f"{unique_name}app", f"{unique_name}web"
    labels = {"commitId": "c0ffee", "buildNumber": "17", "branch": "main"}
    images = anonymous.images(app, ["1.0", "1.1", "latest"], labels=labels)
    images += anonymous.images(web, ["2.0"])
    anonymous.add("local", app, web, inspectDigests=True, cacheIntervalSeconds=300)
    async with anonymous.serving() as svc:
        await eventually(lambda: _is(svc.state("local"), "ok"))
        by_ref = {
            (i.repository, i.tag): expected_item(registry_anonymous, "local", i) for i in images
        }

        status, found = await svc.get(
            "/dockerRegistry/images/find", account="local", repository=app
        )
        assert status == 200
        assert found == [by_ref[(app, t)] for t in ("1.0", "1.1", "latest")]

        _, found = await svc.get("/dockerRegistry/images/find", q=f"{unique_name}web:2")
        assert found == [by_ref[(web, "2.0")]]
        _, gate = await svc.get("/images/find", provider="dockerRegistry", q=f"{unique_name}web")
        assert gate == found

        _, detailed = await svc.get(
            "/dockerRegistry/images/find",
            account="local",
            repository=app,
            tag="1.1",
            includeDetails="true",
        )
        plain = by_ref[(app, "1.1")]
        item = {key: plain[key] for key in ("repository", "tag", "account", "registry", "digest")}
        item.update(commitId="c0ffee", buildNumber="17", branch="main")
        metadata = {"registry": registry_anonymous.host, "labels": labels}
        item["artifact"] = {**plain["artifact"], "metadata": metadata}
        assert detailed == [item]
        assert list(detailed[0]) == list(item)  # Clouddriver's field order too

        _, two = await svc.get("/dockerRegistry/images/find", q=unique_name, count=2)
        assert len(two) == 2  # count after the filters

        for path in ("/dockerRegistry/images/tags", "/images/tags"):
            status, tags = await svc.get(path, account="local", repository=app)
            assert (status, tags) == (200, ["1.0", "1.1", "latest"])
        assert (await svc.get("/dockerRegistry/images/tags", account="nope", repository=app))[
            1
        ] == []
        assert (await svc.get("/dockerRegistry/images/find", account="nope"))[1] == []

        _, brief = await svc.get("/credentials")
        assert brief == [
            {
                "name": "local",
                "environment": "local",
                "accountType": "local",
                "cloudProvider": "dockerRegistry",
                "requiredGroupMembership": [],
                "permissions": {},
                "accountId": None,
                "type": "dockerRegistry",
                "challengeDestructiveActions": False,
                "primaryAccount": True,
            }
        ]
        _, full = await svc.get("/credentials/local")
        assert (full["address"], full["registry"]) == (
            registry_anonymous.url,
            registry_anonymous.host,
        )
        assert full["v2Endpoint"] == f"{registry_anonymous.url}/v2"
        assert (await svc.get("/credentials", expand="true"))[1] == [full]
        status, missing = await svc.get("/credentials/nope")
        assert (status, missing["message"]) == (404, "Account does not exist (name: nope)")

        status, account_status = await svc.get("/dockerRegistry/accounts/local/status")
        assert status == 200
        assert (account_status["repositories"], account_status["tags"]) == (2, 4)
        assert account_status["lastFinishedRun"]["status"] == "ok"
        assert account_status["lastFinishedRun"]["requests"] > 0
        assert account_status["staleRepositories"] == []


async def _is(value: Awaitable[Any], expected: Any) -> bool:
    return await value == expected


async def test_bad_parameters_are_400_in_the_one_error_shape(store_url: str, config: Path) -> None:
    add_account(config, "local", "http://127.0.0.1:9", cacheIntervalSeconds=3600)
    async with serving(config, store_url) as svc:
        cases = [
            ("/dockerRegistry/images/find", {"count": "many"}, 400, "query parameter 'count'"),
            ("/dockerRegistry/images/find", {"count": "-1"}, 400, "query parameter 'count'"),
            ("/dockerRegistry/images/find", {"includeDetails": "perhaps"}, 400, "includeDetails"),
            (
                "/dockerRegistry/images/tags",
                {"account": "local"},
                400,
                "query parameter 'repository' is required",
            ),
            (
                "/dockerRegistry/images/tags",
                {"account": "local", "repository": "r", "sort": "random"},
                400,
                "query parameter 'sort'",
            ),
            ("/images/find", {"provider": "aws"}, 400, "provider 'aws' is not served here"),
            ("/no/such/route", {}, 404, "Not Found"),
            ("/dockerRegistry/accounts/nope/status", {}, 404, "Account does not exist"),
        ]
        for path, params, code, message in cases:
            status, body = await svc.get(path, **params)
            assert status == code, (path, params, body)
            assert set(body) >= {"timestamp", "status", "error", "message", "path"}
            assert body["status"] == code
            assert message in body["message"], body
            assert body["path"] == path
        status, body = await svc.post("/dockerRegistry/accounts/nope/scan")
        assert (status, body["message"]) == (404, "Account does not exist (name: nope)")


async def test_a_requested_scan_picks_up_a_new_tag_at_once(anonymous: Anonymous) -> None:
    repo = anonymous.repository("app", ["1.0"])
    anonymous.add("local", repo)
    async with anonymous.serving() as svc:
        await eventually(lambda: _is(svc.state("local"), "ok"))
        anonymous.repository("app", ["1.1"])
        status, body = await svc.post("/dockerRegistry/accounts/local/scan")
        assert status == 202
        assert body["account"] == "local"
        assert body["requested"] is True
        # well before the 1-hour interval
        await eventually(lambda: _is(tags_of(svc, "local", repo), ["1.0", "1.1"]), timeout=10)
        assert await scans_of(svc, "local") == 2


async def test_the_services_own_scan_invalidates_cached_lookups_at_once(
    anonymous: Anonymous,
) -> None:
    """Cached for up to an hour, yet the answers after a scan that landed a tag hold it."""
    repo = anonymous.repository("app", ["1.0"])
    anonymous.add("local", repo)
    async with anonymous.serving(cache_seconds=3600) as svc:
        await eventually(lambda: _is(svc.state("local"), "ok"))

        def lookups() -> Awaitable[tuple[list[str], list[str]]]:
            return repository_lookups(svc, "local", repo)

        assert await lookups() == (["1.0"], ["1.0"])
        assert await lookups() == (["1.0"], ["1.0"])  # now answered from the cache
        assert svc.cache.hits >= 2
        anonymous.repository("app", ["1.1"])
        await svc.post("/dockerRegistry/accounts/local/scan")
        await eventually(lambda: _is(scans_of(svc, "local"), 2), timeout=10)
        assert await lookups() == (["1.0", "1.1"], ["1.0", "1.1"])


async def test_cached_lookups_are_revalidated_and_see_another_processs_scan(
    anonymous: Anonymous,
) -> None:
    """Past `--cache-seconds`, an unchanged repository's answers are renewed with one stamp read
    (not recomputed); a scan by another process (`regwatch scan`, which this service's own
    invalidation never hears) shows at the first lookup after the TTL."""
    repo = anonymous.repository("app", ["1.0"])
    anonymous.add("local", repo)
    async with anonymous.serving(cache_seconds=0.5) as svc:
        await eventually(lambda: _is(svc.state("local"), "ok"))

        def lookups() -> Awaitable[tuple[list[str], list[str]]]:
            return repository_lookups(svc, "local", repo)

        assert await lookups() == (["1.0"], ["1.0"])
        await asyncio.sleep(0.6)
        assert await lookups() == (["1.0"], ["1.0"])
        assert svc.cache.revalidated == 2  # both entries renewed, not recomputed
        anonymous.repository("app", ["1.1"])
        env = {**os.environ, "REGWATCH_STORE_URL": anonymous.store_url}
        scan = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "regwatch", "scan", "local", "--config", str(anonymous.config),
            env=env, stdout=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        assert await scan.wait() == 0
        await asyncio.sleep(0.6)
        assert await lookups() == (["1.0", "1.1"], ["1.0", "1.1"])
        assert svc.cache.revalidated == 2


async def test_accounts_added_edited_and_deleted_in_the_file_apply_without_restart(
    anonymous: Anonymous, config: Path
) -> None:
    registry_anonymous = anonymous.handle
    first, second = anonymous.repository("one", ["a"]), anonymous.repository("two", ["b"])
    anonymous.add("one", first)
    async with anonymous.serving() as svc:
        await eventually(lambda: _is(svc.state("one"), "ok"))
        anonymous.add("two", second)

        async def two_served() -> bool:
            found = await svc.get("/dockerRegistry/images/find", account="two")
            return [(i["repository"], i["tag"]) for i in found[1]] == [(second, "b")]

        await eventually(two_served)
        assert [c["name"] for c in (await svc.get("/credentials"))[1]] == ["one", "two"]

        with edit_config(config) as cfg:  # edit: index `second` under account one as well
            edited = cfg.account("one").model_copy(update={"repositories": [first, second]})
            cfg.update_account(edited)

        async def one_has_both() -> bool:
            found = await svc.get("/dockerRegistry/images/find", account="one")
            return {i["repository"] for i in found[1]} == {first, second}

        await eventually(one_has_both)
        assert (await svc.get("/credentials/one"))[1]["registry"] == registry_anonymous.host

        with edit_config(config) as cfg:
            cfg.delete_account("two")

        async def two_gone() -> bool:
            return (await svc.get("/credentials/two"))[0] == 404

        await eventually(two_gone)
        await eventually(
            lambda: _is(svc.get("/dockerRegistry/images/find", account="two"), (200, []))
        )
        assert "two" not in await svc.service.store.call(Store.accounts)  # its data is deleted
        assert "two" not in (await svc.health())["accounts"]

        config.write_text(config.read_text().replace("accounts:", "accounts: [", 1))

        async def reports_error() -> bool:
            return (await svc.health())["config"]["error"] is not None

        await eventually(reports_error)
        health = await svc.health()
        assert health["status"] == "UP"
        assert "not valid YAML" in health["config"]["error"]
        assert [c["name"] for c in (await svc.get("/credentials"))[1]] == ["one"]  # last good


async def test_a_registry_that_goes_down_leaves_health_up_and_its_last_good_data_served(
    registry_factory: Callable[..., RegistryHandle],
    push_images: Callable[..., list[PushedImage]],
    store_url: str,
    config: Path,
) -> None:
    handle = registry_factory("anonymous")
    push_images(handle, "team/app", ["1.0", "2.0"])
    add_account(config, "flaky", handle.url, cacheIntervalSeconds=1, clientTimeoutMillis=2000)
    async with serving(config, store_url) as svc:
        await eventually(lambda: _is(svc.state("flaky"), "ok"))
        assert handle.process is not None
        handle.process.down()
        await eventually(lambda: _is(svc.state("flaky"), "failing"), timeout=30)
        health = await svc.health()
        assert health["status"] == "UP"
        assert health["accounts"]["flaky"]["lastError"]
        tags = await svc.get("/dockerRegistry/images/tags", account="flaky", repository="team/app")
        assert tags == (200, ["1.0", "2.0"])  # last good data
        status = (await svc.get("/dockerRegistry/accounts/flaky/status"))[1]
        assert status["state"] == "failing"
        assert status["consecutiveFailures"] >= 1
        assert status["lastSuccessAt"] is not None
        metrics = (await svc.get("/metrics"))[1]
        assert 'regwatch_account_consecutive_failures{account="flaky"}' in metrics

        handle.process.up()
        await svc.post("/dockerRegistry/accounts/flaky/scan")  # no need to sit out the backoff
        await eventually(lambda: _is(svc.state("flaky"), "ok"), timeout=30)


async def test_tags_newest_first_for_sort_tags_by_date_and_metrics_after_scans(
    anonymous: Anonymous,
) -> None:
    registry_anonymous = anonymous.handle
    repo = f"{anonymous.prefix}dated"
    base = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    for tag, days in (("2-mid", 1), ("3-new", 2), ("1-old", 0)):
        anonymous.images(repo, [tag], created=base + dt.timedelta(days=days))
    anonymous.add("dated", repo, sortTagsByDate=True)
    async with anonymous.serving() as svc:
        await eventually(lambda: _is(svc.state("dated"), "ok"))
        tags = (await svc.get("/dockerRegistry/images/tags", account="dated", repository=repo))[1]
        assert tags == ["3-new", "2-mid", "1-old"]
        lexical = await svc.get(
            "/dockerRegistry/images/tags", account="dated", repository=repo, sort="lexical"
        )
        assert lexical[1] == ["1-old", "2-mid", "3-new"]
        metrics = (await svc.get("/metrics"))[1]
        for line in (
            'regwatch_scans_total{account="dated",outcome="ok"} 1.0',
            'regwatch_tags_indexed{account="dated"} 3.0',
            'regwatch_tag_changes_total{account="dated",change="added"} 3.0',
            f'regwatch_registry_requests_total{{registry="{registry_anonymous.host}",status="200"}}',
            'regwatch_api_request_duration_seconds_count{method="GET",'
            'route="/dockerRegistry/images/tags",status="200"}',
            "regwatch_scan_duration_seconds_count",
        ):
            assert line in metrics, line


async def test_a_slow_registry_never_blocks_the_api(
    registry_factory: Callable[..., RegistryHandle],
    fault_proxy_factory: Callable[..., Any],
    push_images: Callable[..., list[PushedImage]],
    store_url: str,
    config: Path,
) -> None:
    handle = registry_factory("anonymous")
    push_images(handle, "team/app", ["1.0"])
    proxy = fault_proxy_factory(handle)
    proxy.add(fault_rules.slow_headers(5.0, path=r"^/v2/.+/tags/list$", times=None))
    add_account(config, "slow", proxy.url, cacheIntervalSeconds=3600)
    async with serving(config, store_url) as svc:

        async def scanning() -> bool:
            return bool((await svc.health())["accounts"]["slow"]["scanning"])

        await eventually(scanning)
        loop = asyncio.get_running_loop()
        for path, params in (
            ("/health", {}),
            ("/dockerRegistry/images/find", {"q": "team"}),
            ("/dockerRegistry/images/tags", {"account": "slow", "repository": "team/app"}),
            ("/credentials", {}),
            ("/dockerRegistry/accounts/slow/status", {}),
        ):
            started = loop.time()
            status, _ = await svc.get(path, **params)
            assert status == 200
            assert loop.time() - started < 0.5, path  # while tags/list hangs for 5 s
        assert await scanning()


async def test_openapi_documents_every_route(store_url: str, config: Path) -> None:
    add_account(config, "local", "http://127.0.0.1:9", cacheIntervalSeconds=3600)
    async with serving(config, store_url) as svc:
        status, spec = await svc.get("/openapi.json")
        assert status == 200
        for path in (
            "/credentials",
            "/credentials/{account}",
            "/dockerRegistry/images/find",
            "/dockerRegistry/images/tags",
            "/images/find",
            "/images/tags",
            "/health",
            "/metrics",
            "/dockerRegistry/accounts/{account}/status",
            "/dockerRegistry/accounts/{account}/scan",
        ):
            assert path in spec["paths"], path
        find = spec["paths"]["/dockerRegistry/images/find"]["get"]
        assert {p["name"] for p in find["parameters"]} >= {
            "q",
            "account",
            "repository",
            "tag",
            "count",
            "includeDetails",
        }
        async with svc.session.get(svc.base + "/docs") as resp:
            assert resp.status == 200
            assert "swagger" in (await resp.text()).lower()
