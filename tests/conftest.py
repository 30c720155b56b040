"""Project-wide pytest fixtures: real registries, token servers, fault proxies, image pushing.

Session-scoped registries (started lazily on first use, shared by the whole run — use
`unique_name` for repository names):
    registry_anonymous, registry_basic, registry_token,
    registry_anonymous_tls, registry_basic_tls, registry_token_tls,
    registry_any  (parametrized over the six; ids "anonymous-http" … "token-tls")
Function-scoped:
    registry_factory(mode="anonymous", tls=False, *, extra_config=None, **kw) -> RegistryHandle
    fault_proxy_factory(upstream_handle, **kw) -> FaultProxy (started)
    unique_name  -> e.g. "t3f9a1/"
    push_images  -> the sync helper `harness.push_images`

Stores (backend from REGWATCH_TEST_STORE: "sqlite", the default, or "postgres"; tests using these
are marked `store` automatically, and scripts/test runs them again on PostgreSQL):
    store_backend    (session) -> "sqlite" | "postgres"
    store_url        -> URL of a fresh store with the schema at head (a SQLite file in tmp_path, or
                        a new PostgreSQL database cloned from a migrated template, dropped after)
    empty_store_url  -> URL of an empty database (SQLite: a file not created yet)
    postgres_server  (session, lazy) -> the throwaway `harness.postgres.PostgresServer`
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:  # `import harness` must work whatever pytest's import mode
    sys.path.insert(0, _TESTS_DIR)

from harness import (  # noqa: E402
    MODES,
    FaultProxy,
    PushedImage,
    RegistryHandle,
    RegistryProcess,
    TLSMaterial,
    default_tls,
    push_images,
    stop_all,
)
from harness import token_server as _token_server  # noqa: E402
from harness.postgres import PostgresServer, shared_postgres  # noqa: E402
from harness.postgres import stop_all as stop_postgres  # noqa: E402
from harness.tls import remove_default_tls  # noqa: E402

REGISTRY_KINDS = [(mode, tls) for mode in MODES for tls in (False, True)]
REGISTRY_IDS = [f"{mode}-{'tls' if tls else 'http'}" for mode, tls in REGISTRY_KINDS]


class _RegistryPool:
    """Session registries, started on first request and stopped at the end of the session."""

    def __init__(self) -> None:
        self._processes: dict[tuple[str, bool], RegistryProcess] = {}
        self._handles: dict[tuple[str, bool], RegistryHandle] = {}

    def get(self, mode: str, tls: bool) -> RegistryHandle:
        key = (mode, tls)
        if key not in self._handles:
            process = RegistryProcess(mode, tls)
            self._handles[key] = process.start()
            self._processes[key] = process
        return self._handles[key]

    def close(self) -> None:
        for process in self._processes.values():
            process.stop()
        self._processes.clear()
        self._handles.clear()


@pytest.fixture(scope="session")
def _registry_pool() -> Iterator[_RegistryPool]:
    pool = _RegistryPool()
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(scope="session")
def tls_material() -> TLSMaterial:
    """The session's throwaway CA and server certificate (127.0.0.1 + localhost)."""
    return default_tls()


def _session_registry(mode: str, tls: bool) -> Any:
    """The session fixture `registry_<mode>[_tls]`: that registry from the pool."""

    @pytest.fixture(scope="session", name=f"registry_{mode}{'_tls' if tls else ''}")
    def registry(_registry_pool: _RegistryPool) -> RegistryHandle:
        return _registry_pool.get(mode, tls)

    return registry


registry_anonymous = _session_registry("anonymous", False)
registry_basic = _session_registry("basic", False)
registry_token = _session_registry("token", False)
registry_anonymous_tls = _session_registry("anonymous", True)
registry_basic_tls = _session_registry("basic", True)
registry_token_tls = _session_registry("token", True)


@pytest.fixture(scope="session", params=REGISTRY_KINDS, ids=REGISTRY_IDS)
def registry_any(request: pytest.FixtureRequest, _registry_pool: _RegistryPool) -> RegistryHandle:
    mode, tls = request.param
    return _registry_pool.get(mode, tls)


@pytest.fixture
def unique_name() -> str:
    """A short random repository prefix like "t3f9a1/" (session registries are shared)."""
    return f"t{secrets.token_hex(3)}/"


@pytest.fixture
def registry_factory() -> Iterator[Callable[..., RegistryHandle]]:
    """Start private registries: `registry_factory("token", True, extra_config={...})`."""
    processes: list[RegistryProcess] = []

    def factory(
        mode: str = "anonymous",
        tls: bool = False,
        *,
        extra_config: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> RegistryHandle:
        process = RegistryProcess(mode, tls, extra_config=extra_config, **kwargs)
        processes.append(process)
        return process.start()

    try:
        yield factory
    finally:
        for process in reversed(processes):
            process.stop()


@pytest.fixture
def fault_proxy_factory() -> Iterator[Callable[..., FaultProxy]]:
    """Start fault-injecting proxies in front of registries: `fault_proxy_factory(handle)`."""
    proxies: list[FaultProxy] = []

    def factory(upstream: RegistryHandle, **kwargs: Any) -> FaultProxy:
        proxy = FaultProxy.for_registry(upstream, **kwargs)
        proxies.append(proxy)
        return proxy.start()

    try:
        yield factory
    finally:
        for proxy in reversed(proxies):
            proxy.stop()


@pytest.fixture(name="push_images")
def _push_images() -> Callable[..., list[PushedImage]]:
    """Sync pushing: `push_images(handle, "repo", ["v1", "v2"], kind="oci")`."""
    return push_images


@pytest.fixture(autouse=True)
def _reset_token_servers() -> Iterator[None]:
    """Knobs a test set on a shared token server must not leak into the next test."""
    yield
    _token_server.reset_all()


def _stop_all_then_die(signum: int, frame: FrameType | None) -> None:
    """SIGTERM would kill pytest without running fixture teardown or atexit: stop the
    registries first, then die of the signal as before."""
    stop_all()
    stop_postgres()
    remove_default_tls()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def pytest_configure(config: pytest.Config) -> None:
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    ):
        signal.signal(signal.SIGTERM, _stop_all_then_die)


def pytest_unconfigure(config: pytest.Config) -> None:
    stop_all()
    stop_postgres()


# --- stores: SQLite by default, PostgreSQL with REGWATCH_TEST_STORE=postgres -------------------
STORE_BACKENDS = ("sqlite", "postgres")
STORE_FIXTURES = frozenset({"store_url", "empty_store_url"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that uses a store fixture `store`: scripts/test reruns those on
    PostgreSQL (`-m store`)."""
    for item in items:
        if STORE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.store)


@pytest.fixture(scope="session")
def store_backend() -> str:
    """The backend of `store_url`: REGWATCH_TEST_STORE, "sqlite" (default) or "postgres"."""
    backend = os.environ.get("REGWATCH_TEST_STORE", "").strip().lower() or "sqlite"
    if backend not in STORE_BACKENDS:
        raise pytest.UsageError(f"REGWATCH_TEST_STORE={backend!r}: use one of {STORE_BACKENDS}")
    return backend


@pytest.fixture(scope="session")
def postgres_server() -> PostgresServer:
    """The session's throwaway PostgreSQL (started on first use, stopped at the end)."""
    return shared_postgres()


@pytest.fixture(scope="session")
def _store_template(
    store_backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """A store migrated to head once per session: a SQLite file, or a PostgreSQL database to
    clone (CREATE DATABASE … TEMPLATE copies it in ~20 ms; migrating takes ~10x longer)."""
    from regwatch.store import upgrade

    if store_backend == "sqlite":
        path = tmp_path_factory.mktemp("store-template") / "template.db"
        upgrade(f"sqlite:///{path}")
        return str(path)
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.create_database(f"regwatch_template_{secrets.token_hex(4)}")
    upgrade(server.url(name))
    return name


@pytest.fixture
def store_url(
    store_backend: str, _store_template: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[str]:
    """A fresh store with the schema at head, on the backend chosen by REGWATCH_TEST_STORE."""
    if store_backend == "sqlite":
        path = tmp_path / "store.db"
        shutil.copyfile(_store_template, path)
        yield f"sqlite:///{path}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.create_database(template=_store_template)
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)


@pytest.fixture
def empty_store_url(
    store_backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[str]:
    """An empty database (no regwatch schema): SQLite, a file not created yet."""
    if store_backend == "sqlite":
        yield f"sqlite:///{tmp_path}/empty.db"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.create_database()
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)
