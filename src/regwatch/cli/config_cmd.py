"""`regwatch config …`: hal-compatible account configuration."""

from __future__ import annotations

import click


@click.group()
def config() -> None:
    """Configure accounts, as `hal config provider docker-registry …` does."""
