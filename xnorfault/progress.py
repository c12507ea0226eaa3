"""The progress display of long work (training, evaluation, optimisation), shared by the
command line and the Python API."""

from __future__ import annotations

from rich.console import Console


def progress_bar(disabled: bool):
    """A transient rich progress display on stderr (stdout stays clean for --json)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=disabled,
    )
