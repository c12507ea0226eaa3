"""The ``xnorfault`` command line (typer).

Every command prints a one-line error and exits with status 2 on bad input; ``--json`` gives
machine-readable output on stdout.
"""

from __future__ import annotations

import signal
import sys
import threading
import warnings

import typer
from typer.exceptions import Abort, TyperException

from xnorfault import __version__
from xnorfault.cli._deprecated import rewrite_deprecated
from xnorfault.cli._help import polish_help
from xnorfault.cli.deploy import deploy_command
from xnorfault.cli.evaluate import evaluate_command
from xnorfault.cli.inspect import inspect_command
from xnorfault.cli.mram import mram_app
from xnorfault.cli.onnx import export_command, inject_command
from xnorfault.cli.optimize import optimize_command
from xnorfault.cli.plot import plot_command
from xnorfault.cli.report import report_command
from xnorfault.cli.train import train_command
from xnorfault.errors import IN_COMMAND_LINE, XnorfaultError

app = typer.Typer(
    name="xnorfault",
    help=(
        "Error-resilient binarized neural networks on low-voltage MRAM: MRAM write-error physics, "
        "fault-aware training, ONNX bit-flip injection and evaluation."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
app.add_typer(mram_app, name="mram")
app.command("train")(train_command)
app.command("plot")(plot_command)
app.command("report")(report_command)
app.command("inspect")(inspect_command)
app.command("export")(export_command)
app.command("inject")(inject_command)
app.command("evaluate")(evaluate_command)
app.command("optimize")(optimize_command)
app.command("deploy")(deploy_command)


def _show_version(value: bool):
    if value:
        typer.echo(f"xnorfault {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        help="Print the version and exit.",
        callback=_show_version,
        is_eager=True,
    ),
):
    """xnorfault: error-resilient XNOR-Nets for low-voltage MRAM."""


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the CLI, turning bad input into one line on stderr and exit code 2."""
    command = typer.main.get_command(app)
    polish_help(command)
    # warnings reach the user as one line while the command runs; the process's own display
    # is restored after it (main runs inside other programs too: tests, notebooks)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        sys.exit(_run(command, argv))


INTERRUPTED = (
    "interrupted: what was finished is kept (every file is written whole); "
    "rerun the same command to resume"
)


class Terminated(BaseException):
    """SIGTERM, raised where the command is, so that it unwinds as an interrupt does."""


class Interrupted(BaseException):
    """SIGINT (Ctrl-C), raised in place of KeyboardInterrupt, which typer would turn into a
    silent exit 130 of its own."""


def _terminate(signum, frame) -> None:
    raise Terminated


def _interrupt(signum, frame) -> None:
    raise Interrupted


def _run(command, argv: list[str] | None) -> int:
    """The command's exit status; bad input as one line on stderr and status 2."""
    argv = rewrite_deprecated(sys.argv[1:] if argv is None else list(argv))
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    interrupts = main_thread and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
    previous_interrupt = signal.signal(signal.SIGINT, _interrupt) if interrupts else None
    in_command_line = IN_COMMAND_LINE.set(True)
    try:
        result = command.main(args=argv, prog_name="xnorfault", standalone_mode=False)
    except XnorfaultError as error:
        _fail(str(error))
    except TyperException as error:  # usage errors: unknown option, missing or bad value
        context = getattr(error, "ctx", None)
        if type(error).__name__ == "NoArgsIsHelpError":  # typer has printed the help already
            sys.exit(0)
        hint = f" (see '{context.command_path} --help')" if context is not None else ""
        _fail(error.format_message().replace("\n", " ") + hint)
    except Abort as abort:
        # click turns any EOFError into Abort; only an interrupt is a user's abort
        cause = abort.__cause__ or abort.__context__
        if isinstance(cause, EOFError):
            _fail(
                f"a file ended before its content did ({cause or 'EOFError'}): it is truncated or empty"
            )
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except (KeyboardInterrupt, Interrupted):
        print(INTERRUPTED, file=sys.stderr)
        sys.exit(130)
    except Terminated:
        print(INTERRUPTED.replace("interrupted", "terminated", 1), file=sys.stderr)
        sys.exit(143)
    finally:
        IN_COMMAND_LINE.reset(in_command_line)
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
        if interrupts:
            signal.signal(signal.SIGINT, previous_interrupt)
    return result if isinstance(result, int) else 0


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings reach the user as one line on stderr, without the source location."""
    print(f"warning: {str(message).splitlines()[0]}", file=sys.stderr)


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)
