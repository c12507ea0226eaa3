"""``xnorfault plot``: the accuracy-vs-epoch figure of a training run (the paper's Figs. 1–4)."""

from __future__ import annotations

from pathlib import Path

import typer

from xnorfault.cli._common import console, emit_json, run_points
from xnorfault.cli._options import JsonOption
from xnorfault.errors import XnorfaultError


def plot_command(
    run: Path = typer.Argument(..., help="Run directory of 'xnorfault train'."),
    output: Path = typer.Option(..., "--output", "-o", help="Figure file (.png, .pdf, .svg)."),
    band: str = typer.Option("std", "--band", help="Spread drawn around the mean: std or minmax."),
    as_json: JsonOption = False,
):
    """Test accuracy vs epoch for every fault point of a run, mean and spread over repeats
    (the paper's Figs. 1–4).

    Example:

    ```
    xnorfault plot runs/fm -o fig1.png
    ```
    """
    from xnorfault.io import check_figure_output
    from xnorfault.plots import plot_accuracy_vs_epoch
    from xnorfault.training.records import load_record

    check_figure_output(output)
    if band not in ("std", "minmax"):
        raise XnorfaultError(f"unknown --band {band!r}: use std or minmax")
    record = load_record(run)
    path = plot_accuracy_vs_epoch(record, output, band=band)
    if as_json:
        emit_json(
            {"run": str(run), "figure": str(path), "band": band, "points": run_points(record)},
            "plot",
        )
        return
    console.print(f"wrote {path}")
