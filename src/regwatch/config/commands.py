"""Running the external programs credentials come from: password commands and docker
credential helpers (`docker-credential-<name> get`).

A failure is a CredentialError that shows the program's stderr (trimmed and capped), never the
command line: commands may hold secrets themselves.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil

from regwatch.errors import CredentialError
from regwatch.models import BasicCredentials, Secret

DEFAULT_TTL = 3600.0 * 11  # ECR tokens last 12 h
COMMAND_TIMEOUT = 120.0
_STDERR_MAX = 500
_HELPER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


async def run_password_command(command: str, username: str, timeout: float) -> str:
    """Run `bash -c command`; its trimmed stdout, or CredentialError with its stderr."""
    try:
        proc = await asyncio.create_subprocess_exec(
            "bash",
            "-c",
            command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise CredentialError(
            f"cannot start bash for the password command ({reason(exc)})"
        ) from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise CredentialError(
            f"the password command for user {username!r} did not finish within {timeout:g} s",
            hint="run it by hand to check it",
        ) from None
    if proc.returncode != 0:
        raise CredentialError(
            f"the password command for user {username!r} failed (exit status {proc.returncode})"
            f": {excerpt(err)}",
            hint="run it by hand to check it",
        )
    password = out.decode("utf-8", errors="replace").strip()
    if not password:
        raise CredentialError(
            f"the password command for user {username!r} printed nothing",
            hint="it must print the password on stdout",
        )
    return password


def excerpt(stderr: bytes) -> str:
    """A program's error output, trimmed and capped, for an error message."""
    text = stderr.decode("utf-8", errors="replace").strip() or "no error output"
    return text if len(text) <= _STDERR_MAX else text[: _STDERR_MAX - 1] + "…"


def reason(exc: BaseException) -> str:
    """The OS error text of `exc`, else its class name."""
    return getattr(exc, "strerror", None) or type(exc).__name__


async def run_credential_helper(name: str, server: str, timeout: float) -> BasicCredentials | None:
    """`docker-credential-<name> get` for `server`; None if the helper has nothing for it."""
    program = f"docker-credential-{name}"
    if not _HELPER_NAME.fullmatch(name) or shutil.which(program) is None:
        raise CredentialError(
            f"the credential helper {program} is not on PATH",
            hint="install it, or remove it from the docker config",
        )
    proc = await asyncio.create_subprocess_exec(
        program,
        "get",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(server.encode()), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise CredentialError(f"{program} did not answer within {timeout:g} s") from None
    if proc.returncode != 0:
        if b"credentials not found" in out.lower() + err.lower():
            return None
        raise CredentialError(
            f"{program} failed (exit status {proc.returncode}): {excerpt(err or out)}",
            hint=f"run `echo {server} | {program} get` by hand to check it",
        )
    try:
        answer = json.loads(out)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise CredentialError(f"{program} printed something that is not its JSON answer")
    username, secret = answer.get("Username"), answer.get("Secret")
    if not isinstance(username, str) or not isinstance(secret, str) or not secret:
        return None
    return BasicCredentials(username, Secret(secret))
