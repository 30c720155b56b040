"""Reading and writing the halconfig YAML file: round-trip parsing, atomic writes, locking.

ruamel.yaml's round-trip mode keeps comments, key order, quoting and keys regwatch does not know.
A write goes to a temporary file in the same directory, is fsynced and renamed over the original
(keeping its mode), so a reader sees either the old or the new file, never half of one. Writers
take a lock file beside the config so that read-modify-write transactions do not lose updates.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock
from filelock import Timeout as LockTimeout
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from regwatch.errors import ConfigError

NEW_FILE_MODE = 0o600  # the file holds passwords, as Halyard's does
LOCK_TIMEOUT_SECONDS = 30.0
_QUOTED = re.compile(r"(['\"]).*?\1")
_DUPLICATE_KEY = re.compile(r'found duplicate key "([^"]*)"')


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold long values such as password commands
    yaml.indent(mapping=2, sequence=2, offset=0)  # Halyard's (Jackson's) layout
    return yaml


def parse_text(text: str, path: Path) -> CommentedMap:
    """Parse the file's text; a ConfigError naming the file and line if it is not a mapping."""
    try:
        data = _yaml().load(text)
    except MarkedYAMLError as exc:
        raise _syntax_error(exc, path) from None
    except YAMLError:
        raise ConfigError(f"{path}: cannot parse the config file", hint=_UNTOUCHED_HINT) from None
    if data is None:
        return CommentedMap()
    if not isinstance(data, CommentedMap):
        raise ConfigError(
            f"{path}:1: the config file must be a YAML mapping (currentDeployment, "
            "deploymentConfigurations, …)",
            hint=_UNTOUCHED_HINT,
        )
    return data


_UNTOUCHED_HINT = "fix or restore the file; regwatch has not changed it"


def _syntax_error(exc: MarkedYAMLError, path: Path) -> ConfigError:
    """A one-line message built from the problem only: the file's content may hold passwords."""
    mark = exc.problem_mark or exc.context_mark
    line = f":{mark.line + 1}" if mark is not None else ""
    problem = str(exc.problem or exc.context or "invalid YAML")
    duplicate = _DUPLICATE_KEY.search(problem)
    if duplicate:
        problem = f"duplicate key {duplicate.group(1)!r}"
    else:
        problem = _QUOTED.sub(r"\1…\1", problem)
    return ConfigError(
        f"{path}{line}: the config file is not valid YAML ({problem})", hint=_UNTOUCHED_HINT
    )


def read_document(path: Path) -> CommentedMap | None:
    """The parsed file, or None when it does not exist."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(
            f"cannot read config file {path}: {exc.strerror or exc}",
            hint="check the path and its permissions (--config, REGWATCH_CONFIG)",
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}:{line}: the config file is not UTF-8 text", hint=_UNTOUCHED_HINT
        ) from None
    return parse_text(text, path)


def dump_text(data: Any) -> str:
    stream = io.StringIO()
    _yaml().dump(data, stream)
    return stream.getvalue()


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` atomically, keeping the file's mode (0600 for a new file)."""
    target = Path(os.path.realpath(path))  # write through a symlink, do not replace it
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = NEW_FILE_MODE
    except OSError as exc:
        raise _write_error(path, exc) from None
    tmp_name: str | None = None
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
        tmp_name = None
        _fsync_dir(target.parent)
    except OSError as exc:
        raise _write_error(path, exc) from None
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_error(path: Path, exc: OSError) -> ConfigError:
    return ConfigError(
        f"cannot write config file {path}: {exc.strerror or exc}",
        hint="check that its directory exists and is writable; the file was left as it was",
    )


def lock_path(path: Path) -> Path:
    target = Path(os.path.realpath(path))
    return target.with_name(target.name + ".lock")


@contextlib.contextmanager
def locked(path: Path, timeout: float = LOCK_TIMEOUT_SECONDS) -> Iterator[None]:
    """Hold the config file's write lock (a `<file>.lock` beside it)."""
    lock_file = lock_path(path)
    try:
        lock_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock = FileLock(lock_file, timeout=timeout, mode=0o600)
        lock.acquire()
    except LockTimeout:
        raise ConfigError(
            f"config file {path} is locked by another regwatch command",
            hint=f"wait for it to finish, or remove {lock_file} if no command is running",
        ) from None
    except OSError as exc:
        raise _write_error(path, exc) from None
    try:
        yield
    finally:
        lock.release()
