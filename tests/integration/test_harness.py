"""Tests of the test harness itself, with plain aiohttp (never regwatch code)."""

from __future__ import annotations

import aiohttp

from harness import RegistryHandle


async def test_anonymous_registry_answers_v2(registry_anonymous: RegistryHandle) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{registry_anonymous.url}/v2/") as resp,
    ):
        assert resp.status == 200
        assert resp.headers["Docker-Distribution-API-Version"] == "registry/2.0"
