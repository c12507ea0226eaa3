"""``xnorfault optimize``: per-site write voltages and pulses, least energy within a budget."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from xnorfault.cli import _options as options
from xnorfault.cli._common import console, emit_json
from xnorfault.progress import progress_bar


def optimize_command(
    model: Path = typer.Argument(..., help="ONNX model, clean or injected."),
    data: str = typer.Option(..., "--data", help="Test set: .npz of x, y (split in halves)."),
    max_drop: str = typer.Option(
        ..., "--max-drop", help="Accuracy budget: the largest drop allowed, 1pt, 1% or 0.01."
    ),
    mram_device: options.MramDeviceOption = "paper",
    pulse: str = typer.Option(
        "10ns",
        "--pulse",
        help="Write pulse(s): one (10ns), a list, LOW:HIGH (five log-spaced) or LOW:HIGH:STEP.",
    ),
    voltage: str | None = typer.Option(
        None,
        "--voltage",
        help="Write voltages: LOW:HIGH (10 mV steps), LOW:HIGH:STEP or a list (default: from the "
        "critical voltage to the conventional point's).",
    ),
    write_model: options.WriteModelOption = None,
    initial_state: options.InitialStateOption = None,
    confidence: float = typer.Option(
        0.95, "--confidence", help="Confidence of the held-out bound on the drop."
    ),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Runs per point of the search."),
    verify_repeats: int = typer.Option(
        10, "--verify-repeats", min=2, help="Runs per verification on the held-out half."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the split and of every run's flips."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="Runtime threads."),
    limit_test: int | None = typer.Option(
        None, "--limit-test", min=4, help="Use the first N test images."
    ),
    output_name: str | None = typer.Option(
        None, "--output-name", help="The model output that holds the logits (when it has several)."
    ),
    layout: options.LayoutOption = None,
    chips: int | None = typer.Option(
        None,
        "--chips",
        min=1,
        help="Also run the answer on N chips drawn from the device's [variation]: per-chip drops and yield.",
    ),
    chip_seed: int = typer.Option(0, "--chip-seed", help="Seed of the chips' cells."),
    workers: options.WorkersOption = 1,
    executor: options.ExecutorOption = options.ExecutorChoice.local,
    address: options.AddressOption = None,
    output: Path | None = typer.Option(
        None, "-o", "--output", help="Write the model injected with every site's chosen rates."
    ),
    operating_points: Path | None = typer.Option(
        None,
        "--operating-points",
        help="Write the per-site operating points as TOML (for 'xnorfault deploy').",
    ),
    plot_path: Path | None = typer.Option(
        None, "--plot", help="Draw energy against accuracy, per site and shared."
    ),
    as_json: options.JsonOption = False,
):
    """The least activation-write energy per inference within an accuracy budget: one MRAM
    write voltage and pulse per binary site, searched on half of the test set and verified on
    the other half (the upper confidence bound of the drop within --max-drop).

    Examples:

    ```
    xnorfault optimize model.onnx --data test.npz --max-drop 0.01
    xnorfault optimize model.onnx --data test.npz --max-drop 0.01 --pulse 2ns:20ns -o tuned.onnx --plot pareto.png
    ```
    """
    from xnorfault.io import atomic_write_text, check_figure_output, check_output_file
    from xnorfault.optimization import operating_points_toml, optimize

    write = options.write_model(write_model, initial_state)
    from xnorfault.graph.rewrite import model_files
    from xnorfault.io import refuse_inputs_as_outputs

    inputs = {**model_files(model), Path(data): "the test set"}
    if Path(mram_device).suffix.lower() == ".toml":
        inputs[Path(mram_device)] = "the device file"
    refuse_inputs_as_outputs(
        {"-o": output, "--operating-points": operating_points, "--plot": plot_path}, inputs
    )
    for path, option in ((output, "-o"), (operating_points, "--operating-points")):
        if path is not None:
            check_output_file(path, option)
    if plot_path is not None:
        check_figure_output(plot_path, "--plot")
    progress = progress_bar(disabled=as_json)
    with progress:
        result = optimize(
            model,
            data,
            max_drop,
            mram_device=mram_device,
            pulses=pulse,
            voltages=voltage,
            write=write,
            confidence=confidence,
            repeats=repeats,
            verify_repeats=verify_repeats,
            seed=seed,
            threads=threads,
            limit=limit_test,
            output=output_name,
            layout=None if layout is None else layout.value,
            progress=progress,
            chips=chips,
            chip_seed=chip_seed,
            workers=workers,
            executor=executor.value,
            address=address,
        )
    if output is not None:
        result.save_model(model, output)
    if operating_points is not None:
        atomic_write_text(operating_points, operating_points_toml(result))
    if plot_path is not None:
        result.plot(plot_path)
    if as_json:
        emit_json(result.to_dict(), "optimize")
        return
    print_result(result.to_dict())


def print_result(result: dict) -> None:
    from xnorfault.units import format_duration, format_energy, format_voltage

    verification = result["verification"]
    table = Table(
        title=f"per-site operating points within a drop of {result['max_drop']:g} "
        f"(device {result['device']['name']}, write model {result['write_model']['model']})"
    )
    for header in ("site", "voltage", "pulse", "WER P→AP", "WER AP→P", "bits/image", "energy"):
        table.add_column(header, justify="right")
    table.add_column("share", justify="right")
    for site in result["sites"]:
        table.add_row(
            site["site"],
            format_voltage(site["voltage"]),
            format_duration(site["pulse"]),
            f"{site['wer_p_to_ap']:.3g}",
            f"{site['wer_ap_to_p']:.3g}",
            f"{site['bits_per_image']:,}",
            format_energy(site["energy_per_inference"]),
            f"{site['energy_share'] * 100:.0f} %",
        )
    console.print(table)
    total = result["energy_per_inference"]
    shared = result["shared"]
    lines = [
        f"activation-write energy per inference: {format_energy(total)}"
        + ("" if result["per_site_kept"] else " (per-site points saved nothing: the shared point)"),
        f"  shared point {format_voltage(shared['voltage'])}, {format_duration(shared['pulse'])}: "
        f"{format_energy(shared['energy_per_inference'])} (per-site/shared {result['energy_vs_shared']:.3f})",
    ]
    conventional = result.get("conventional")
    if conventional:
        lines.append(
            f"  conventional point (WER 1e-6 both directions) {format_voltage(conventional['voltage'])}, "
            f"{format_duration(conventional['pulse'])}: {format_energy(conventional['energy_per_inference'])} "
            f"({(1 - result['energy_vs_conventional']) * 100:.0f} % saved)"
        )
    lines.append(
        f"held-out check on {verification['images']} images ({verification['repeats']} runs): "
        f"accuracy {verification['accuracy_mean']:.4f} against {verification['baseline_accuracy']:.4f} "
        f"error-free, drop {verification['drop']:+.4f}, upper {verification['confidence'] * 100:g} % "
        f"bound {verification['drop_upper']:.4f} ≤ {result['max_drop']:g} (Bonferroni over "
        f"{verification['verifications']} checks)"
    )
    drawn = result.get("chips")
    if drawn:
        low, high = drawn["yield_ci95"]
        lines.append(
            f"on {drawn['count']} chips (seed {drawn['seed']}, {drawn['repeats']} runs each): mean drop "
            f"{drawn['mean_drop']:+.4f}, worst {drawn['worst_drop']:+.4f}, yield within the budget "
            f"{drawn['yield']:.2f} (95 % CI [{low:.2f}, {high:.2f}])"
        )
    lines.append(
        f"search: {result['evaluations']} evaluations of a test-set half "
        f"({result['images_inferred']:,} images inferred), {result['search']['candidates']} candidate points"
    )
    for line in lines:
        console.print(line)
