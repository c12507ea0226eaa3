"""``xnorfault evaluate``: accuracy and latency under simulated MRAM write errors."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from xnorfault.cli import _options as options
from xnorfault.cli._common import console, emit_json
from xnorfault.fault_options import SWEEP_FAULT_OPTIONS
from xnorfault.faults import FaultSource, WriteModel

# evaluate's parameters the command fills itself: the rest reach the API by name
_HANDLED_HERE = ("model", "data", "fault", *SWEEP_FAULT_OPTIONS, "merge", "log", "progress")


@options.with_fault_options()
def evaluate_command(
    context: typer.Context,
    model: Path | None = typer.Argument(
        None, help="ONNX model, injected or clean (then injected in memory)."
    ),
    data: str | None = typer.Option(
        None,
        "--data",
        help="Test set: .npz from 'xnorfault export --testset', or a dataset spec (needs torch).",
    ),
    fault: FaultSource | None = None,
    repeats: int = typer.Option(
        20, "--repeats", min=1, help="Repeats per point, all on the same images."
    ),
    batch_size: int | None = typer.Option(
        None,
        "--batch-size",
        min=1,
        help="Batch size of the accuracy runs (default 256 or the target's).",
    ),
    latency_batches: str | None = typer.Option(
        None,
        "--latency-batches",
        help="Batch sizes to time, e.g. 1,256: the model's own latency (its graph without flips) and the simulation's overhead beside it (skipped without --batch).",
    ),
    latency_iterations: int = typer.Option(
        20, "--latency-iterations", min=1, help="Timed runs per batch size and point."
    ),
    threads: int | None = typer.Option(
        None, "--threads", min=1, help="Runtime threads (default: all cores, or the target's)."
    ),
    backend: options.BackendChoice = typer.Option(
        options.BackendChoice.auto,
        "--backend",
        help="auto (from the extension: .onnx, .tflite), onnxruntime, lce, or lce-benchmark "
        "(accuracy from the ONNX model, latency from lce_benchmark_model).",
    ),
    lce_benchmark_binary: Path | None = typer.Option(
        None,
        "--lce-benchmark-binary",
        help="LCE's lce_benchmark_model (for --backend lce-benchmark).",
    ),
    lce_model: Path | None = typer.Option(
        None, "--lce-model", help="The .tflite to time (default: the model path with .tflite)."
    ),
    target: str | None = typer.Option(
        None,
        "--target",
        help="Target profile (raspberry-pi-4, raspberry-pi-5, host or a .toml): default threads and "
        "batch sizes, recorded in the result.",
    ),
    seed: int = typer.Option(
        0, "--seed", help="Campaign seed: every batch run draws its own flips from it."
    ),
    limit_test: int | None = typer.Option(
        None, "--limit-test", min=1, help="Use only the first N test images."
    ),
    max_drop: str | None = typer.Option(
        None,
        "--max-drop",
        help="Report the lowest voltage (or highest BER) within this accuracy drop: 1pt, 1% or 0.01.",
    ),
    per_layer: bool = typer.Option(
        False, "--per-layer", help="Also flip one site at a time (layer sensitivity)."
    ),
    target_ci: float | None = typer.Option(
        None,
        "--target-ci",
        help="Add repeats until each point's 95 % interval has at most this half-width "
        "(accuracy, e.g. 0.005), up to --max-repeats.",
    ),
    max_repeats: int = typer.Option(
        200, "--max-repeats", min=2, help="The most repeats --target-ci may use per point."
    ),
    chips: int | None = typer.Option(
        None,
        "--chips",
        min=1,
        help="Draw N chips from the device's [variation] and evaluate each with its own cells "
        "(per-address WER); report the spread across chips and, with --max-drop, the yield.",
    ),
    chip_seed: int = typer.Option(
        0, "--chip-seed", help="Seed of the chips' cells: chip k of a seed is always the same."
    ),
    age: str | None = typer.Option(
        None,
        "--age",
        help="Keep the binary weights in MRAM and evaluate them this long after their write, "
        "e.g. 0 or 1d,1y,10y: each chip (--chips) gets its own fixed wrong weights.",
    ),
    temperature: str | None = typer.Option(
        None, "--temperature", help="Temperature of the weight memory, e.g. 85C (default 25 °C)."
    ),
    weight_voltage: str | None = typer.Option(
        None,
        "--weight-voltage",
        help="Write voltage of the weights (default: the conventional point, WER 1e-6).",
    ),
    weight_pulse: str | None = typer.Option(
        None, "--weight-pulse", help="Write pulse of the weights (default 10ns)."
    ),
    weight_erased: options.ErasedChoice | None = typer.Option(
        None,
        "--weight-erased",
        help="State of the weight memory before the write: none (every write switches), pos, "
        "neg, random.",
    ),
    read_voltage: str | None = typer.Option(
        None, "--read-voltage", help="Read voltage of the weights (default 0.1V)."
    ),
    read_pulse: str | None = typer.Option(
        None, "--read-pulse", help="Read pulse of the weights (default 5ns)."
    ),
    read_direction: options.DirectionChoice | None = typer.Option(
        None,
        "--read-direction",
        help="Write direction the read current pushes (p_to_ap disturbs weights stored as +1).",
    ),
    reads_per_inference: int | None = typer.Option(
        None, "--reads-per-inference", min=0, help="Reads of each weight per inference (default 1)."
    ),
    inferences: str | None = typer.Option(
        None,
        "--inferences",
        help="Inferences since the write: a count (1e6) or a rate (10/s), times the age.",
    ),
    workers: options.WorkersOption = 1,
    executor: options.ExecutorOption = options.ExecutorChoice.local,
    address: options.AddressOption = None,
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Keep every job's result in this campaign folder: a rerun skips finished jobs.",
    ),
    shard: str | None = typer.Option(
        None,
        "--shard",
        help="Run only slice I of N of the campaign's jobs (with --out), counted from 1, e.g. 1/4.",
    ),
    merge: Path | None = typer.Option(
        None,
        "--merge",
        help="Assemble the result of a campaign folder from its finished jobs (no model, no --data).",
    ),
    mram_device_name: str = "paper",
    output_name: options.OutputNameOption = None,
    layout: options.LayoutOption = None,
    write: WriteModel | None = None,
    log: list[str] = typer.Option(
        [],
        "--log",
        help="Also record the sweep as an MLflow run (mlflow: mlflow.db beside the model, or "
        "MLFLOW_TRACKING_URI).",
    ),
    csv_path: Path | None = typer.Option(None, "--csv", help="Write the points as CSV."),
    plot_path: Path | None = typer.Option(
        None,
        "--plot",
        help="Draw accuracy vs voltage (or BER) into this file; with --per-layer also "
        "FILE_per_layer, with --chips and --max-drop also FILE_yield.",
    ),
    wide: bool = typer.Option(
        False, "--wide", help="Show every column of the table (default: those that fit 80)."
    ),
    as_json: options.JsonOption = False,
):
    """Accuracy (mean, std, 95 % interval over repeats) and latency of a model under bit flips,
    swept over BER or MRAM write voltage, against the error-free baseline.

    Examples:

    ```
    xnorfault evaluate faulty.onnx --data test.npz --ber 0,0.01,0.05 --repeats 20
    xnorfault evaluate model.onnx --data test.npz --voltage 0.45:0.85:0.05 --pulse 10ns --max-drop 0.01 --plot acc.png
    ```
    """
    from xnorfault.api import evaluate
    from xnorfault.evaluation.results import points_csv
    from xnorfault.io import atomic_write_text, check_figure_output, check_output_file

    figures = _figures(
        plot_path, per_layer, chips is not None and max_drop is not None and age is None
    )
    _refuse_overwriting_inputs(model, data, lce_model, mram_device_name, figures, csv_path)
    for path in figures.values():
        check_figure_output(path, "--plot")
    if csv_path is not None:
        check_output_file(csv_path, "--csv")
    evaluation = evaluate(
        model,
        data,
        fault=fault,
        write_model=None if write is None else write.model,
        # iid keeps no state: the state the options default to is not the user's to pass on
        initial_state=None if write is None or write.model == "iid" else write.initial_state,
        mram_device=mram_device_name,
        merge=merge,
        log=log,
        progress=not as_json,
        **options.passed_through(context, evaluate, exclude=_HANDLED_HERE),
    )
    result = evaluation.to_dict()
    if not evaluation.complete:
        if as_json:
            emit_json(result, "evaluate")
        else:
            print_campaign_state(result["campaign"])
        return
    if csv_path is not None:
        atomic_write_text(csv_path, points_csv(result))
    for kind, path in figures.items():
        evaluation.plot(path, kind)
    if as_json:
        emit_json(result, "evaluate")
        return
    if result.get("weight_memory") is not None:
        print_weight_result(result)
        return
    print_result(result, result["latency_batches"], wide)


def _refuse_overwriting_inputs(model, data, lce_model, device, figures, csv_path) -> None:
    """No figure or CSV is the model, its external data, the test set, the LCE model or the
    device file this evaluation reads."""
    from xnorfault.graph.rewrite import model_files
    from xnorfault.io import refuse_inputs_as_outputs

    inputs = {} if model is None else model_files(model)
    if data is not None and Path(data).is_file():
        inputs[Path(data)] = "the test set"
    inputs[lce_model] = "the LCE model"
    if Path(device).suffix.lower() == ".toml":
        inputs[Path(device)] = "the device file"
    outputs = {"--csv": csv_path, **{f"--plot ({kind})": path for kind, path in figures.items()}}
    refuse_inputs_as_outputs(outputs, inputs)


def _figures(plot_path: Path | None, per_layer: bool, chip_yield: bool) -> dict[str, Path]:
    """The figures ``--plot FILE`` draws: the sweep in FILE, and beside it the per-site
    sensitivity (``FILE_per_layer``, with --per-layer) and the chip yield (``FILE_yield``,
    with --chips and --max-drop)."""
    if plot_path is None:
        return {}
    figures = {"sweep": plot_path}
    for kind, wanted in (("per_layer", per_layer), ("yield", chip_yield)):
        if wanted:
            figures[kind] = plot_path.with_name(f"{plot_path.stem}_{kind}{plot_path.suffix}")
    return figures


def print_campaign_state(campaign: dict) -> None:
    """What a shard did and what the campaign still lacks."""
    shard = campaign.get("shard")
    where = f"shard {shard[0]}/{shard[1]}" if shard else "this run"
    console.print(
        f"campaign {campaign['folder']}: {where} ran {campaign['run_here']} job(s) "
        f"({campaign['already_done']} already done); {campaign['missing']} of "
        f"{campaign['jobs']} jobs still missing (points: {', '.join(campaign['incomplete_points'])}). "
        f"Run the other shards, then: xnorfault evaluate --merge {campaign['folder']}"
    )


def print_weight_result(result: dict) -> None:
    """The accuracy-vs-age table of a weight-memory evaluation."""
    from xnorfault.mram.weights import format_age

    info = result["backend"]
    points = result["points"]
    table = Table(
        title=f"{Path(info['model'] or 'model').name} on {result['test_images']} test images — "
        f"error-free accuracy {result['baseline_accuracy']:.4f}; "
        f"{points[0]['binary_weights']:,} binary weights in MRAM"
    )
    columns = ["age", "P(+1 wrong)", "P(−1 wrong)", "wrong weights", "chips' mean", "95 % interval"]
    columns += ["5th pct", "worst", "drop"]
    has_yield = any(p.get("yield") is not None for p in points)
    if has_yield:
        columns.append("yield (95 % CI)")
    for header in columns:
        table.add_column(header, justify="right")
    for p in points:
        cells = [
            format_age(p["age"]),
            f"{p['weight_error']['pos']:.3g}",
            f"{p['weight_error']['neg']:.3g}",
            f"{p['wrong_share']:.3g}",
            f"{p['accuracy_mean']:.4f}",
            f"[{p['ci95'][0]:.4f}, {p['ci95'][1]:.4f}]",
            f"{p['chip_accuracy']['p5']:.4f}",
            f"{p['chip_accuracy']['worst']:.4f}",
            f"{p['accuracy_drop']:+.4f}",
        ]
        if has_yield:
            low, high = p["yield_ci95"]
            cells.append(f"{p['yield']:.2f} [{low:.2f}, {high:.2f}]")
        table.add_row(*cells)
    console.print(table)
    console.print(result["weight_memory_summary"])
    chips = result["weight_chips"]
    console.print(
        f"chips: {chips['count']} (chip seed {chips['seed']}), each with its own fixed wrong "
        f"weights{' and cells' if chips['varied'] else ''}; activations: "
        f"{points[0]['activation_point']}; each chip's accuracy is the mean of "
        f"{points[0]['repeats']} run(s)"
    )
    drop = result.get("max_drop")
    if drop:
        if drop["age"] is None:
            console.print(
                f"no age is shown within {drop['max_drop']:g} of the baseline by its 95 % interval"
            )
        else:
            console.print(
                f"the weights hold the accuracy within {drop['max_drop']:g} (shown by the "
                f"interval over chips) up to an age of {format_age(drop['age'])}: write them "
                "again before the next age swept"
            )


def _narrow_table(result: dict, latency_batches) -> Table:
    """The points in the columns that fit 80 characters (an SSH session to a Pi): the point,
    the accuracy with its 95 % half-width, the drop's 95 % interval (images and flips, else
    the accuracy's over chips), the yield, the energy per bit, the model's p50 latency;
    ``--wide`` shows every column."""
    from xnorfault.units import format_energy

    points = result["points"]
    chips = any(p.get("chips") is not None for p in points)
    has_yield = any(p.get("yield") is not None for p in points)
    voltage = any(p.get("voltage") is not None for p in points)
    table = Table(
        title=f"error-free accuracy {result['baseline_accuracy']:.4f} on "
        f"{result['test_images']} images (--wide: every column)"
    )
    columns = ["point", "chips' mean ± 95 %" if chips else "accuracy ± 95 %", "drop 95 %"]
    columns += ["yield"] * has_yield + ["energy/bit"] * voltage
    columns += [f"p50 b{b} (ms)" for b in latency_batches]
    for header in columns:
        table.add_column(header, justify="right")
    for p in points:
        low, high = p["ci95"]
        interval = p.get("drop_ci95") or [
            result["baseline_accuracy"] - high,
            result["baseline_accuracy"] - low,
        ]
        cells = [
            p["label"],
            f"{p['accuracy_mean']:.3f} ± {(high - low) / 2:.3f}",
            f"[{interval[0]:+.3f}, {interval[1]:+.3f}]",
        ]
        if has_yield:
            cells.append("" if p.get("yield") is None else f"{p['yield']:.2f}")
        if voltage:
            cells.append(format_energy(p["write_energy"]))
        cells += [f"{p['latency'][str(b)]['p50_ms']:.3f}" for b in latency_batches]
        table.add_row(*cells)
    return table


def print_result(result: dict, latency_batches, wide: bool = False) -> None:
    from xnorfault.units import endurance_phrase, endurance_text

    info = result["backend"]
    if not wide:
        console.print(
            f"{Path(info['model'] or 'model').name} ({info['backend']} "
            f"{info['runtime_version']}, {info['threads']} threads)"
        )
    table = Table(
        title=f"{Path(info['model'] or 'model').name} on {result['test_images']} test images — "
        f"error-free accuracy {result['baseline_accuracy']:.4f} ({info['backend']} {info['runtime_version']}, {info['threads']} threads)"
    )
    columns = ["point", "p(+1→−1)", "p(−1→+1)", "accuracy", "± std", "95 % interval"]
    # the drop as in the JSON: error-free accuracy − accuracy (positive: a loss)
    columns.append("drop")
    paired = any(p.get("drop_ci95") is not None for p in result["points"])
    if paired:
        columns.append("drop 95 % (images + flips)")
    sized = any(p.get("target_ci") is not None for p in result["points"])
    if sized:
        columns.append("runs")
    has_voltage = any(p.get("voltage") is not None for p in result["points"])
    has_chips = any(p.get("chips") is not None for p in result["points"])
    has_yield = any(p.get("yield") is not None for p in result["points"])
    if has_chips:  # the population's mean rates, and the spread across chips
        columns[1:6] = ["mean p(+1→−1)", "mean p(−1→+1)", "chips' mean", "95 % interval"]
        columns[5:5] = ["5th pct", "worst"]
    if has_yield:
        columns += ["yield (95 % CI)"]
    if has_voltage:
        columns += ["energy/bit", "endurance vs 1e-6 (E-model)"]
    simulated = any(
        ((p.get("latency") or {}).get(str(b)) or {}).get("simulation_overhead") is not None
        for p in result["points"]
        for b in latency_batches
    )
    for b in latency_batches:
        columns.append(f"model p50 b{b} (ms)" if simulated else f"p50 b{b} (ms)")
        if simulated:
            columns.append(f"simulation b{b}")
    for header in columns:
        table.add_column(header, justify="right")
    for p in result["points"]:
        interval = f"[{p['ci95'][0]:.4f}, {p['ci95'][1]:.4f}]"
        if has_chips:
            cells = [
                p["label"],
                f"{p['population_p_flip_pos_to_neg']:.3g}",
                f"{p['population_p_flip_neg_to_pos']:.3g}",
                f"{p['accuracy_mean']:.4f}",
                interval,
                f"{p['chip_accuracy']['p5']:.4f}",
                f"{p['chip_accuracy']['worst']:.4f}",
            ]
        else:
            cells = [
                p["label"],
                f"{p['p_flip_pos_to_neg']:.3g}",
                f"{p['p_flip_neg_to_pos']:.3g}",
                f"{p['accuracy_mean']:.4f}",
                f"{p['accuracy_std']:.4f}",
                interval,
            ]
        cells.append(f"{p['accuracy_drop']:+.4f}")
        if paired:
            low, high = p.get("drop_ci95") or (None, None)
            cells.append("" if low is None else f"[{low:+.4f}, {high:+.4f}]")
        if sized:
            met = (p.get("target_ci") or {}).get("met", True)
            cells.append(f"{p['repeats']}" + ("" if met else " (max)"))
        if has_yield:
            low, high = p["yield_ci95"]
            cells.append(f"{p['yield']:.2f} [{low:.2f}, {high:.2f}]")
        if has_voltage:
            from xnorfault.units import format_energy

            cells += [
                format_energy(p["write_energy"]),
                endurance_text(p.get("endurance_gain"), bool(p.get("outlasts_service_life"))),
            ]
        for b in latency_batches:
            timed = p["latency"][str(b)]
            cells.append(f"{timed['p50_ms']:.3f}")
            if simulated:
                overhead = timed.get("simulation_overhead")
                cells.append("" if overhead is None else f"{overhead:.2f}×")
        table.add_row(*cells)
    console.print(table if wide else _narrow_table(result, latency_batches))
    if simulated and wide:
        console.print(
            "latency: the model's own (its graph without flips, as the memory runs it); "
            "simulation: the simulated run's time over the model's, measured side by side"
        )
    if result.get("model") is not None:
        console.print(f"model: {result['model']['summary']}")
    if result.get("chip_draw") is not None:
        draw = result["chip_draw"]
        spread = draw["variation"]
        console.print(
            f"chips: {draw['count']} drawn (chip seed {draw['seed']}), {draw['cells_per_chip']} "
            f"activation cells each; σΔ/Δ {spread['sigma_delta']:g}, σVc0/Vc0 "
            f"{spread['sigma_vc0']:g} ({spread['distribution']}, correlation "
            f"{spread['correlation']:g}); "
            + (
                "each chip's accuracy is one run"
                if result["points"][0]["repeats"] == 1
                else f"each chip's accuracy is the mean of {result['points'][0]['repeats']} runs"
            )
        )
    write = info.get("write_model") or {"model": "iid"}
    if write["model"] != "iid":
        console.print(
            f"write model: {write['model']} (initial state {write['initial_state']}): a write fails "
            "only where it must switch the cell"
            if write["model"] == "previous"
            else f"write model: reset to {write['initial_state']} before every write"
        )
    if info.get("accuracy_from") is not None:
        console.print(f"accuracy: {info['accuracy_from']}; latency (mean): {info['latency_from']}")
    machine = result.get("machine") or {}
    target = result.get("target")
    ran_on = f"ran on {machine.get('architecture', '?')} {machine.get('cpu', '')}, {machine.get('cores', '?')} cores"
    console.print(ran_on + (f" with the {target['name']} profile" if target else ""))
    drop = result.get("max_drop")
    if drop:
        if drop.get("voltage") is not None:
            line = (
                f"lowest write voltage whose drop is shown below {drop['max_drop']:g} by its 95 % "
                f"interval: {drop['voltage']:.3f} V"
            )
            if drop.get("yield") is not None:
                low, high = drop["yield_ci95"]
                line += f" (interval over chips; yield {drop['yield']:.2f}, 95 % CI [{low:.2f}, {high:.2f}])"
            if drop.get("energy_saving") is not None:
                line += (
                    f" — {drop['energy_saving'] * 100:.0f} % less write energy than the conventional point "
                    f"(WER {drop['reference_wer']:g} in both directions, {drop['reference_voltage']:.3f} V); {endurance_phrase(drop)}"
                )
            console.print(line)
        elif drop.get("ber") is not None:
            console.print(
                f"highest BER shown within {drop['max_drop']:g} of the baseline by its 95 % interval: {drop['ber']:g}"
            )
        else:
            console.print(
                f"no swept point is shown within {drop['max_drop']:g} of the baseline by its 95 % interval"
            )
    if result["points"] and result["points"][0].get("per_layer") is not None:
        layers = Table(title="per-site sensitivity: accuracy with flips in one site only")
        layers.add_column("point", justify="right")
        for site in result["site_names"]:
            layers.add_column(site, justify="right")
        for p in result["points"]:
            layers.add_row(
                p["label"],
                *[f"{p['per_layer'][s]['accuracy_mean']:.4f}" for s in result["site_names"]],
            )
        console.print(layers)
