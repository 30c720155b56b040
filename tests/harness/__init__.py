"""Test harness: real registries, a token server, TLS material, an image pusher, a fault proxy.

Import from here (`from harness import RegistryHandle, ImagePusher, FaultProxy, …`); the tests
directory is on `sys.path` (tests/conftest.py makes sure of it). The harness never imports regwatch:
it must stay independent of the code under test.
"""

from . import fault_rules
from .common import PASSWORD, USERNAME, HarnessError, deep_merge, free_port, scratch_dir
from .fault_proxy import FaultProxy, RecordedRequest
from .image_content import ACCEPT_MANIFESTS, KINDS
from .images import ImagePusher, PushedImage, populate, push_images, run_pusher
from .loop import LoopThread, run_sync, shared_loop
from .registry import MODES, RegistryHandle, RegistryProcess, start_registry, stop_all
from .tls import TLSMaterial, default_tls, make_tls_material
from .token_server import TokenRequest, TokenServer, libtrust_key_id, parse_scope

__all__ = [
    "ACCEPT_MANIFESTS",
    "KINDS",
    "MODES",
    "PASSWORD",
    "USERNAME",
    "FaultProxy",
    "HarnessError",
    "ImagePusher",
    "LoopThread",
    "PushedImage",
    "RecordedRequest",
    "RegistryHandle",
    "RegistryProcess",
    "TLSMaterial",
    "TokenRequest",
    "TokenServer",
    "deep_merge",
    "default_tls",
    "fault_rules",
    "free_port",
    "libtrust_key_id",
    "make_tls_material",
    "parse_scope",
    "populate",
    "push_images",
    "run_pusher",
    "run_sync",
    "scratch_dir",
    "shared_loop",
    "start_registry",
    "stop_all",
]
