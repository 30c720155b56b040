"""Real CNCF distribution registries (`docker-registry serve CONFIG`) on 127.0.0.1 for tests.

Three auth modes: `anonymous`, `basic` (htpasswd, bcrypt) and `token` (a `TokenServer` from this
harness); each over plain HTTP or TLS with the throwaway CA of `tls.py`. Storage is a temporary
directory (tmpfs when available) removed on stop; the registry's log goes to a file.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import PASSWORD, USERNAME, HarnessError, deep_merge, free_port, scratch_dir
from .tls import TLSMaterial, default_tls
from .token_server import TokenServer

MODES = ("anonymous", "basic", "token")
BINARY = "docker-registry"
BASIC_REALM = "regwatch-test-registry"
START_TIMEOUT_S = 20.0


@dataclass
class RegistryHandle:
    """Everything a test needs to talk to one running registry."""

    url: str  # "http://127.0.0.1:PORT" or "https://127.0.0.1:PORT" (no trailing slash)
    host: str  # "127.0.0.1:PORT"
    mode: str  # "anonymous" | "basic" | "token"
    tls: bool
    ca_cert: str | None  # CA PEM that signed the server certificate (TLS only)
    username: str | None  # valid credentials for basic/token (None for anonymous)
    password: str | None = field(repr=False)
    storage_dir: Path
    token_server: TokenServer | None
    log_path: Path
    config_path: Path | None = None
    process: RegistryProcess | None = field(default=None, repr=False, compare=False)

    @property
    def name(self) -> str:
        """An id like "token-tls" or "anonymous-http"."""
        return f"{self.mode}-{'tls' if self.tls else 'http'}"

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client SSL context trusting this registry's CA (None over plain HTTP)."""
        return ssl.create_default_context(cafile=self.ca_cert) if self.ca_cert else None

    def read_log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def _find_binary() -> str:
    path = shutil.which(BINARY)
    if path is None:
        raise HarnessError(
            f"{BINARY} is not on PATH — run scripts/setup (it installs the Debian package "
            "docker-registry and apache2-utils for htpasswd)"
        )
    return path


def _htpasswd_line(username: str, password: str) -> str:
    if shutil.which("htpasswd") is None:
        raise HarnessError("htpasswd is not on PATH — run scripts/setup (Debian apache2-utils)")
    # -B: bcrypt (the only hash distribution accepts); -C 4: cheapest cost, the registry checks it
    # on every request.
    out = subprocess.run(
        ["htpasswd", "-nbB", "-C", "4", username, password],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() + "\n"


_live: set[RegistryProcess] = set()
_live_lock = threading.Lock()


def stop_all() -> None:
    """Stop every registry this process started (atexit / signal backstop)."""
    # Also called from a signal handler: never wait long for a lock the interrupted code holds.
    locked = _live_lock.acquire(timeout=1)
    try:
        processes = list(_live)
    finally:
        if locked:
            _live_lock.release()
    for process in processes:
        process.stop()


atexit.register(stop_all)


class RegistryProcess:
    """One registry process (and its token server, for token mode). A context manager."""

    def __init__(
        self,
        mode: str = "anonymous",
        tls: bool = False,
        *,
        extra_config: dict[str, Any] | None = None,
        tls_material: TLSMaterial | None = None,
        username: str = USERNAME,
        password: str = PASSWORD,
        allow_anonymous_pull: bool = False,
        log_level: str = "warn",
        token_server: TokenServer | None = None,
        token_realm: str | None = None,
    ) -> None:
        """`token_server`: use this running server (the caller keeps owning it) instead of
        starting one; `token_realm`: announce this realm instead of the server's own, e.g. a
        `FaultProxy` in front of it (`f"{proxy.url}/token"`) or a foreign host."""
        if mode not in MODES:
            raise ValueError(f"unknown registry mode {mode!r}; expected one of {MODES}")
        self.mode = mode
        self.tls_material = (tls_material or default_tls()) if tls else None
        self.extra_config = extra_config or {}
        self.username = username if mode != "anonymous" else None
        self._password = password if mode != "anonymous" else None
        self.allow_anonymous_pull = allow_anonymous_pull
        self.log_level = log_level
        self.port = 0
        self.workdir: Path | None = None
        self.token_server: TokenServer | None = token_server
        self._owns_token_server = token_server is None
        self.token_realm = token_realm
        self._proc: subprocess.Popen[bytes] | None = None
        self.handle: RegistryHandle | None = None

    # --- public ---------------------------------------------------------------------------------
    def start(self) -> RegistryHandle:
        """Write the config, start the process, wait until `/v2/` answers."""
        binary = _find_binary()
        self.workdir = scratch_dir("regwatch-registry-")
        with _live_lock:
            _live.add(self)
        try:
            self._prepare_auth()
            self._launch(binary)
        except BaseException:
            self.stop()
            raise
        self.handle = self._make_handle()
        return self.handle

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL), the token server, and remove all files."""
        self.down()
        if self.token_server is not None and self._owns_token_server:
            self.token_server.stop()
            self.token_server = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        with _live_lock:
            _live.discard(self)

    def down(self) -> None:
        """Stop only the process, keeping port, storage and token server (see `up()`)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def up(self) -> None:
        """Start the process again after `down()`, on the same port with the same storage."""
        if self._proc is not None and self._proc.poll() is None:
            return
        self._spawn(_find_binary())
        self._wait_ready()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> RegistryHandle:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- internals ------------------------------------------------------------------------------
    @property
    def _paths(self) -> dict[str, Path]:
        assert self.workdir is not None
        return {
            "storage": self.workdir / "storage",
            "config": self.workdir / "config.yml",
            "htpasswd": self.workdir / "htpasswd",
            "log": self.workdir / "registry.log",
        }

    def _prepare_auth(self) -> None:
        user, password = self.username or "", self._password or ""
        if self.mode == "basic":
            self._paths["htpasswd"].write_text(_htpasswd_line(user, password))
        elif self.mode == "token" and self.token_server is None:
            self.token_server = TokenServer(
                {user: password},
                tls=self.tls_material,
                allow_anonymous_pull=self.allow_anonymous_pull,
            ).start()

    def _config(self) -> dict[str, Any]:
        paths = self._paths
        http_cfg: dict[str, Any] = {
            "addr": f"127.0.0.1:{self.port}",
            "secret": secrets.token_hex(16),
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        }
        if self.tls_material is not None:
            http_cfg["tls"] = {
                "certificate": str(self.tls_material.server_cert),
                "key": str(self.tls_material.server_key),
            }
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": self.log_level, "formatter": "text", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(paths["storage"])},
                "delete": {"enabled": True},
                "cache": {"blobdescriptor": "inmemory"},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": http_cfg,
        }
        auth = self._auth_config()
        if auth:
            config["auth"] = auth
        return deep_merge(config, self.extra_config)

    def _auth_config(self) -> dict[str, Any]:
        if self.mode == "basic":
            return {"htpasswd": {"realm": BASIC_REALM, "path": str(self._paths["htpasswd"])}}
        if self.mode == "token":
            ts = self.token_server
            assert ts is not None
            return {
                "token": {
                    "realm": self.token_realm or ts.realm,
                    "service": ts.service,
                    "issuer": ts.issuer,
                    "rootcertbundle": str(ts.rootcertbundle),
                }
            }
        return {}

    def _launch(self, binary: str) -> None:
        """Pick a port and start; retry with another port if it was taken meanwhile."""
        for attempt in range(5):
            self.port = free_port()
            # JSON is YAML: no YAML writer needed, and no quoting surprises.
            self._paths["config"].write_text(json.dumps(self._config(), indent=1))
            self._spawn(binary)
            try:
                self._wait_ready()
                return
            except HarnessError:
                log = self._paths["log"].read_text(errors="replace")
                self.down()
                if "address already in use" not in log or attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def _spawn(self, binary: str) -> None:
        paths = self._paths
        # REGISTRY_* variables would override our config: never inherit them.
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        with open(paths["log"], "ab") as log:
            self._proc = subprocess.Popen(
                [binary, "serve", str(paths["config"])],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(self.workdir),
            )

    def _probe(self, ctx: ssl.SSLContext | None) -> bool:
        conn: http.client.HTTPConnection
        if ctx is not None:
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=2, context=ctx)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", "/v2/")
            return conn.getresponse().status in (200, 401)
        except OSError:
            return False
        finally:
            conn.close()

    def _wait_ready(self) -> None:
        ctx = self.tls_material.client_context() if self.tls_material else None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                raise HarnessError(
                    f"docker-registry ({self.mode}) exited at start — log:\n{self._log_tail()}"
                )
            if self._probe(ctx):
                return
            time.sleep(0.02)
        raise HarnessError(
            f"docker-registry ({self.mode}) did not answer /v2/ within {START_TIMEOUT_S} s "
            f"— log:\n{self._log_tail()}"
        )

    def _log_tail(self) -> str:
        try:
            return self._paths["log"].read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"

    def _make_handle(self) -> RegistryHandle:
        scheme = "https" if self.tls_material else "http"
        host = f"127.0.0.1:{self.port}"
        assert self.workdir is not None
        return RegistryHandle(
            url=f"{scheme}://{host}",
            host=host,
            mode=self.mode,
            tls=self.tls_material is not None,
            ca_cert=str(self.tls_material.ca_cert) if self.tls_material else None,
            username=self.username,
            password=self._password,
            storage_dir=self._paths["storage"],
            token_server=self.token_server,
            log_path=self._paths["log"],
            config_path=self._paths["config"],
            process=self,
        )


@contextlib.contextmanager
def start_registry(
    mode: str = "anonymous",
    tls: bool = False,
    *,
    extra_config: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Iterator[RegistryHandle]:
    """Start a registry for the duration of a `with` block (kwargs go to `RegistryProcess`)."""
    process = RegistryProcess(mode, tls, extra_config=extra_config, **kwargs)
    try:
        yield process.start()
    finally:
        process.stop()
