"""``xnorfault plot``: the accuracy-vs-epoch figure of a training run (the paper's Figs. 1–4),
or several ``evaluate``/``optimize`` results overlaid in one figure."""

from __future__ import annotations

from pathlib import Path

import typer

from xnorfault.cli._common import console, emit_json, run_points
from xnorfault.cli._options import JsonOption
from xnorfault.errors import XnorfaultError


def plot_command(
    sources: list[Path] = typer.Argument(
        ...,
        help="A run directory of 'xnorfault train', or JSON files of 'evaluate --json' or "
        "'optimize --json' to overlay.",
        metavar="RUN | RESULT.json...",
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Figure file (.png, .pdf, .svg)."),
    band: str = typer.Option(
        "std", "--band", help="Spread drawn around a run's mean: std or minmax."
    ),
    labels: list[str] = typer.Option(
        [], "--label", help="Legend label of each JSON file, in order (default: its file name)."
    ),
    as_json: JsonOption = False,
):
    """Test accuracy vs epoch for every fault point of a run, mean and spread over repeats
    (the paper's Figs. 1–4); or several results in one figure: evaluate sweeps (accuracy vs
    voltage or BER, with yields where they have chips), evaluate --age results, or optimize
    fronts.

    Examples:

    ```
    xnorfault plot runs/fm -o fig1.png
    xnorfault plot ber0.json ber4.json ber4_previous.json -o overlay.png --label "BER 0" --label "BER 0.04" --label "BER 0.04, previous"
    ```
    """
    from xnorfault.io import check_figure_output

    check_figure_output(output)
    if band not in ("std", "minmax"):
        raise XnorfaultError(f"unknown --band {band!r}: use std or minmax")
    if len(sources) == 1 and (sources[0].is_dir() or sources[0].suffix.lower() != ".json"):
        _plot_run(sources[0], output, band, as_json)
        return
    _plot_results(sources, output, labels, as_json)


def _plot_run(run: Path, output: Path, band: str, as_json: bool) -> None:
    from xnorfault.plots import plot_accuracy_vs_epoch
    from xnorfault.training.records import load_record

    record = load_record(run)
    plot_accuracy_vs_epoch(record, output, band=band)
    if as_json:
        emit_json(
            {
                "run": str(run),
                "results": [],
                "figure": str(output),
                "band": band,
                "points": run_points(record),
            },
            "plot",
        )
        return
    console.print(f"wrote {output}")


def _plot_results(sources: list[Path], output: Path, labels: list[str], as_json: bool) -> None:
    from xnorfault.plots import plot_overlay
    from xnorfault.training.records import read_json_object

    if any(source.is_dir() for source in sources):
        raise XnorfaultError(
            "plot takes one run directory, or JSON files of evaluate/optimize --json to overlay, "
            "not both"
        )
    if labels and len(labels) != len(sources):
        raise XnorfaultError(
            f"--label is given {len(labels)} time(s) for {len(sources)} JSON file(s): give one "
            "per file, in order, or none"
        )
    if output.resolve() in {source.resolve() for source in sources}:
        raise XnorfaultError(f"-o {output} is one of the JSON files read: name another figure")
    documents = [
        (
            labels[index] if labels else source.stem,
            read_json_object(
                source, "a result of evaluate --json or optimize --json", "write it with --json"
            ),
        )
        for index, source in enumerate(sources)
    ]
    plot_overlay(documents, output)
    if as_json:
        emit_json(
            {
                "run": None,
                "results": [str(source) for source in sources],
                "figure": str(output),
                "band": None,
                "points": [{"point": label, "complete_repeats": None} for label, _ in documents],
            },
            "plot",
        )
        return
    console.print(f"wrote {output}")
