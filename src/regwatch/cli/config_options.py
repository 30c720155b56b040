"""Halyard-style option parsing for `regwatch config …`, and the flags shared by add and edit.

Halyard (JCommander) accepts forms click does not: `--repositories a b c` (several values up to
the next option), a boolean flag with or without a value (`--track-digests`,
`--track-digests false`), and `--password` with no value (prompt). `HalCommand` rewrites the
argument list into click's forms before click parses it, and prints usage errors on one line.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from regwatch.cli.config_flags import ACCOUNT_FLAGS, LIST_EDIT_FLAGS, AccountFlag
from regwatch.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])
PROMPT = "\0prompt"  # the value a bare `--password` gets: prompt for it


class PromptOption(click.Option):
    """An option whose value may be left out (`--password`): it then gets `PROMPT`."""


_TRUE = {"true", "t", "yes", "y", "on", "1"}
_FALSE = {"false", "f", "no", "n", "off", "0"}


def param_name(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def _account_option(spec: AccountFlag, *, for_add: bool) -> Callable[[F], F]:
    help_text = spec.help
    if for_add and spec.default is not None:
        help_text += f"  [default: {spec.default}]"
    kwargs: dict[str, Any] = {"help": help_text}  # no default: click 8.5 treats None as one
    if spec.kind == "int":
        kwargs["type"] = click.IntRange(min=1)
        kwargs["metavar"] = "N"
    elif spec.kind == "bool":
        kwargs["type"] = click.BOOL
        kwargs["metavar"] = "[true|false]"
    elif spec.kind == "list":
        kwargs.update(multiple=True, default=(), metavar="VALUE…")
    elif spec.kind == "secret":
        kwargs.update(cls=PromptOption, metavar="[PASSWORD]")
    elif spec.kind == "path":
        kwargs["metavar"] = "FILE"
    if for_add and spec.flag == "--address":
        kwargs["required"] = True
    return click.option(spec.flag, param_name(spec.flag), **kwargs)


def account_options(*, for_add: bool) -> Callable[[F], F]:
    """Decorator adding every account flag (plus the list edit flags for `edit`)."""

    def decorate(func: F) -> F:
        if not for_add:  # decorators apply bottom-up: these are listed after the account flags
            for flag, key, operation in reversed(LIST_EDIT_FLAGS):
                help_text = f"{'Add to' if operation == 'add' else 'Remove from'} {key}."
                func = click.option(
                    flag, param_name(flag), multiple=True, metavar="VALUE", help=help_text
                )(func)
        for spec in reversed(ACCOUNT_FLAGS):
            func = _account_option(spec, for_add=for_add)(func)
        return func

    return decorate


def common_options(func: F) -> F:
    """`--config`, `--deployment` and `--no-validate`, on every config command."""
    func = click.option(
        "--no-validate", is_flag=True, help="Skip validation (the registry is not contacted)."
    )(func)
    func = click.option(
        "--deployment", metavar="NAME", help="Deployment to use (default: currentDeployment)."
    )(func)
    return click.option(
        "--config",
        "config_path",
        metavar="PATH",
        help="Config file (default: $REGWATCH_CONFIG or ~/.regwatch/config).",
    )(func)


def collect_values(params: dict[str, Any]) -> dict[str, Any]:
    """The account keys the user named on the command line, with parsed values."""
    values: dict[str, Any] = {}
    for spec in ACCOUNT_FLAGS:
        raw = params.get(param_name(spec.flag))
        if raw is None or (spec.kind == "list" and not raw):
            continue
        values[spec.key] = _convert(spec, raw)
    return values


def _convert(spec: AccountFlag, raw: Any) -> Any:
    if spec.kind == "list":
        return split_list(raw)
    if spec.kind == "secret":
        return read_password() if raw == PROMPT else raw
    if spec.kind == "path" and raw:
        return os.path.abspath(os.path.expanduser(raw))
    return raw


def split_list(values: tuple[str, ...] | list[str]) -> list[str]:
    """`("a,b", "c")` → `["a", "b", "c"]`; a single empty value means an empty list."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def read_password() -> str:
    """Prompt without echo on a terminal; otherwise read one line from stdin."""
    if sys.stdin.isatty():
        value = str(click.prompt("Password", hide_input=True, default="", show_default=False))
    else:
        value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise ConfigError("no password entered", hint="type it at the prompt or feed it on stdin")
    return value


class HalUsageError(click.UsageError):
    """A usage error printed on one line: `Error: <what> — <hint>`, exit 2."""

    def show(self, file: Any = None) -> None:
        command = self.ctx.command_path if self.ctx else "regwatch"
        click.echo(f"Error: {self.format_message()} — see '{command} --help'", err=True)


class HalCommand(click.Command):
    """A click command that also accepts Halyard's argument forms (see the module docstring)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, rewrite_args(self, args))
        except click.UsageError as exc:
            raise _one_line(exc, ctx) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            raise _one_line(exc, ctx) from None


def _one_line(exc: click.UsageError, ctx: click.Context) -> HalUsageError:
    if isinstance(exc, HalUsageError):
        return exc
    return HalUsageError(exc.format_message().rstrip("."), ctx)


def rewrite_args(command: click.Command, args: list[str]) -> list[str]:
    """Turn Halyard's forms into click's: split value runs, give bare booleans `true`."""
    options = {opt: p for p in command.params if isinstance(p, click.Option) for opt in p.opts}
    out: list[str] = []
    positional = 0
    last_run_value: int | None = None  # where in `out` the last value of a multi-value run is
    index = 0
    while index < len(args):
        token = args[index]
        index += 1
        option = options.get(token)
        if token == "--":
            positional += len(args) - index
            out += args[index - 1 :]
            break
        if option is None or option.is_flag or option.count:
            positional += 0 if token.startswith("-") else 1
            out.append(token)
            continue
        run, consumed = _value_run(args, index, option)
        index += consumed
        if option.multiple:
            for value in run or [""]:
                out += [token, value]
            if len(run) > 1:
                last_run_value = len(out) - 1
        else:
            out += [token, *run]
    if positional == 0 and last_run_value is not None and _wants_argument(command):
        # `… --repositories a b NAME [--more]`: the last value was meant as the NAME argument
        name = out[last_run_value]
        del out[last_run_value - 1 : last_run_value + 1]
        out.append(name)
    return out


def _value_run(args: list[str], index: int, option: click.Option) -> tuple[list[str], int]:
    """The values of the option at `args[index - 1]`, and how many tokens of `args` they take."""
    following = args[index] if index < len(args) else None
    if option.multiple:
        run: list[str] = []
        while index + len(run) < len(args) and not args[index + len(run)].startswith("-"):
            run.append(args[index + len(run)])
        return run, len(run)
    if isinstance(option.type, click.types.BoolParamType):
        if following is not None and following.lower() in _TRUE | _FALSE:
            return [following], 1
        return ["true"], 0  # a bare boolean flag means true
    if isinstance(option, PromptOption) and (following is None or following.startswith("-")):
        return [PROMPT], 0
    return ([following], 1) if following is not None else ([], 0)


def _wants_argument(command: click.Command) -> bool:
    return any(isinstance(p, click.Argument) and p.required for p in command.params)
