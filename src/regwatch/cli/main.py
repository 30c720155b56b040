"""The `regwatch` root command and the error handling every subcommand shares."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from regwatch import __version__
from regwatch.errors import RegwatchError


class RegwatchGroup(click.Group):
    """A click group that turns RegwatchError into `Error: <what> — <hint>` and exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RegwatchError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)


@click.group(cls=RegwatchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="regwatch")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def cli(verbose: int) -> None:
    """regwatch: an image source for deployment pipelines."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _register_subcommands() -> None:
    """Attach every subcommand module. Each module exposes one click command or group."""
    from regwatch.cli import config_cmd, registry_cmd

    cli.add_command(registry_cmd.registry)
    cli.add_command(config_cmd.config)

    from regwatch.cli import db_cmd, images_cmd, scan_cmd

    cli.add_command(scan_cmd.scan)
    cli.add_command(images_cmd.images)
    cli.add_command(db_cmd.db)

    from regwatch.cli import serve_cmd

    cli.add_command(serve_cmd.serve)

    from regwatch.cli import events_cmd, trigger_cmd

    cli.add_command(events_cmd.events)
    cli.add_command(trigger_cmd.trigger)


_register_subcommands()


def main() -> None:
    cli(prog_name="regwatch")
