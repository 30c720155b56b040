"""Small pieces shared by the harness modules."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path
from typing import Any

# Valid credentials of the basic/token registries. Awkward on purpose (space, '@', ':', quotes,
# backslash, '%') so that escaping bugs in YAML, headers, forms and URLs surface in tests.
USERNAME = "ci user"
PASSWORD = 'p@ss: "w0rd"\'\\%'


class HarnessError(RuntimeError):
    """The test harness itself could not do what a test asked (start a registry, push…)."""


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scratch_dir(prefix: str) -> Path:
    """A fresh temporary directory, on tmpfs (/dev/shm) when there is one: the registry is ~2x
    faster there."""
    shm = Path("/dev/shm")
    base = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """A copy of `base` with `extra` merged in: dicts recursively, anything else replaced."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
