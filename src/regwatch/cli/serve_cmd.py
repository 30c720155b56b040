"""`regwatch serve`: index every account on its interval and answer the lookup API.

    regwatch serve [--config PATH] [--host H] [--port P] [--access-log]

Listens on `regwatch.listen` from the config file (default 127.0.0.1:7002, Clouddriver's port),
overridden by `REGWATCH_LISTEN_HOST`/`_PORT` and then by `--host`/`--port`. SIGTERM or Ctrl-C
stops it gracefully: no new requests, in-flight scans stop at a repository boundary, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Generator
from types import FrameType
from typing import TYPE_CHECKING

import click
import uvicorn

from regwatch.errors import ConfigError, RegwatchError
from regwatch.store.url import redact_store_url

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger("regwatch.serve")


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM after a graceful shutdown (the process then dies of it, exit
    143); a service stopped on purpose should exit 0, so the signal only asks to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        signals = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self._stop) for sig in signals}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _stop(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C: do not wait for in-flight work
        self.should_exit = True


def listen_socket(host: str, port: int) -> socket.socket:
    """A bound, listening socket (port 0: any free port). Binding here, rather than in uvicorn,
    turns "address in use" into a one-line error and lets the caller learn the real port.

    The socket is made with proto=IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on
    accepted connections of such sockets, and without it every response (headers and body are
    two writes) stalls ~40 ms on Nagle + delayed ACK."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror or type(exc).__name__})",
            hint="choose another address with --host/--port or regwatch.listen in the config",
        ) from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror or type(exc).__name__})",
            hint="choose another address with --host/--port or regwatch.listen in the config",
        ) from None
    sock.set_inheritable(True)
    return sock


@click.command()
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), help="Config file to serve."
)
@click.option("--host", help="Address to listen on (default: regwatch.listen.host, 127.0.0.1).")
@click.option(
    "--port", type=click.IntRange(0, 65_535), help="Port (default: regwatch.listen.port, 7002)."
)
@click.option("--access-log", is_flag=True, help="Log every request.")
@click.option(
    "--no-scan",
    is_flag=True,
    help="Do not scan registries: serve the index as it is (and apply config changes to it).",
)
@click.option(
    "--cache-seconds",
    type=click.FloatRange(min=0),
    default=5.0,  # regwatch.api.cache.DEFAULT_TTL (not imported: keeps `regwatch --help` fast)
    show_default=True,
    help="Answer repeated repository lookups (tags, find by repository) from a cache: this "
    "process's scans and pushes invalidate it at once, other processes' writes show within "
    "this many seconds (0: no cache).",
)
@click.pass_context
def serve(
    ctx: click.Context,
    config_path: str | None,
    host: str | None,
    port: int | None,
    access_log: bool,
    no_scan: bool,
    cache_seconds: float,
) -> None:
    """Run the service: scheduled indexing, hot reload and the Clouddriver-compatible API."""
    from regwatch.api import create_app
    from regwatch.service import Service

    if not ctx.find_root().params.get("verbose"):
        logging.getLogger("regwatch").setLevel(logging.INFO)
    service = Service.open(config_path, scanning=not no_scan)
    listen = service.settings.listen
    try:
        sock = listen_socket(host or listen.host, listen.port if port is None else port)
    except ConfigError:
        service.store.store.close()
        raise
    bound_host, bound_port = sock.getsockname()[:2]
    click.echo(
        f"regwatch serving on http://{_url_host(bound_host)}:{bound_port} "
        f"(config {service.config_path}, store {redact_store_url(service.store.store.url)}, "
        f"{len(service.accounts.accounts)} account(s))",
        err=True,
    )
    _run(create_app(service, cache_seconds=cache_seconds), sock, access_log)


def _run(app: FastAPI, sock: socket.socket, access_log: bool) -> None:
    """Serve `app` on `sock` until SIGTERM/Ctrl-C; the lifespan starts and stops the service."""
    config = uvicorn.Config(
        app, log_config=None, access_log=access_log, lifespan="on", timeout_graceful_shutdown=10
    )
    logging.getLogger("uvicorn.access").setLevel(logging.INFO if access_log else logging.WARNING)
    server = _Server(config)
    try:
        asyncio.run(server.serve(sockets=[sock]))
    finally:
        sock.close()
    if not server.started:
        raise RegwatchError("the service failed to start", hint="see the log above for the reason")


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
