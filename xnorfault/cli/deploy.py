"""``xnorfault deploy``: a bundle that evaluates a trained network on a Raspberry Pi."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import typer

from xnorfault.cli._common import console, emit_json
from xnorfault.cli._options import (
    InitialStateOption,
    JsonOption,
    LayoutOption,
    MramDeviceOption,
    WriteModelOption,
)
from xnorfault.cli._options import (
    write_model as write_model_of_choices,
)


def deploy_command(
    run: Path = typer.Argument(
        ..., help="Run directory of 'xnorfault train', or an ONNX model (then with --data)."
    ),
    target: str = typer.Option(
        ...,
        "--target",
        help="raspberry-pi-4, raspberry-pi-5, raspberry-pi (= 4) or a target .toml.",
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Bundle folder to write."),
    point: str | None = typer.Option(
        None, "--point", help="Fault point of the run, e.g. ber=0.04 (needed when it has several)."
    ),
    repeat: int = typer.Option(0, "--repeat", min=0, help="Repeat of that point."),
    mram_device: MramDeviceOption = "paper",
    lce: bool = typer.Option(
        False, "--lce", help="Also export model.tflite for LCE's lce_benchmark_model."
    ),
    wheel: Path | None = typer.Option(
        None, "--wheel", help="xnorfault wheel to ship (default: built from the source tree)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty bundle folder."),
    data: Path | None = typer.Option(
        None, "--data", help="An ONNX model's test set (.npz of x, y), shipped as test.npz."
    ),
    layout: LayoutOption = None,
    output_name: str | None = typer.Option(
        None,
        "--output-name",
        help="An ONNX model's output holding the logits (default: its only float output).",
    ),
    operating_points: Path | None = typer.Option(
        None,
        "--operating-points",
        help="Per-site write voltages and pulses (from 'xnorfault optimize --operating-points'): "
        "the model's default rates, shipped as operating_points.toml.",
    ),
    write_model: WriteModelOption = None,
    initial_state: InitialStateOption = None,
    as_json: JsonOption = False,
):
    """Write a self-contained bundle for a target: the injected ONNX model (rates as inputs),
    the preprocessed test set, the MRAM device, the target profile, a wheel of xnorfault, pinned
    aarch64 requirements and a README with the commands to run there.

    Examples:

    ```
    xnorfault deploy runs/fm --point ber=0.04 --target raspberry-pi-4 -o bundle/
    xnorfault deploy cnv_qonnx.onnx --data test.npz --target raspberry-pi-4 -o bundle/
    ```
    """
    from xnorfault.deploy import (
        DeployBundle,
        DeployMemory,
        DeployRequest,
        DeploySource,
        deploy,
    )
    from xnorfault.targets import load_target

    load_target(target)  # an unknown target is reported before any work
    write = write_model_of_choices(write_model, initial_state)
    with console.status("building the bundle…") if not as_json else nullcontext():
        manifest = deploy(
            DeployRequest(
                source=DeploySource(
                    path=run,
                    point=point,
                    repeat=repeat,
                    data=data,
                    layout=None if layout is None else layout.value,
                    output_name=output_name,
                ),
                bundle=DeployBundle(
                    output=output, target=target, lce=lce, wheel=wheel, force=force
                ),
                memory=DeployMemory(
                    device=mram_device, write=write, operating_points=operating_points
                ),
            )
        )
    if as_json:
        emit_json(manifest, "deploy")
        return
    console.print(
        f"wrote {manifest['output']}/ for {manifest['target']['description']}: "
        + ", ".join(sorted(manifest["files"]))
    )
    console.print(f"next: copy it to the target and follow {manifest['output']}/README.md")
