"""The Typer application and the one place where errors become a message on stderr and an exit code."""

from __future__ import annotations

import importlib
import sys

import typer
from typer.core import TyperGroup

try:  # recent typer vendors click as typer._click; older releases use click itself
    from typer._click import exceptions as cx
except ImportError:  # pragma: no cover
    from click import exceptions as cx

from llmplan import __version__
from llmplan.errors import LlmplanError, RunError


def _fail(message: str, code: int) -> int:
    # One line, always: collapse any newline a message may carry.
    typer.echo(f"llmplan: error: {' '.join(str(message).split())}", err=True)
    return code


class _Interrupted(Exception):
    """Ctrl-C or SIGTERM during a command: one line on stderr, exit code 130."""


def _sigterm_interrupts() -> None:
    """SIGTERM (kill, a job scheduler, torchrun stopping its workers) is handled as Ctrl-C: a bench keeps and
    prints what it measured instead of dying mid-write."""
    import signal
    import threading

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, interrupt)


# Each command lives in its own module, imported only when that command runs (or for the full --help), so that a
# planner command pays for its own imports alone.
COMMANDS = {
    "models": "llmplan.cli.models_cmd",
    "hardware": "llmplan.cli.hardware_cmd",
    "memory": "llmplan.cli.memory_cmd",
    "compute": "llmplan.cli.compute_cmd",
    "serve": "llmplan.cli.serve_cmd",
    "plan": "llmplan.cli.plan_cmd",
    "chinchilla": "llmplan.cli.chinchilla_cmd",
    "fit": "llmplan.cli.fit_cmd",
    "bench": "llmplan.cli.bench_cmd",
}


def command_app() -> typer.Typer:
    """The Typer app on which a command module registers its one command."""
    return typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode="rich")


def _no_bool_metavar(command) -> None:
    """A flag takes no value: no "<bool>" beside it (or beside --help) in the help text."""
    for param in command.params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    original = command.get_help_option

    def get_help_option(ctx):
        option = original(ctx)
        if option is not None and option.metavar is None:
            option.metavar = ""
        return option

    command.get_help_option = get_help_option


class LlmplanGroup(TyperGroup):
    """Loads commands on demand, runs one, and maps every expected failure to one stderr line: 2 for bad input,
    1 for a failed run."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _no_bool_metavar(self)

    def list_commands(self, ctx) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx, name: str):
        if name not in COMMANDS:
            return super().get_command(ctx, name)
        if name not in self.commands:
            command = typer.main.get_command(importlib.import_module(COMMANDS[name]).app)
            command.name = name
            _no_bool_metavar(command)
            self.commands[name] = command
        return self.commands[name]

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:  # typer would turn it into a silent exit 130; say it once instead
            raise _Interrupted() from None

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        _sigterm_interrupts()
        try:
            code = super().main(args=args, prog_name=prog_name or "llmplan", complete_var=complete_var,
                                standalone_mode=False, **extra)
            code = code if isinstance(code, int) else 0
        except cx.UsageError as exc:  # bad option, missing argument, typer.BadParameter
            if type(exc).__name__ == "NoArgsIsHelpError":
                typer.echo(exc.format_message(), err=True)  # the help text itself
                code = 2
            else:
                code = _fail(exc.format_message(), 2)
        except cx.ClickException as exc:
            code = _fail(exc.format_message(), exc.exit_code)
        except LlmplanError as exc:
            code = _fail(str(exc), exc.exit_code)
        except RunError as exc:
            code = _fail(str(exc), exc.exit_code)
        except (typer.Abort, KeyboardInterrupt, _Interrupted):  # typer 0.29 keeps Abort/Exit in typer.exceptions
            code = _fail("interrupted", 130)
        except typer.Exit as exc:
            code = exc.exit_code
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=LlmplanGroup,
    name="llmplan",
    help="Capacity planner and scaling-law calculator for large language models.\n\n"
    "Examples:\n\n"
    "  llmplan models llama-2-7b\n\n"
    "  llmplan memory --model llama-2-7b --gpu h100 --zero 3 --dp 8 --seq 4096\n\n"
    "  llmplan compute --model llama-2-7b --tokens 1T --gpu h100 --gpus 64 --price 2.5\n\n"
    "  llmplan serve --model llama-3.1-70b --gpu h100 --tp 4 -i 1000 -o 500 --concurrency 64\n\n"
    "  llmplan chinchilla --flops 1e23",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"llmplan {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Capacity planner and scaling-law calculator for large language models."""
