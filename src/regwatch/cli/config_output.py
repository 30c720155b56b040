"""Output shared by the config commands: accounts, validation findings."""

from __future__ import annotations

import json

import click

from regwatch.config.model import DockerRegistryAccount
from regwatch.config.validate import Finding, has_errors, validate_account_sync
from regwatch.config.yamlfile import dump_text
from regwatch.errors import ValidationFailed


def echo_account(account: DockerRegistryAccount, *, as_json: bool) -> None:
    """Every field of the account, defaults resolved and secrets masked."""
    data = account.to_public()
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(dump_text(data), nl=False)


def echo_findings(findings: list[Finding], *, indent: str = "") -> None:
    for finding in findings:
        label = "Error" if finding.severity == "error" else "Warning"
        click.echo(f"{indent}{label}: {finding}", err=True)


def run_validation(account: DockerRegistryAccount) -> None:
    """Validate before saving: print the findings; errors stop the command (exit 1)."""
    findings = validate_account_sync(account)
    echo_findings(findings)
    if has_errors(findings):
        raise ValidationFailed(
            f"account {account.name!r} was not saved",
            hint="fix the problems above, or pass --no-validate to save it anyway",
        )
