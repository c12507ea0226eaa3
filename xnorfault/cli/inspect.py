"""``xnorfault inspect``: what xnorfault sees in an ONNX model."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import typer
from rich.table import Table

from xnorfault.cli import _options as options
from xnorfault.cli._common import console, emit_json


def inspect_command(
    model: Path = typer.Argument(..., help="ONNX model: xnorfault's, QONNX, or any other."),
    output_name: options.OutputNameOption = None,
    layout: options.LayoutOption = None,
    as_json: options.JsonOption = False,
):
    """What xnorfault sees in a model: inputs and outputs, the image input it will feed and the
    output it reads, each binary activation site (pattern, shape, bits per image), binary
    weights, QONNX quantizers and what becomes of them, and anything onnxruntime cannot run.
    The first command to run on a model from elsewhere.

    Examples:

    ```
    xnorfault inspect model.onnx
    xnorfault inspect cnv_qonnx.onnx --json
    ```
    """
    from xnorfault.api import inspect

    with console.status("inspecting…") if not as_json else nullcontext():
        report = inspect(
            model, output_name=output_name, layout=None if layout is None else layout.value
        )
    if as_json:
        emit_json(report.to_dict(), "inspect")
        return
    print_report(report)


def _shape(dims) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in dims) + ")"


def print_report(report) -> None:
    producer = f", produced by {report.producer}" if report.producer else ""
    console.print(f"[bold]{report.model}[/bold]: ONNX opset {report.opset}{producer}")
    for kind, tensors in (("input", report.inputs), ("output", report.outputs)):
        for tensor in tensors:
            console.print(f"  {kind} {tensor['name']}: {tensor['dtype']} {_shape(tensor['shape'])}")
    if report.data_input:
        data = report.data_input
        batch = f"fixed batch {data['fixed_batch']}" if data["fixed_batch"] else "any batch"
        layout = f", {data['layout']}" if data["layout"] else ""
        console.print(
            f"  images go to {data['name']} ({data['dtype']}{layout}, {batch}); logits from {report.logits_output}"
        )
    table = Table(title=f"{len(report.sites)} binary activation site(s)")
    for header, justify in (
        ("site", "left"),
        ("found as", "left"),
        ("shape", "right"),
        ("bits per image", "right"),
    ):
        table.add_column(header, justify=justify)
    for site in report.sites:
        bits = "?" if site.elements_per_image is None else f"{site.elements_per_image:,}"
        table.add_row(site.name, site.pattern, _shape(site.shape), bits)
    if report.sites:
        total = report.activation_bits_per_image
        table.add_section()
        table.add_row("total", "", "", "?" if total is None else f"{total:,}")
    console.print(table)
    if report.binary_weights:
        weights = sum(w.elements for w in report.binary_weights)
        console.print(
            f"binary weights: {len(report.binary_weights)} tensor(s), {weights:,} bits "
            f"({', '.join(f'{w.op} {w.node}' for w in report.binary_weights[:4])}"
            f"{', …' if len(report.binary_weights) > 4 else ''})"
        )
    others = [q for q in report.quantizers if not q["binary"]]
    for q in others:
        width = "?" if q["bit_width"] is None else f"{q['bit_width']:g}"
        console.print(
            f"quantizer {q['op']} {q['node']} → {q['output']}: {width}-bit {q['kind']}, {q['result']}"
            + (f" ({q['detail']})" if q["detail"] else "")
        )
    for node in report.unsupported:
        console.print(f"[red]not runnable[/red]: {node['domain']}.{node['op']} {node['node']}")
    if report.onnxruntime_error:
        console.print(f"[red]onnxruntime[/red]: {report.onnxruntime_error}")
    for action in report.actions:
        console.print(f"xnorfault {action}")
