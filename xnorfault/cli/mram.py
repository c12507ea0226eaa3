"""``xnorfault mram``: write error rates, operating points, endurance and energy of an MTJ."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import numpy as np
import typer
from rich.table import Table

from xnorfault.cli._common import (
    console,
    emit_json,
    percent,
    sci,
)
from xnorfault.cli._options import JsonOption, MramDeviceOption
from xnorfault.errors import XnorfaultError
from xnorfault.mram import DIRECTIONS, available_devices, load_device, table_one
from xnorfault.mram.weights import format_age
from xnorfault.units import (
    endurance_text,
    format_duration,
    format_energy,
    parse_duration,
    parse_list,
    parse_probability,
    parse_voltage,
)

mram_app = typer.Typer(
    help=(
        "MRAM write-error model of the paper (exact Fokker–Planck solution): WER at an operating "
        "point, the voltage or pulse for a target WER, Table I, Fig. 5, endurance and energy."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

DIRECTION_OPTION = typer.Option(
    "p_to_ap",
    "--direction",
    help="Write direction: p_to_ap (writing -1) or ap_to_p (writing +1).",
)


def _check_direction(direction: str) -> str:
    if direction not in DIRECTIONS:
        raise XnorfaultError(f"unknown direction {direction!r}: use p_to_ap or ap_to_p")
    return direction


@mram_app.command("table")
def table_command(
    mram_device: MramDeviceOption = "paper",
    direction: str = DIRECTION_OPTION,
    as_json: JsonOption = False,
):
    """The paper's Table I from the model: how far the write voltage or pulse can drop when the
    network tolerates WER 0.01 or 0.1 instead of 1e-6, with energy and endurance.

    Example:

    ```
    xnorfault mram table --mram-device paper
    ```
    """
    mtj = load_device(mram_device)
    rows = table_one(mtj, _check_direction(direction))
    if as_json:
        emit_json(
            {
                "device": mtj.to_dict(),
                "direction": direction,
                "points": [r.to_dict() for r in rows],
            },
            "mram.table",
        )
        return
    table = Table(
        title=f"Table I — device '{mtj.name}' (Δ={mtj.delta:g}, τ_D={format_duration(mtj.tau_d)}, "
        f"V_c0={mtj.critical_voltage(direction):g} V, V_bd={mtj.vbd:g} V)",
        caption="Paper (arXiv:1905.10927, Table I): V/V_c0 2.78 at 1e-6; voltage −36 % and −46 %; "
        "pulse −32 % and −50 % at −20 % voltage.",
    )
    for header in (
        "operating point",
        "pulse",
        "voltage",
        "Δ voltage",
        "Δ pulse",
        "energy",
        "endurance",
    ):
        table.add_column(header, justify="left" if header == "operating point" else "right")
    for row in rows:
        table.add_row(
            row.label,
            f"{format_duration(row.pulse)} ({row.pulse_over_tau_d:.2f} τ_D)",
            f"{row.voltage:.3f} V ({row.v_over_vc0:.3f} V_c0)",
            percent(row.voltage_change),
            percent(row.pulse_change),
            f"{row.energy_ratio:.2f}×",
            f"{row.endurance_gain:.2g}×",
        )
    console.print(table)


@mram_app.command("curve")
def curve_command(
    output: Path = typer.Option(..., "--output", "-o", help="Figure file (.png, .pdf, .svg)."),
    mram_device: MramDeviceOption = "paper",
    wer: str = typer.Option("0.1,0.01,1e-6", "--wer", help="Comma-separated WER targets."),
    direction: str = DIRECTION_OPTION,
    points: int = typer.Option(36, "--points", min=4, max=400, help="Voltages per curve."),
    closed_form: bool = typer.Option(
        False, "--closed-form", help="Overlay the closed form, dashed."
    ),
    as_json: JsonOption = False,
):
    """The paper's Fig. 5: write voltage vs pulse length for WER targets, with Table I marked.

    Example:

    ```
    xnorfault mram curve -o fig5.png --closed-form
    ```
    """
    from xnorfault.io import check_figure_output
    from xnorfault.plots import plot_write_voltage_vs_pulse, write_voltage_curves

    check_figure_output(output)
    mtj = load_device(mram_device)
    targets = parse_list(wer, parse_probability)
    with console.status("solving the Fokker–Planck equation…") if not as_json else nullcontext():
        data = write_voltage_curves(mtj, targets, _check_direction(direction), points=points)
        plot_write_voltage_vs_pulse(data, mtj, output, closed_form=closed_form)
    if as_json:
        emit_json(data | {"figure": str(output)}, "mram.curve")
    else:
        console.print(f"wrote {output}")


@mram_app.command("wer")
def wer_command(
    voltage: str = typer.Option(
        ..., "--voltage", "-V", help='Write voltage(s): "0.55", "550mV", list or start:stop:step.'
    ),
    pulse: str = typer.Option(
        ..., "--pulse", "-t", help='Pulse length(s): "10ns", "1.5e-8", list or range.'
    ),
    mram_device: MramDeviceOption = "paper",
    closed_form: bool = typer.Option(False, "--closed-form", help="Also show the closed-form WER."),
    read: bool = typer.Option(
        False,
        "--read",
        help="Read disturb: the probability that one read at this voltage and pulse switches a "
        "cell, per current direction (resolved far below 1e-8).",
    ),
    temperature: str | None = typer.Option(
        None, "--temperature", help='Temperature, e.g. "85C" (Δ scaled; default the device\'s).'
    ),
    plot_path: Path | None = typer.Option(
        None, "--plot", help="Draw WER vs voltage, a curve per pulse and direction, into this file."
    ),
    as_json: JsonOption = False,
):
    """Write error rate at one or more operating points, per write direction, with the flip
    probabilities of a stored binary value, write energy and endurance; with --read the
    read-disturb probability of a read there instead.

    Examples:

    ```
    xnorfault mram wer --voltage 0.55 --pulse 10ns
    xnorfault mram wer --voltage 0.45:0.85:0.05 --pulse 10ns --json
    xnorfault mram wer --voltage 0.35:0.9:0.01 --pulse 5ns,10ns,20ns --plot wer.png
    xnorfault mram wer --read --voltage 0.05:0.15:0.025 --pulse 5ns --temperature 85C
    ```
    """
    if plot_path is not None:
        from xnorfault.io import check_figure_output

        if read:
            raise XnorfaultError("--plot draws write error rates: leave it out with --read")
        check_figure_output(plot_path, "--plot")
    mtj = load_device(mram_device)
    if temperature is not None:
        from xnorfault.units import parse_temperature

        mtj = mtj.at_temperature(parse_temperature(temperature))
    if read:
        _read_disturb_table(mtj, voltage, pulse, as_json)
        return
    voltages = parse_list(voltage, parse_voltage)
    pulses = parse_list(pulse, parse_duration)
    grid_v, grid_t = (a.ravel() for a in np.meshgrid(voltages, pulses, indexing="ij"))
    pos_to_neg, neg_to_pos = (np.atleast_1d(x) for x in mtj.flip_rates(grid_v, grid_t))
    energy = np.atleast_1d(mtj.write_energy(grid_v, grid_t))
    cycles = np.atleast_1d(mtj.endurance(grid_v, grid_t))
    outlasts = np.atleast_1d(mtj.outlasts_service_life(grid_v, grid_t))
    gains = _endurance_gains(mtj, grid_v, grid_t)
    approx = np.atleast_1d(mtj.wer_closed_form(grid_v, grid_t)) if closed_form else None
    population = None
    if mtj.varies:
        population = {
            "p_to_ap": [mtj.population_wer(v, t) for v, t in zip(grid_v, grid_t, strict=True)]
        }
        # a symmetric junction's two directions share one population mean
        population["ap_to_p"] = (
            population["p_to_ap"]
            if mtj.symmetric
            else [mtj.population_wer(v, t, "ap_to_p") for v, t in zip(grid_v, grid_t, strict=True)]
        )
    points = []
    for i, (v, t) in enumerate(zip(grid_v, grid_t, strict=True)):
        point = {
            "voltage": float(v),
            "pulse": float(t),
            "wer_p_to_ap": float(neg_to_pos[i]),
            "wer_ap_to_p": float(pos_to_neg[i]),
            "p_flip_pos_to_neg": float(pos_to_neg[i]),
            "p_flip_neg_to_pos": float(neg_to_pos[i]),
            "write_energy": float(energy[i]),
            "endurance_cycles": float(cycles[i]),
            "endurance_gain": gains[i],
            "outlasts_service_life": bool(outlasts[i]),
        }
        # asked-for and device-dependent columns are null where not computed: every point has
        # the same fields
        point["wer_closed_form_p_to_ap"] = None if approx is None else float(approx[i])
        for direction in ("p_to_ap", "ap_to_p"):
            point[f"population_wer_{direction}"] = (
                None if population is None else float(population[direction][i])
            )
        points.append(point)
    if plot_path is not None:
        from xnorfault.plots import plot_wer

        plot_wer(points, mtj, plot_path)
    if as_json:
        emit_json({"device": mtj.to_dict(), "kind": "write", "points": points}, "mram.wer")
        return
    table = Table(title=f"Write error rate — device '{mtj.name}'")
    columns = ["voltage", "pulse", "WER P→AP (writing −1)", "WER AP→P (writing +1)"]
    if closed_form:
        columns.append("closed form P→AP")
    if population is not None:
        columns += ["population mean P→AP", "population mean AP→P"]
    columns += ["energy/bit", "endurance vs 1e-6 (E-model)"]
    for header in columns:
        table.add_column(header, justify="right")
    for point in points:
        cells = [
            f"{point['voltage']:.3f} V",
            format_duration(point["pulse"]),
            sci(point["wer_p_to_ap"]),
            sci(point["wer_ap_to_p"]),
        ]
        if closed_form:
            cells.append(sci(point["wer_closed_form_p_to_ap"]))
        if population is not None:
            cells += [sci(point["population_wer_p_to_ap"]), sci(point["population_wer_ap_to_p"])]
        cells += [
            format_energy(point["write_energy"]),
            endurance_text(point["endurance_gain"], point["outlasts_service_life"]),
        ]
        table.add_row(*cells)
    console.print(table)


READS_SHOWN = 1e9  # a year of inferences at ~30 per second


def _read_disturb_table(mtj, voltage: str, pulse: str, as_json: bool) -> None:
    """``mram wer --read``: per-read switching probability in each current direction, and
    the share of disturbed cells after 1e9 reads, :math:`1-(1-q)^{10^9}`."""
    from xnorfault.units import format_temperature

    voltages = parse_list(voltage, parse_voltage)
    pulses = parse_list(pulse, parse_duration)
    points = []
    for v in voltages:
        for t in pulses:
            point = {"voltage": float(v), "pulse": float(t)}
            for direction in ("p_to_ap", "ap_to_p"):
                q = float(mtj.read_disturb(v, t, direction))
                point[f"disturb_{direction}"] = q
                point[f"disturbed_after_1e9_reads_{direction}"] = float(
                    -np.expm1(READS_SHOWN * np.log1p(-q))
                )
            points.append(point)
    if as_json:
        emit_json(
            {
                "device": mtj.to_dict(),
                "kind": "read_disturb",
                "temperature": mtj.reference_temperature,
                "points": points,
            },
            "mram.wer",
        )
        return
    table = Table(
        title=f"Read disturb — device '{mtj.name}' at {format_temperature(mtj.reference_temperature)} "
        f"(Δ={mtj.delta:.4g}): probability that one read switches a cell"
    )
    for header in (
        "voltage",
        "pulse",
        "per read, P→AP current (disturbs +1)",
        "per read, AP→P current (disturbs −1)",
        "after 1e9 reads (P→AP)",
    ):
        table.add_column(header, justify="right")
    for point in points:
        table.add_row(
            f"{point['voltage']:.3f} V",
            format_duration(point["pulse"]),
            sci(point["disturb_p_to_ap"]),
            sci(point["disturb_ap_to_p"]),
            sci(point["disturbed_after_1e9_reads_p_to_ap"]),
        )
    console.print(table)


@mram_app.command("solve")
def solve_command(
    wer: str = typer.Option(
        ..., "--wer", help="Target write error rate(s), e.g. 1e-6 or 0.01,0.1."
    ),
    pulse: str | None = typer.Option(
        None, "--pulse", "-t", help="Fixed pulse: solve for the voltage."
    ),
    voltage: str | None = typer.Option(
        None, "--voltage", "-V", help="Fixed voltage: solve for the pulse."
    ),
    mram_device: MramDeviceOption = "paper",
    direction: str = DIRECTION_OPTION,
    as_json: JsonOption = False,
):
    """The write voltage (given --pulse) or the pulse length (given --voltage) that reaches a
    target WER, with the write energy and endurance there.

    Examples:

    ```
    xnorfault mram solve --wer 1e-6 --pulse 10ns
    xnorfault mram solve --wer 0.01 --voltage 0.67V
    ```
    """
    if (pulse is None) == (voltage is None):
        raise XnorfaultError(
            "give exactly one of --pulse (to solve for the voltage) or --voltage (to solve for the pulse)"
        )
    mtj = load_device(mram_device)
    direction = _check_direction(direction)
    targets = parse_list(wer, parse_probability)
    vc0 = mtj.critical_voltage(direction)
    results = []
    for target in targets:
        if pulse is not None:
            t = parse_duration(pulse)
            v = float(mtj.voltage_for_wer(target, t, direction))
            solved = "voltage"
        else:
            v = parse_voltage(voltage)
            t = float(mtj.pulse_for_wer(target, v, direction))
            solved = "pulse"
        results.append(
            {
                "wer": target,
                "solved_for": solved,
                "direction": direction,
                "voltage": v,
                "pulse": t,
                "v_over_vc0": v / vc0,
                "pulse_over_tau_d": t / mtj.tau_d,
                "write_energy": float(mtj.write_energy(v, t)),
                "endurance_cycles": float(mtj.endurance(v, t)),
                "endurance_gain": _endurance_gains(mtj, [v], [t])[0],
                "outlasts_service_life": bool(mtj.outlasts_service_life(v, t)),
            }
        )
    if as_json:
        emit_json({"device": mtj.to_dict(), "points": results}, "mram.solve")
        return
    table = Table(title=f"Operating points — device '{mtj.name}', {direction}")
    for header in (
        "WER",
        "voltage",
        "V/V_c0",
        "pulse",
        "τ/τ_D",
        "energy/bit",
        "endurance vs 1e-6 (E-model)",
    ):
        table.add_column(header, justify="right")
    for r in results:
        volt = f"{r['voltage']:.4f} V" + (" *" if r["solved_for"] == "voltage" else "")
        dur = format_duration(r["pulse"]) + (" *" if r["solved_for"] == "pulse" else "")
        table.add_row(
            sci(r["wer"]),
            volt,
            f"{r['v_over_vc0']:.3f}",
            dur,
            f"{r['pulse_over_tau_d']:.4g}",
            format_energy(r["write_energy"]),
            endurance_text(r["endurance_gain"], r["outlasts_service_life"]),
        )
    console.print(table)
    console.print("* solved for")


def _endurance_gains(mtj, voltages, pulses) -> list[float | None]:
    """Endurance relative to the conventional point (WER 1e-6 both ways) at each pulse; None
    where no voltage below breakdown reaches it."""
    gains = []
    for v, t in zip(voltages, pulses, strict=True):
        try:
            gains.append(float(mtj.endurance_gain(v, t)))
        except XnorfaultError:
            gains.append(None)
    return gains


@mram_app.command("retention")
def retention_command(
    age: str = typer.Option(
        "1s,1h,1d,1y,10y", "--age", help='Storage times, e.g. "1y" or "1h,1d,1y".'
    ),
    temperature: str | None = typer.Option(
        None,
        "--temperature",
        help='Temperature(s), e.g. "85C" or "25C,85C" (default: the device\'s, 25 °C).',
    ),
    mram_device: MramDeviceOption = "paper",
    as_json: JsonOption = False,
):
    """Thermal retention of an idle cell: the paper's probability of a flip within a storage
    time, 1 − exp(−rT), and the probability that the cell holds the wrong value,
    (1 − exp(−2rT))/2, with r = exp(−Δ(T))/τ₀ and Δ(T) = Δ·T_ref/T.

    Examples:

    ```
    xnorfault mram retention --age 1d,1y
    xnorfault mram retention --age 1h,1d --temperature 25C,85C
    ```
    """
    from xnorfault.units import format_temperature, parse_temperature

    mtj = load_device(mram_device)
    times = parse_list(age, parse_duration)
    kelvins = (
        [mtj.reference_temperature]
        if temperature is None
        else parse_list(temperature, parse_temperature)
    )
    points = []
    for kelvin in kelvins:
        hot = mtj.at_temperature(kelvin)
        for t in times:
            points.append(
                {
                    "age": t,
                    "temperature": kelvin,
                    "delta": hot.delta,
                    "rate_per_s": hot.retention_rate(),
                    "retention_error": float(hot.retention_error(t)),
                    "wrong_value": float(hot.retention_flip(t)),
                }
            )
    if as_json:
        emit_json({"device": mtj.to_dict(), "points": points}, "mram.retention")
        return
    table = Table(
        title=f"Retention — device '{mtj.name}' (Δ={mtj.delta:g} at "
        f"{format_temperature(mtj.reference_temperature)}, τ_0={format_duration(mtj.attempt_time)})"
    )
    for header in ("temperature", "Δ(T)", "storage time", "P(≥ 1 flip)", "P(wrong value)"):
        table.add_column(header, justify="right")
    for point in points:
        table.add_row(
            format_temperature(point["temperature"]),
            f"{point['delta']:.4g}",
            format_age(point["age"]),
            sci(point["retention_error"]),
            sci(point["wrong_value"]),
        )
    console.print(table)


@mram_app.command("devices")
def devices_command(as_json: JsonOption = False):
    """Device presets shipped with xnorfault (use a name, or a TOML file, with --mram-device).

    Example:

    ```
    xnorfault mram devices
    ```
    """
    devices = [load_device(name) for name in available_devices()]
    if as_json:
        emit_json({"devices": [d.to_dict() for d in devices]}, "mram.devices")
        return
    table = Table(title="Device presets")
    for header in ("name", "Δ", "τ_D", "V_c0 P→AP", "V_c0 AP→P", "V_bd", "description"):
        table.add_column(header)
    for d in devices:
        table.add_row(
            d.name,
            f"{d.delta:g}",
            format_duration(d.tau_d),
            f"{d.critical_voltage('p_to_ap'):g} V",
            f"{d.critical_voltage('ap_to_p'):g} V",
            f"{d.vbd:g} V",
            d.description,
        )
    console.print(table)


@mram_app.command("fit")
def fit_command(
    table: Path = typer.Argument(
        ..., help="Measured WERs: CSV with voltage,pulse,wer_p_to_ap,wer_ap_to_p (units allowed)."
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write the fitted device as a TOML file."
    ),
    mram_device: MramDeviceOption = "paper",
    as_json: JsonOption = False,
):
    """Fit Δ, τ_D and both critical voltages of the exact switching model to a measured WER
    table (least squares on log10 WER), with the residuals; breakdown, resistance and retention
    come from --mram-device. The fitted file, or the table itself under [measured], serves every
    command that takes --mram-device.

    Example:

    ```
    xnorfault mram fit wer.csv -o chip.toml
    ```
    """
    from dataclasses import replace

    from xnorfault.io import atomic_write_text, check_output_file
    from xnorfault.mram.device_file import device_toml
    from xnorfault.mram.fit import fit_device
    from xnorfault.mram.measured import MeasuredWER

    measured = MeasuredWER.from_csv(table)
    if output is not None:
        if output.suffix != ".toml":
            raise XnorfaultError(f"--output {output} should end in .toml")
        from xnorfault.io import refuse_inputs_as_outputs

        refuse_inputs_as_outputs(
            {"--output": output},
            {table: "the WER table", Path(mram_device): "the starting device file"},
        )
        check_output_file(output, "--output")
    start = load_device(mram_device)
    with console.status("fitting…") if not as_json else nullcontext():
        fit = fit_device(measured, start)
    fitted = replace(
        start,
        delta=fit.delta,
        tau_d=fit.tau_d,
        vc0=fit.vc0,
        vc0_ap_to_p=fit.vc0_ap_to_p,
        name=table.stem,
        description=f"fitted to {table.name} by xnorfault mram fit",
        measured=None,
    )
    summary = {**fit.to_dict(), "table": str(table), "device": fitted.to_dict()}
    if output is not None:
        atomic_write_text(output, device_toml(fitted))
        summary["output"] = str(output)
    if as_json:
        emit_json(summary, "mram.fit")
        return
    console.print(
        f"{table.name}: {fit.rows} rows, fit Δ = {fit.delta:.4g}, τ_D = {format_duration(fit.tau_d)}, "
        f"V_c0 = {fit.vc0:.4g} V (P→AP), {fit.vc0_ap_to_p:.4g} V (AP→P)"
    )
    console.print(
        f"residuals of log10 WER: rms {fit.rms_log10:.3g}, largest {fit.max_abs_log10:.3g}"
    )
    if output is not None:
        console.print(f"wrote {output}")
