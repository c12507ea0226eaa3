"""``xnorfault export`` and ``xnorfault inject``: standard ONNX and bit-flip injection."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import typer
from rich.table import Table

from xnorfault.cli import _options as options
from xnorfault.cli._common import console, emit_json
from xnorfault.errors import XnorfaultError
from xnorfault.faults import FaultSource
from xnorfault.io import check_output_file


def export_command(
    run: Path = typer.Argument(..., help="Run directory of 'xnorfault train'."),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Model file to write (model.onnx, or model.tflite for lce)."
    ),
    format: options.ExportFormat = typer.Option(
        options.ExportFormat.onnx,
        "--format",
        help="onnx (standard ONNX for onnxruntime) or lce (Larq Compute Engine .tflite).",
    ),
    point: str | None = typer.Option(
        None,
        "--point",
        help="Fault point of the run to export, e.g. ber=0.04 (needed when the run has several).",
    ),
    repeat: int = typer.Option(0, "--repeat", min=0, help="Repeat of that point to export."),
    testset: Path | None = typer.Option(
        None, "--testset", help="Also write the preprocessed test split as .npz (x, y)."
    ),
    flip_seed: int = typer.Option(
        0, "--flip-seed", min=0, help="lce: seed of the in-model RandomUniform flip streams."
    ),
    min_agreement: float = typer.Option(
        0.99,
        "--min-agreement",
        help="onnx: the share of test images the export must give the trained network's class; "
        "below it nothing is written.",
    ),
    accept_low_parity: bool = typer.Option(
        False,
        "--accept-low-parity",
        help="onnx: write the export even below --min-agreement (recorded in its metadata).",
    ),
    as_json: options.JsonOption = False,
):
    """Export a trained network to standard ONNX that stock onnxruntime runs, or to a Larq
    Compute Engine .tflite with binary XNOR-popcount kernels, checking parity on its test set
    (LCE: against the ONNX export at p = 0, after auditing that every binary layer became an
    LCE binary kernel).

    Examples:

    ```
    xnorfault export runs/fm --point ber=0.04 -o model.onnx --testset test.npz
    xnorfault export runs/fm --point ber=0.04 --format lce -o model.tflite
    ```
    """
    if format == "lce":
        if output.suffix != ".tflite":
            raise XnorfaultError(f"--output {output} should end in .tflite for --format lce")
        if testset is not None and testset.suffix != ".npz":
            raise XnorfaultError(f"--testset {testset} should end in .npz")
        check_output_file(output, "--output")
        if testset is not None:
            check_output_file(testset, "--testset")
        _export_lce(run, output, point, repeat, testset, flip_seed, as_json)
        return
    from xnorfault.api import export_onnx

    with console.status("exporting…") if not as_json else nullcontext():
        summary = export_onnx(
            run,
            output,
            point=point,
            repeat=repeat,
            testset=testset,
            min_agreement=min_agreement,
            accept_low_parity=accept_low_parity,
        )
    if as_json:
        emit_json({"format": "onnx", **summary}, "export")
        return
    console.print(f"wrote {summary['output']} (binary sites: {', '.join(summary['binary_sites'])})")
    console.print(
        f"parity on {summary['test_images']} test images: argmax agreement {summary['argmax_agreement']:.4f}, "
        f"max |Δ logit| {summary['max_abs_logit_difference']:.2e} ({summary['images_differing']} "
        f"image(s) beyond {summary['parity_tolerance']:g}), accuracy {summary['onnx_test_accuracy']:.4f}"
    )
    if summary["parity"]["accepted_below_minimum"]:
        console.print(
            f"[yellow]below --min-agreement {summary['parity']['min_agreement']:g}: written as "
            "asked (--accept-low-parity), recorded in the model's metadata (xnorfault.parity)"
        )
    if testset is not None:
        console.print(f"wrote {summary['testset']}")


def _export_lce(run, output, point, repeat, testset, flip_seed, as_json) -> None:
    from xnorfault.exporters.lce import export_lce_run
    from xnorfault.runtimes.lce import lce_python

    lce_python()  # a missing LCE environment is reported before any work
    with console.status("exporting to Larq Compute Engine…") if not as_json else nullcontext():
        summary = export_lce_run(run, output, point, repeat, testset, flip_seed)
    if as_json:
        emit_json({"format": "lce", **summary}, "export")
        return
    console.print(
        f"wrote {summary['output']}: {summary['binary_kernels']} LCE binary kernels for "
        f"{summary['binary_layers']} binary layers ({', '.join(summary['matched_layers'])})"
    )
    console.print(
        f"parity with ONNX on {summary['test_images']} test images at p = 0: argmax agreement "
        f"{summary['argmax_agreement_with_onnx']:.4f}, max |Δ logit| {summary['max_abs_logit_difference_to_onnx']:.2e}, "
        f"accuracy LCE {summary['lce_test_accuracy']:.4f} / ONNX {summary['onnx_test_accuracy']:.4f}"
    )
    if summary["parity"]["accepted_below_minimum"]:
        console.print(
            f"[yellow]below --min-agreement {summary['parity']['min_agreement']:g}: written as "
            "asked (--accept-low-parity), recorded in the model's metadata (xnorfault.parity)"
        )
    if testset is not None:
        console.print(f"wrote {summary['testset']}")


@options.with_fault_options(single=True)
def inject_command(
    model: Path = typer.Argument(
        ..., help="ONNX model (exported by xnorfault, or any with binary activations)."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Injected model to write."),
    fault: FaultSource | None = None,
    layers: str | None = typer.Option(
        None, "--layers", help="Comma-separated binary sites to inject (default: all)."
    ),
    as_json: options.JsonOption = False,
):
    """Insert random bit flips at every binary activation of an ONNX model. The rates become
    graph inputs (p_flip_pos.SITE, p_flip_neg.SITE) defaulting to the values given here, and
    flip_seed makes the draw reproducible.

    Examples:

    ```
    xnorfault inject model.onnx -o faulty.onnx --ber 0.01
    xnorfault inject model.onnx -o faulty.onnx --voltage 0.5 --pulse 10ns --mram-device paper
    ```
    """
    from xnorfault.api import inject

    injection = inject(
        model,
        output,
        fault=fault,
        layers=None if layers is None else [s.strip() for s in layers.split(",") if s.strip()],
    )
    if as_json:
        emit_json(injection.to_dict(), "inject")
        return
    report = injection.report
    bits = {site.name: site.elements_per_image for site in report.sites}
    write = injection.write_model
    table = Table(
        title=f"Bit flips injected into {model.name} → {output}"
        + ("" if write["model"] == "iid" else f", write model {fault.write.label}")
    )
    for header in ("site", "bits per image", "p(+1→−1)", "p(−1→+1)"):
        table.add_column(header, justify="right")
    for site in injection.sites:
        table.add_row(
            site,
            "?" if bits.get(site) is None else f"{bits[site]:,}",
            f"{injection.rates[site]['pos_to_neg']:.4g}",
            f"{injection.rates[site]['neg_to_pos']:.4g}",
        )
    console.print(table)
    console.print(report.summary())
