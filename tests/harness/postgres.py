"""A throwaway PostgreSQL server on 127.0.0.1 for tests, from the Debian `postgresql` binaries.

    server = PostgresServer().start()        # initdb in a temp dir (tmpfs), then `postgres`
    name = server.create_database()          # empty, from template0
    url = server.url(name)                   # postgresql+psycopg://postgres@127.0.0.1:PORT/name
    server.stop()                            # kills the server, removes every file

What makes it throwaway and fast: the data directory is a fresh temp dir (on /dev/shm when there
is one), `fsync`, `synchronous_commit` and `full_page_writes` are off, the Unix socket lives in the
temp dir, and every client from 127.0.0.1 is trusted — a test-only cluster, never reachable from
elsewhere. The cluster's default collation is ICU `en-US` (locale-aware, like most real
databases), so code that needs byte order must ask for it.

initdb and postgres refuse to run as root: when the tests run as root, the server runs as the
unprivileged `postgres` user (created by the Debian package), which owns the temp dir.

`shared_postgres()` is the one server of a test session (started on first use, stopped at exit or
on SIGTERM through `stop_all()`). The harness never imports regwatch.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from .common import HarnessError, free_port, scratch_dir

SUPERUSER = "postgres"
RUN_AS = "postgres"  # the OS user the server runs as when we are root
START_TIMEOUT_S = 30.0
BIN_GLOB = "/usr/lib/postgresql/*/bin"
ENV_BINDIR = "REGWATCH_PG_BINDIR"
SETUP_HINT = (
    "install PostgreSQL: run scripts/setup with REGWATCH_WITH_POSTGRES=1 (scripts/test does; it "
    "installs the Debian package postgresql), or point REGWATCH_PG_BINDIR at a directory with "
    "initdb and postgres"
)
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "shared_buffers": "128MB",
    # shared memory segments as files in the data directory (removed with it even after a
    # SIGKILL), not /dev/shm/PostgreSQL.* files that only a clean stop removes
    "dynamic_shared_memory_type": "mmap",
    "log_min_messages": "warning",
    "log_min_error_statement": "panic",  # tests provoke errors on purpose; keep the log short
}
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

_live: set[PostgresServer] = set()
_live_lock = threading.Lock()
_shared: PostgresServer | None = None
_shared_lock = threading.Lock()


def find_bindir() -> Path:
    """The directory of initdb/postgres: REGWATCH_PG_BINDIR, else the newest Debian version."""
    configured = os.environ.get(ENV_BINDIR)
    candidates = [Path(configured)] if configured else []
    candidates += sorted(
        (Path(p) for p in glob.glob(BIN_GLOB)), key=lambda p: _version(p), reverse=True
    )
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "postgres").is_file():
            return bindir
    raise HarnessError(f"PostgreSQL server binaries (initdb, postgres) not found — {SETUP_HINT}")


def _version(bindir: Path) -> int:
    match = re.search(r"/(\d+)/bin$", str(bindir))
    return int(match.group(1)) if match else 0


def _identity() -> dict[str, Any]:
    """subprocess arguments that run a command as RUN_AS when we are root (else as ourselves)."""
    if os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam(RUN_AS)
    except KeyError:
        raise HarnessError(
            f"running as root, and there is no {RUN_AS!r} user to run PostgreSQL as — "
            f"{SETUP_HINT} (the package creates the user)"
        ) from None
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _valid_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"not a plain PostgreSQL identifier: {name!r}")
    return name


def stop_all() -> None:
    """Stop every server this process started (atexit / signal backstop)."""
    locked = _live_lock.acquire(timeout=1)
    try:
        servers = list(_live)
    finally:
        if locked:
            _live_lock.release()
    for server in servers:
        server.stop()


atexit.register(stop_all)


def shared_postgres() -> PostgresServer:
    """The test session's server, started on first call."""
    global _shared
    with _shared_lock:
        if _shared is None or not _shared.running:
            _shared = PostgresServer().start()
        return _shared


class PostgresServer:
    """One throwaway cluster and its `postgres` process. A context manager."""

    def __init__(self, settings: dict[str, str] | None = None) -> None:
        self.settings = {**SERVER_SETTINGS, **(settings or {})}
        self.port = 0
        self.workdir: Path | None = None
        self.bindir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> PostgresServer:
        """initdb a fresh cluster, start the server, wait until it accepts connections."""
        self.bindir = find_bindir()
        self.workdir = scratch_dir("regwatch-postgres-")
        with _live_lock:
            _live.add(self)
        try:
            self._initdb()
            self._launch()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server (immediate shutdown, then SIGKILL) and remove the cluster's files."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGQUIT)  # immediate shutdown: nothing here must survive
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        with _live_lock:
            _live.discard(self)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- databases and roles --------------------------------------------------------------------
    def url(
        self, database: str = "postgres", *, user: str = SUPERUSER, driver: str = "psycopg"
    ) -> str:
        """A SQLAlchemy URL (`driver=""` for a plain `postgresql://` one)."""
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        return f"{scheme}://{user}@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str = "postgres", *, user: str = SUPERUSER) -> str:
        """A libpq connection string, for psycopg.connect()."""
        return f"host=127.0.0.1 port={self.port} dbname={database} user={user}"

    @contextlib.contextmanager
    def connect(self, database: str = "postgres") -> Iterator[psycopg.Connection[Any]]:
        """A superuser connection in autocommit mode (CREATE DATABASE cannot run in a
        transaction)."""
        with psycopg.connect(self.dsn(database), autocommit=True, connect_timeout=10) as conn:
            yield conn

    def execute(self, statement: str | sql.Composable, database: str = "postgres") -> None:
        with self.connect(database) as conn:
            conn.execute(statement)

    def create_database(
        self, name: str | None = None, *, template: str = "template0", owner: str | None = None
    ) -> str:
        """Create a database (a copy of `template`, which must have no open connections)."""
        name = _valid_name(name or f"t_{secrets.token_hex(6)}")
        statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(_valid_name(template))
        )
        if owner is not None:
            statement += sql.SQL(" OWNER {}").format(sql.Identifier(_valid_name(owner)))
        self.execute(statement)
        return name

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting whoever is still connected to it."""
        self.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(_valid_name(name))
            )
        )

    def create_role(self, name: str, *, superuser: bool = False) -> str:
        """A login role (trusted from 127.0.0.1, no password), by default not a superuser."""
        kind = sql.SQL("SUPERUSER" if superuser else "NOSUPERUSER NOCREATEDB NOCREATEROLE")
        self.execute(
            sql.SQL("CREATE ROLE {} LOGIN {}").format(sql.Identifier(_valid_name(name)), kind)
        )
        return name

    def read_log(self) -> str:
        if self.workdir is None:
            return ""
        try:
            return (self.workdir / "postgres.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # --- internals ------------------------------------------------------------------------------
    def _run(self, *args: str) -> None:
        assert self.workdir is not None
        result = subprocess.run(
            list(args),
            capture_output=True,
            text=True,
            cwd=self.workdir,
            timeout=120,
            check=False,
            **_identity(),
        )
        if result.returncode != 0:
            raise HarnessError(f"{Path(args[0]).name} failed:\n{result.stdout}{result.stderr}")

    def _initdb(self) -> None:
        assert self.workdir is not None
        assert self.bindir is not None
        identity = _identity()
        if identity:
            os.chown(self.workdir, identity["user"], identity["group"])
        self.workdir.chmod(0o700)
        self._run(
            str(self.bindir / "initdb"),
            "--pgdata", str(self.workdir / "data"),
            "--username", SUPERUSER,
            "--auth", "trust",
            "--no-sync",
            "--encoding", "UTF8",
            "--locale", "C.UTF-8",  # LC_CTYPE etc.; collation below
            "--locale-provider", "icu",
            "--icu-locale", "en-US",
        )  # fmt: skip

    def _launch(self) -> None:
        """Pick a port and start; retry with another port if it was taken meanwhile."""
        for attempt in range(5):
            self.port = free_port()
            self._spawn()
            try:
                self._wait_ready()
                return
            except HarnessError:
                proc, self._proc = self._proc, None
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait(timeout=5)
                if "could not bind" not in self.read_log() or attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def _spawn(self) -> None:
        assert self.workdir is not None
        assert self.bindir is not None
        settings = {
            **self.settings,
            "port": str(self.port),
            "unix_socket_directories": str(self.workdir),
        }
        args = [str(self.bindir / "postgres"), "-D", str(self.workdir / "data")]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        with open(self.workdir / "postgres.log", "ab") as log:
            self._proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=env,
                start_new_session=True,  # a Ctrl-C meant for pytest must not hit the server first
                **_identity(),
            )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                raise HarnessError(f"postgres exited at start — log:\n{self.read_log()[-4000:]}")
            try:
                with psycopg.connect(self.dsn(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                time.sleep(0.05)
        raise HarnessError(
            f"postgres did not accept connections within {START_TIMEOUT_S} s — log:\n"
            f"{self.read_log()[-4000:]}"
        )
