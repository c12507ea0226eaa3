"""Helpers shared by the benchmarks."""

from __future__ import annotations

from xnorfault.cli import main as cli


def run_cli(*args: str) -> None:
    """Run an xnorfault command in-process; raise if it fails."""
    try:
        cli(list(args))
    except SystemExit as done:
        if done.code:
            raise
