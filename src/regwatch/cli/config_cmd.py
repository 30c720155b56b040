"""`regwatch config …`: hal-compatible account configuration.

regwatch config provider docker-registry enable|disable
regwatch config provider docker-registry account add|edit|get|list|delete …
regwatch config validate
"""

from __future__ import annotations

import click

from regwatch.cli.config_account import account
from regwatch.cli.config_options import HalCommand, common_options
from regwatch.cli.config_output import echo_findings
from regwatch.config.halconfig import edit_config, load_config
from regwatch.config.model import DockerRegistryAccount
from regwatch.config.validate import Finding, has_errors, validate_account_sync
from regwatch.errors import ConfigError, ValidationFailed


@click.group()
def config() -> None:
    """Configure accounts, as `hal config provider docker-registry …` does."""


@config.group()
def provider() -> None:
    """Configure providers (regwatch has one: docker-registry)."""


@provider.group(name="docker-registry")
def docker_registry() -> None:
    """The Docker Registry provider and its accounts."""


docker_registry.add_command(account)


def _set_enabled(config_path: str | None, deployment: str | None, enabled: bool) -> None:
    with edit_config(config_path) as cfg:
        cfg.set_enabled(enabled, deployment)
    click.echo(f"{'Enabled' if enabled else 'Disabled'} the docker-registry provider.")


@docker_registry.command(cls=HalCommand)
@common_options
def enable(config_path: str | None, deployment: str | None, no_validate: bool) -> None:
    """Enable the docker-registry provider."""
    del no_validate
    _set_enabled(config_path, deployment, True)


@docker_registry.command(cls=HalCommand)
@common_options
def disable(config_path: str | None, deployment: str | None, no_validate: bool) -> None:
    """Disable the docker-registry provider."""
    del no_validate
    _set_enabled(config_path, deployment, False)


@config.command(cls=HalCommand)
@common_options
def validate(config_path: str | None, deployment: str | None, no_validate: bool) -> None:
    """Validate every account (contacting each registry); exit 1 on an error."""
    if no_validate:
        click.echo("Validation skipped (--no-validate).")
        return
    cfg = load_config(config_path)
    entries = cfg.account_entries(deployment)
    if not entries:
        click.echo(f"No docker-registry accounts are configured in {cfg.path}.")
        return
    if not cfg.provider_enabled(deployment):
        click.echo(
            "Warning: the docker-registry provider is disabled — enable it with "
            "`regwatch config provider docker-registry enable`",
            err=True,
        )
    failed = [name for name, item in entries if not _report(name, item)]
    if failed:
        raise ValidationFailed(
            f"validation found errors in account{'s' if len(failed) > 1 else ''} "
            + ", ".join(failed),
            hint="fix them with `regwatch config provider docker-registry account edit`",
        )


def _report(name: str, item: DockerRegistryAccount | ConfigError) -> bool:
    """Validate one account and print the outcome; False when it has errors."""
    if isinstance(item, ConfigError):
        findings = [Finding("error", item.message, item.hint)]
    else:
        findings = validate_account_sync(item)
    warnings = sum(1 for f in findings if f.severity == "warning")
    errors = len(findings) - warnings
    summary = "ok" if not errors else f"{errors} error{'s' if errors > 1 else ''}"
    if warnings:
        summary += f", {warnings} warning{'s' if warnings > 1 else ''}"
    click.echo(f"{name}: {summary}")
    echo_findings(findings, indent="  ")
    return not has_errors(findings)
