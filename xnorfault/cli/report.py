"""``xnorfault report``: a generated Markdown report of a training run and its evaluations."""

from __future__ import annotations

from pathlib import Path

import typer

from xnorfault.cli._common import console, emit_json, run_points
from xnorfault.cli._options import JsonOption
from xnorfault.errors import XnorfaultError


def report_command(
    run: Path = typer.Argument(..., help="Run directory of 'xnorfault train'."),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Markdown report to write (REPORT.md)."
    ),
    evaluation: list[Path] = typer.Option(
        [], "--evaluation", help="JSON output of 'xnorfault evaluate --json' (repeatable)."
    ),
    csv_path: Path | None = typer.Option(
        None, "--csv", help="Also write the per-epoch accuracy of every job as CSV."
    ),
    title: str | None = typer.Option(None, "--title", help="Report title."),
    discussion: Path | None = typer.Option(
        None, "--discussion", help="Markdown file appended as the report's discussion."
    ),
    as_json: JsonOption = False,
):
    """A generated Markdown report of a training run (figure, tables, comparison with the
    paper) and, optionally, of evaluations under MRAM write errors.

    Example:

    ```
    xnorfault report runs/fm --evaluation eval_ber0.json --evaluation eval_ber4.json -o REPORT.md --csv curves.csv
    ```
    """
    from xnorfault.io import atomic_write_text, check_output_file
    from xnorfault.plots import plot_accuracy_vs_epoch
    from xnorfault.report import build_report, curves_csv, load_evaluations
    from xnorfault.training.records import load_record, read_json_object

    if output.suffix.lower() != ".md":
        raise XnorfaultError(f"--output {output} should end in .md")
    from xnorfault.io import refuse_inputs_as_outputs, run_files

    figure = output.with_name(output.stem + "_accuracy_vs_epoch.png")
    inputs = {
        **run_files(run),
        **{path: "an evaluation read" for path in evaluation},
        discussion: "the discussion read",
    }
    refuse_inputs_as_outputs({"--output": output, "--csv": csv_path, "figure": figure}, inputs)
    check_output_file(output, "--output")
    if csv_path is not None:
        check_output_file(csv_path, "--csv")
    discussion_text = ""
    if discussion is not None:
        from xnorfault.io import check_regular_file

        check_regular_file(discussion, "--discussion")
        try:
            discussion_text = discussion.read_text(encoding="utf-8").strip()
        except UnicodeDecodeError:
            raise XnorfaultError(
                f"--discussion {discussion} is not UTF-8 text: save it as UTF-8 Markdown"
            ) from None
        except OSError as error:
            raise XnorfaultError(
                f"cannot read --discussion {discussion}: {error.strerror}"
            ) from None
    record = load_record(run)
    merged = run / "record.json"
    if merged.exists():
        full = read_json_object(
            merged, "the merged record of a training run", "run the training command again"
        )
        record = {**full, **record}
    evaluations = load_evaluations(evaluation)
    figure = output.with_name(output.stem + "_accuracy_vs_epoch.png")
    plot_accuracy_vs_epoch(record, figure)
    text = build_report(record, figure.name, evaluations, title)
    if discussion is not None:
        text += "\n## Discussion\n\n" + discussion_text + "\n"
    atomic_write_text(output, text)
    if csv_path is not None:
        atomic_write_text(csv_path, curves_csv(record))
    if as_json:
        emit_json(
            {
                "run": str(run),
                "report": str(output),
                "figure": str(figure),
                "csv": None if csv_path is None else str(csv_path),
                "evaluations": [str(path) for path in evaluation],
                "points": run_points(record),
            },
            "report",
        )
        return
    console.print(f"wrote {output} and {figure}" + (f" and {csv_path}" if csv_path else ""))
