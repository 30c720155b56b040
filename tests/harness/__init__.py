"""Test harness: real registries, a token server, TLS material, an image pusher, a fault proxy.

Import from here (`from harness import RegistryHandle, ImagePusher, FaultProxy, …`); the tests
directory is on `sys.path` (tests/conftest.py makes sure of it). The harness never imports regwatch:
it must stay independent of the code under test.
"""

from .common import PASSWORD, USERNAME, HarnessError, deep_merge, free_port, scratch_dir
from .loop import LoopThread, run_sync, shared_loop
from .registry import MODES, RegistryHandle, RegistryProcess, start_registry, stop_all
from .tls import TLSMaterial, default_tls, make_tls_material
from .token_server import TokenRequest, TokenServer, libtrust_key_id, parse_scope

__all__ = [
    "MODES",
    "PASSWORD",
    "USERNAME",
    "HarnessError",
    "LoopThread",
    "RegistryHandle",
    "RegistryProcess",
    "TLSMaterial",
    "TokenRequest",
    "TokenServer",
    "deep_merge",
    "default_tls",
    "free_port",
    "libtrust_key_id",
    "make_tls_material",
    "parse_scope",
    "run_sync",
    "scratch_dir",
    "shared_loop",
    "start_registry",
    "stop_all",
]
