"""`regwatch registry …`: talk to one registry directly, for humans and for debugging."""

from __future__ import annotations

import click


@click.group()
def registry() -> None:
    """Query a registry directly (ping, catalog, tags, manifest)."""
