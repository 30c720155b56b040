"""A synthetic registry that answers `tags/list` for repositories of any size, paginated.

Pushing 100,000 real tags to the test registry would take many minutes, and distribution 2.8
does not paginate `tags/list` anyway. This server answers only what a tags-only scan asks:

    GET /v2/                          -> 200 {}
    GET /v2/<name>/tags/list?n=&last= -> {"name", "tags"} sorted, with a relative Link: rel="next"
    GET /v2/_catalog                  -> the one repository

Every repository holds the tags `build-000000` … (`--tags` of them). Run as a script it listens on
127.0.0.1, prints its port on stdout and serves until stdin closes or it gets SIGTERM:

    python tests/integration/synthetic_registry.py --tags 100000 --repository big/repo
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import signal
import sys

from aiohttp import web


def make_app(repository: str, count: int) -> web.Application:
    tags = [f"build-{i:06d}" for i in range(count)]  # sorted as strings

    async def ping(_: web.Request) -> web.Response:
        return web.json_response({})

    async def catalog(_: web.Request) -> web.Response:
        return web.json_response({"repositories": [repository]})

    async def tag_list(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name != repository:
            body = {"errors": [{"code": "NAME_UNKNOWN", "message": "repository name not known"}]}
            return web.json_response(body, status=404)
        size = max(1, min(int(request.query.get("n", "100")), 10_000))
        last = request.query.get("last")
        start = bisect.bisect_right(tags, last) if last else 0
        page = tags[start : start + size]
        headers = {}
        if start + size < len(tags):
            headers["Link"] = f'</v2/{name}/tags/list?n={size}&last={page[-1]}>; rel="next"'
        text = json.dumps({"name": name, "tags": page})
        return web.Response(text=text, content_type="application/json", headers=headers)

    app = web.Application()
    app.router.add_get("/v2/", ping)
    app.router.add_get("/v2/_catalog", catalog)
    app.router.add_get("/v2/{name:.+}/tags/list", tag_list)
    return app


async def serve(repository: str, count: int) -> None:
    runner = web.AppRunner(make_app(repository, count), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(port, flush=True)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    with contextlib.suppress(OSError):  # stdin is a pipe from the parent: its end is ours
        loop.add_reader(sys.stdin.fileno(), lambda: None if sys.stdin.read(1) else done.set())
    await done.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tags", type=int, default=100_000)
    parser.add_argument("--repository", default="big/repo")
    args = parser.parse_args()
    asyncio.run(serve(args.repository, args.tags))


if __name__ == "__main__":
    main()
