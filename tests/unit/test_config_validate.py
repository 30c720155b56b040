"""Validation steps that need no registry: settings, placeholders, credential resolution."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from regwatch.config.model import DockerRegistryAccount, parse_account
from regwatch.config.validate import (
    Finding,
    check_settings,
    find_placeholder,
    has_errors,
    resolve_credentials,
    validate_account,
)

SECRET = "n0t-for-your-eyes"


def account(**extra: object) -> DockerRegistryAccount:
    return parse_account({"name": "acct", "address": "127.0.0.1:1", **extra})


def only(findings: list[Finding]) -> Finding:
    assert len(findings) == 1, findings
    return findings[0]


def test_a_plain_account_has_no_local_findings() -> None:
    assert check_settings(account(username="u", password="p")) == []


def test_username_without_password_warns() -> None:
    finding = only(check_settings(account(username="bob")))
    assert finding.severity == "warning"
    assert "username 'bob' is set but no password" in finding.message
    assert finding.hint is not None
    assert "--password" in finding.hint


def test_ca_cert_checks(tmp_path: Path) -> None:
    finding = only(check_settings(account(caCert=str(tmp_path / "missing.pem"))))
    assert finding.severity == "error"
    assert "does not exist" in finding.message
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    assert "not a readable PEM" in only(check_settings(account(caCert=str(garbage)))).message


def test_ca_cert_with_insecure_registry_warns(tmp_path: Path) -> None:
    from harness import default_tls

    ca = default_tls().ca_cert
    finding = only(check_settings(account(caCert=str(ca), insecureRegistry=True)))
    assert finding.severity == "warning"
    assert "caCert is not used" in finding.message
    assert check_settings(account(caCert=str(ca))) == []


@pytest.mark.parametrize(
    ("content", "severity", "needle"),
    [
        (None, "error", "cannot read catalog file"),
        ("{not json", "error", "is not JSON"),
        ('{"repos": []}', "error", "has no list of repositories"),
        ('{"repositories": [1]}', "error", "has no list of repositories"),
        ('{"repositories": []}', "warning", "lists no repositories"),
    ],
)
def test_catalog_file_checks(
    tmp_path: Path, content: str | None, severity: str, needle: str
) -> None:
    path = tmp_path / "catalog.json"
    if content is not None:
        path.write_text(content)
    finding = only(check_settings(account(catalogFile=str(path))))
    assert finding.severity == severity
    assert needle in finding.message


def test_a_good_catalog_file(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({"repositories": ["a/b"]}))
    assert check_settings(account(catalogFile=str(path))) == []


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"address": "${REGISTRY}"}, "address"),
        ({"username": "${USER}", "password": "p"}, "username"),
        ({"username": "u", "password": "${PASSWORD}"}, "password"),
        ({"username": "u", "passwordCommand": "cat ${HOME}/pw"}, "passwordCommand"),
        ({"username": "u", "passwordFile": "${HOME}/pw"}, "passwordFile"),
    ],
)
async def test_placeholders_skip_the_connection_check(extra: dict[str, str], key: str) -> None:
    a = account(**extra)
    assert find_placeholder(a) == key
    finding = only(await validate_account(a))
    assert finding.severity == "warning"
    assert finding.message.startswith(f"{key} contains a ${{…}} placeholder")


async def test_an_unreadable_password_file_is_an_error(tmp_path: Path) -> None:
    source, findings = await resolve_credentials(
        account(username="u", passwordFile=str(tmp_path / "absent"))
    )
    assert source is None
    assert only(findings).severity == "error"
    assert "absent" in only(findings).message


async def test_a_failing_password_command_is_an_error_without_secrets() -> None:
    command = f"echo {SECRET} >/dev/null; echo boom >&2; exit 3"
    _, findings = await resolve_credentials(account(username="u", passwordCommand=command))
    finding = only(findings)
    assert finding.severity == "error"
    assert SECRET not in str(finding)
    assert has_errors(findings)


async def test_a_password_without_username_is_an_error() -> None:
    _, findings = await resolve_credentials(account(password=SECRET))
    finding = only(findings)
    assert finding.severity == "error"
    assert "without a username" in finding.message


async def test_whitespace_around_a_password_warns() -> None:
    source, findings = await resolve_credentials(account(username="u", password=" p "))
    assert source is not None
    assert "leading or trailing whitespace" in only(findings).message


async def test_an_empty_password_file_warns(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text("\n")
    _, findings = await resolve_credentials(account(username="u", passwordFile=str(path)))
    assert findings
    assert findings[0].severity in ("warning", "error")
    assert "empty" in findings[0].message


async def test_anonymous_accounts_resolve_to_nothing() -> None:
    assert await resolve_credentials(account()) == (None, [])


def test_finding_text() -> None:
    assert str(Finding("error", "what", "hint")) == "what — hint"
    assert str(Finding("warning", "what")) == "what"
    assert not has_errors([Finding("warning", "w")])
