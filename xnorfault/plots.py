"""Figures, in one style (:data:`STYLE`: 7.2 × 4.6 in, 150 dpi, 9-point text): accuracy in
percent with its intervals clipped to [0, 100] %, energies in joules, write error rates on a
log axis, and a title that names the model, device, pulse and write model, wrapped, never cut.

Every function returns the matplotlib :class:`~matplotlib.figure.Figure` (a notebook shows it)
and saves it, atomically, when given a path. matplotlib is imported inside the functions (the
Agg backend where none is set), so importing this module costs nothing.
"""

from __future__ import annotations

import contextlib
import textwrap
from pathlib import Path

import numpy as np

from xnorfault.errors import XnorfaultError
from xnorfault.io import atomic_save_figure
from xnorfault.mram.device import MTJ, Direction
from xnorfault.mram.table import table_one

FIGURE5_WERS = (0.1, 0.01, 1e-6)
FIGURE_SIZE = (7.2, 4.6)  # inches
TALL_FIGURE_SIZE = (7.2, 6.0)  # two panels
DPI = 150
TITLE_WIDTH = 95  # characters per title line
STYLE = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 7.5,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "savefig.dpi": DPI,
}
ACCURACY_COLOR, WER_COLORS, ENERGY_COLOR, BUDGET_COLOR = "C0", ("C3", "C4"), "C1", "C2"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


@contextlib.contextmanager
def _styled():
    """pyplot with :data:`STYLE` in force while a figure is drawn."""
    plt = _pyplot()
    with plt.rc_context(STYLE):
        yield plt


def _finish(figure, path: str | Path | None):
    """Save ``figure`` to ``path`` (if given) and detach it from pyplot; returns it."""
    try:
        if path is not None:
            atomic_save_figure(figure, path, dpi=DPI)
    finally:
        _pyplot().close(figure)
    return figure


def _title(axes, *parts: str | None) -> None:
    text = " — ".join(part for part in parts if part)
    axes.set_title("\n".join(textwrap.wrap(text, TITLE_WIDTH)))


def _percent(values) -> np.ndarray:
    """Accuracies (fractions) as percent, clipped to [0, 100]."""
    return np.clip(np.asarray(values, dtype=float), 0.0, 1.0) * 100


def _joules():
    """Tick labels in joules with SI prefixes (0.6 pJ, 2.5 nJ)."""
    from matplotlib.ticker import EngFormatter

    return EngFormatter(unit="J")


def _color_axis(axis, color: str, side: str = "right") -> None:
    """An axis whose label, ticks and spine take its line's colour."""
    axis.yaxis.label.set_color(color)
    axis.tick_params(axis="y", colors=color)
    axis.spines[side].set_color(color)


def _write_model_text(result: dict) -> str | None:
    write = (result.get("backend") or {}).get("write_model") or {}
    if not write or write.get("model", "iid") == "iid":
        return "write model iid"
    return f"write model {write['model']} (initial {write.get('initial_state', 'neg')})"


def sweep_description(result: dict) -> str:
    """The model, device, pulse and write model of an ``evaluate`` result, for titles."""
    name = Path((result.get("backend") or {}).get("model") or "model").name
    points = result.get("points") or []
    pulse = next((p["pulse"] for p in points if p.get("pulse") is not None), None)
    device = (result.get("device") or {}).get("name")
    return ", ".join(
        part
        for part in (
            name,
            None if device is None or pulse is None else f"device {device}",
            None if pulse is None else f"pulse {pulse * 1e9:g} ns",
            _write_model_text(result),
        )
        if part
    )


def _budget_text(max_drop: float) -> str:
    return f"{max_drop * 100:g} pt"


def _budget_line(axes, baseline: float, max_drop: float, label: str, linewidth: float) -> None:
    """The accuracy ``max_drop`` below ``baseline`` (in percent), dotted."""
    axes.axhline(
        baseline - max_drop * 100,
        color=BUDGET_COLOR,
        linestyle=":",
        linewidth=linewidth,
        label=label.format(budget=_budget_text(max_drop)),
    )


def _accuracy_panel(axes, result: dict, x, order, color=ACCURACY_COLOR, label=None) -> None:
    """Mean accuracy with its 95 % interval (and every chip's, with chips) against ``x``."""
    chips = all(p.get("chips") is not None for p in order)
    mean = _percent([p["accuracy_mean"] for p in order])
    low = _percent([p["ci95"][0] for p in order])
    high = _percent([p["ci95"][1] for p in order])
    axes.plot(
        x,
        mean,
        marker="o",
        markersize=4,
        color=color,
        label=label or ("chips' mean accuracy" if chips else "accuracy under flips (mean)"),
    )
    axes.fill_between(
        x, low, high, color=color, alpha=0.2, linewidth=0, label=None if label else "95 % interval"
    )
    if chips and label is None:
        for index, (position, point) in enumerate(zip(x, order, strict=True)):
            axes.scatter(
                np.full(len(point["chips"]), position),
                _percent(point["chips"]),
                s=6,
                color=color,
                alpha=0.35,
                linewidths=0,
                label="one chip" if index == 0 else None,
            )


def _sweep_axis(points: list[dict]) -> tuple[str, list[dict], np.ndarray]:
    """``("voltage" | "ber", points in order, x)``."""
    voltage = all(p.get("voltage") is not None for p in points)
    key = "voltage" if voltage else "ber"
    order = sorted(points, key=lambda p: p[key] or 0.0)
    return key, order, np.array([p[key] or 0.0 for p in order], dtype=float)


def plot_evaluation(result: dict, path: str | Path | None = None, device: MTJ | None = None):
    """Accuracy (mean with its 95 % interval) against write voltage, over a second panel with
    the WER of both write directions and the write energy in joules (per bit, and per inference
    where the model's activation bits per image are known); for BER sweeps, accuracy against
    BER. With chips, every chip's accuracy is a dot; with a budget, its line and the lowest
    voltage within it. A weight-memory evaluation (``--age``) draws accuracy against age
    (:func:`plot_accuracy_vs_age`). Returns the figure; saved to ``path`` if given."""
    if result.get("weight_memory") is not None:
        return plot_accuracy_vs_age([("chips' mean", result)], path)
    points = result["points"]
    key, order, x = _sweep_axis(points)
    drop = result.get("max_drop") or {}
    baseline = result["baseline_accuracy"] * 100
    with _styled() as plt:
        if key == "voltage":
            figure, (axes, lower) = plt.subplots(
                2,
                1,
                figsize=TALL_FIGURE_SIZE,
                sharex=True,
                height_ratios=(3, 2),
                layout="constrained",
            )
        else:
            figure, axes = plt.subplots(figsize=FIGURE_SIZE, layout="constrained")
        _accuracy_panel(axes, result, x, order)
        axes.axhline(baseline, color="black", linestyle="--", linewidth=1, label="error-free")
        if drop.get("max_drop") is not None:
            _budget_line(axes, baseline, drop["max_drop"], "budget: {budget} below error-free", 1)
        if drop.get(key) is not None:
            axes.axvline(
                drop[key],
                color=BUDGET_COLOR,
                linestyle="-.",
                linewidth=1,
                label=("lowest voltage" if key == "voltage" else "highest BER")
                + f" within {_budget_text(drop['max_drop'])}",
            )
        axes.set_ylabel("test accuracy (%)")
        axes.legend(loc="lower right")
        chips = all(p.get("chips") is not None for p in order)
        runs = (f"{len(order[0]['chips'])} chips × " if chips else "") + (
            f"{order[0]['repeats']} repeats per point"
        )
        _title(axes, "Accuracy under activation write errors", sweep_description(result), runs)
        if key == "voltage":
            _wer_and_energy_panel(lower, result, x, order, chips)
        else:
            axes.set_xscale("symlog", linthresh=1e-3)
            axes.set_xlabel("bit-error rate of the binary activations")
    return _finish(figure, path)


def _wer_and_energy_panel(axes, result: dict, x, order, chips: bool) -> None:
    nominal = " (nominal cell)" if chips else ""
    axes.semilogy(
        x,
        [p["wer_p_to_ap"] for p in order],
        color=WER_COLORS[0],
        marker=".",
        label="WER P→AP (writing −1)" + nominal,
    )
    if any(p["wer_ap_to_p"] != p["wer_p_to_ap"] for p in order):
        axes.semilogy(
            x,
            [p["wer_ap_to_p"] for p in order],
            color=WER_COLORS[1],
            marker=".",
            label="WER AP→P (writing +1)" + nominal,
        )
    axes.set_ylabel("write error rate")
    axes.set_xlabel("write voltage (V)")
    energy = axes.twinx()
    energy.grid(False)
    energy.plot(
        x,
        [p["write_energy"] for p in order],
        color=ENERGY_COLOR,
        linestyle="--",
        label="write energy per bit",
    )
    energy.set_ylabel("write energy per bit")
    energy.yaxis.set_major_formatter(_joules())
    _color_axis(energy, ENERGY_COLOR)
    bits = (result.get("model") or {}).get("activation_bits_per_image")
    if bits:
        per_inference = energy.secondary_yaxis(
            1.16, functions=(lambda e: e * bits, lambda e: e / bits)
        )
        per_inference.set_ylabel(f"per inference ({bits:,} activation bits)")
        per_inference.yaxis.set_major_formatter(_joules())
        _color_axis(per_inference, ENERGY_COLOR)
    handles, labels = axes.get_legend_handles_labels()
    more, more_labels = energy.get_legend_handles_labels()
    axes.legend(handles + more, labels + more_labels, loc="upper right")


def plot_overlay(documents: list[tuple[str, dict]], path: str | Path | None = None):
    """Several results in one figure, each in its colour and named by its label: ``evaluate``
    sweeps (accuracy against voltage or BER with their intervals and error-free lines: the
    paper's comparison of BER-0 and BER-trained models, or of write models), their yields
    where they have chips and a budget, ``evaluate --age`` results (:func:`plot_accuracy_vs_age`)
    or ``optimize`` fronts (energy per inference against predicted drop). Returns the figure."""
    kinds = {_kind(document) for _, document in documents}
    if len(kinds) != 1:
        raise XnorfaultError(
            "plot overlays results of one kind: evaluate sweeps, evaluate --age results or "
            f"optimize results, not {' and '.join(sorted(kinds))}"
        )
    (kind,) = kinds
    if kind == "weight ages":
        return plot_accuracy_vs_age(documents, path)
    if kind == "optimize":
        return _overlay_fronts(documents, path)
    keys = {_sweep_axis(document["points"])[0] for _, document in documents}
    if len(keys) != 1:
        raise XnorfaultError(
            "plot overlays sweeps over one axis: all over write voltage or all over BER"
        )
    yields = all(
        any(p.get("yield") is not None for p in document["points"]) for _, document in documents
    )
    with _styled() as plt:
        rows = 2 if yields else 1
        figure, axes = plt.subplots(
            rows,
            1,
            figsize=TALL_FIGURE_SIZE if yields else FIGURE_SIZE,
            sharex=True,
            layout="constrained",
            squeeze=False,
        )
        top = axes[0][0]
        for index, (label, document) in enumerate(documents):
            key, order, x = _sweep_axis(document["points"])
            color = f"C{index}"
            _accuracy_panel(top, document, x, order, color=color, label=label)
            top.axhline(
                document["baseline_accuracy"] * 100, color=color, linestyle="--", linewidth=0.8
            )
            if yields:
                _yield_line(axes[1][0], order, x, color, label)
        top.set_ylabel("test accuracy (%)")
        top.legend(loc="lower right", title="dashed: each one's error-free accuracy")
        key = next(iter(keys))
        bottom = axes[-1][0]
        if key == "voltage":
            bottom.set_xlabel("write voltage (V)")
        else:
            top.set_xscale("symlog", linthresh=1e-3)
            bottom.set_xlabel("bit-error rate of the binary activations")
        if yields:
            bottom.set_ylabel("yield (chips within budget)")
            bottom.set_ylim(-0.02, 1.02)
        _title(top, "Accuracy under activation write errors", _overlay_description(documents))
    return _finish(figure, path)


def _overlay_description(documents: list[tuple[str, dict]]) -> str:
    """What the overlaid results share (device and pulse), and their write models."""
    memories, writes = [], []
    for _, result in documents:
        points = result.get("points") or []
        pulse = next((p["pulse"] for p in points if p.get("pulse") is not None), None)
        device = (result.get("device") or {}).get("name")
        memory = None if pulse is None else f"device {device}, pulse {pulse * 1e9:g} ns"
        if memory not in memories:
            memories.append(memory)
        write = _write_model_text(result)
        if write not in writes:
            writes.append(write)
    parts = ["; ".join(m for m in memories if m)] if any(memories) else []
    if len(writes) == 1:
        parts.append(writes[0])
    else:
        parts.append("write models: " + ", ".join(w.removeprefix("write model ") for w in writes))
    return ", ".join(p for p in parts if p)


def _yield_line(axes, order, x, color, label) -> None:
    values = np.array([np.nan if p.get("yield") is None else p["yield"] for p in order])
    low = np.array([np.nan if p.get("yield_ci95") is None else p["yield_ci95"][0] for p in order])
    high = np.array([np.nan if p.get("yield_ci95") is None else p["yield_ci95"][1] for p in order])
    axes.plot(x, values, marker="o", markersize=4, color=color, label=label)
    axes.fill_between(x, low, high, color=color, alpha=0.2, linewidth=0)


def _kind(document: dict) -> str:
    if not isinstance(document, dict) or not isinstance(document.get("points"), list):
        if isinstance(document, dict) and "pareto" in document:
            return "optimize"
        raise XnorfaultError(
            "plot takes the JSON of 'evaluate --json' or 'optimize --json' (with points or a front)"
        )
    if document.get("weight_memory") is not None:
        return "weight ages"
    return "evaluate sweeps"


def _overlay_fronts(documents: list[tuple[str, dict]], path):
    with _styled() as plt:
        figure, axes = plt.subplots(figsize=FIGURE_SIZE, layout="constrained")
        for index, (label, result) in enumerate(documents):
            color = f"C{index}"
            front = np.asarray(result["pareto"]["per_site"], dtype=float)
            if front.size:
                axes.plot(front[:, 0], front[:, 1] * 100, color=color, linewidth=1, label=label)
            axes.plot(
                result["energy_per_inference"],
                result["verification"]["drop"] * 100,
                marker="o",
                color=color,
                linestyle="none",
            )
        axes.xaxis.set_major_formatter(_joules())
        axes.set_xlabel("activation-write energy per inference")
        axes.set_ylabel("accuracy drop (points)")
        axes.legend(loc="upper right", title="lines: per-site front; dots: verified answers")
        _title(axes, "Energy against accuracy drop, per-site operating points")
    return _finish(figure, path)


def plot_per_layer(result: dict, path: str | Path | None = None):
    """Per-site sensitivity (``evaluate --per-layer``): accuracy with flips in one site only,
    per site, beside the accuracy with flips everywhere, against voltage or BER."""
    points = result["points"]
    key, order, x = _sweep_axis(points)
    sites = result["site_names"]
    with _styled() as plt:
        figure, axes = plt.subplots(figsize=FIGURE_SIZE, layout="constrained")
        _accuracy_panel(axes, result, x, order, color="black", label="flips in every site")
        for index, site in enumerate(sites):
            mean = _percent([p["per_layer"][site]["accuracy_mean"] for p in order])
            low = _percent([p["per_layer"][site]["ci95"][0] for p in order])
            high = _percent([p["per_layer"][site]["ci95"][1] for p in order])
            color = f"C{index}"
            axes.plot(x, mean, marker=".", color=color, label=f"flips in {site} only")
            axes.fill_between(x, low, high, color=color, alpha=0.15, linewidth=0)
        axes.axhline(result["baseline_accuracy"] * 100, color="black", linestyle="--", linewidth=1)
        if key == "voltage":
            axes.set_xlabel("write voltage (V)")
        else:
            axes.set_xscale("symlog", linthresh=1e-3)
            axes.set_xlabel("bit-error rate of the binary activations")
        axes.set_ylabel("test accuracy (%)")
        axes.legend(loc="lower right")
        _title(axes, "Per-site sensitivity", sweep_description(result))
    return _finish(figure, path)


def plot_yield(result: dict, path: str | Path | None = None):
    """Chip yield (the share of chips within the budget, with its 95 % interval) against write
    voltage (``evaluate --chips --max-drop``)."""
    key, order, x = _sweep_axis(result["points"])
    with _styled() as plt:
        figure, axes = plt.subplots(figsize=FIGURE_SIZE, layout="constrained")
        _yield_line(axes, order, x, ACCURACY_COLOR, "yield (95 % interval)")
        axes.set_ylim(-0.02, 1.02)
        axes.set_xlabel("write voltage (V)" if key == "voltage" else "bit-error rate")
        axes.set_ylabel("yield (chips within budget)")
        axes.legend(loc="lower right")
        budget = (result.get("max_drop") or {}).get("max_drop")
        chips = len(order[0]["chips"]) if order and order[0].get("chips") else 0
        _title(
            axes,
            f"Chip yield within {_budget_text(budget)}" if budget is not None else "Chip yield",
            sweep_description(result),
            f"{chips} chips",
        )
    return _finish(figure, path)


def plot_wer(points: list[dict], device: MTJ, path: str | Path | None = None):
    """Write error rate against write voltage, a curve per pulse and direction (``mram wer
    --plot``), from its points (``voltage``, ``pulse``, ``wer_p_to_ap``, ``wer_ap_to_p``)."""
    pulses = sorted({p["pulse"] for p in points})
    with _styled() as plt:
        figure, axes = plt.subplots(figsize=FIGURE_SIZE, layout="constrained")
        for index, pulse in enumerate(pulses):
            along = sorted((p for p in points if p["pulse"] == pulse), key=lambda p: p["voltage"])
            voltages = [p["voltage"] for p in along]
            color = f"C{index}"
            axes.semilogy(
                voltages,
                [p["wer_p_to_ap"] for p in along],
                color=color,
                marker=".",
                label=f"{pulse * 1e9:g} ns, P→AP",
            )
            if not device.symmetric:
                axes.semilogy(
                    voltages,
                    [p["wer_ap_to_p"] for p in along],
                    color=color,
                    linestyle="--",
                    label=f"{pulse * 1e9:g} ns, AP→P",
                )
        axes.axvline(device.vbd, color="grey", linestyle=":", linewidth=1, label="breakdown")
        axes.set_xlabel("write voltage (V)")
        axes.set_ylabel("write error rate")
        axes.legend(loc="lower left", title="pulse, direction")
        _title(axes, "Write error rate", f"device {device.name} (Δ = {device.delta:g})")
    return _finish(figure, path)


def write_voltage_curves(
    device: MTJ,
    wers=FIGURE5_WERS,
    direction: Direction = "p_to_ap",
    points: int = 36,
    max_pulse_tau: float = 12.0,
) -> dict:
    """Write voltage vs pulse length at fixed WER (the paper's Fig. 5), from the exact model.

    Solved as pulse-for-WER on a grid of voltages from just above :math:`V_{c0}` to the
    breakdown voltage, keeping pulses up to ``max_pulse_tau`` characteristic times.
    Returns ``{"points": [{"wer", "voltage", "pulse"}...], "table": [rows of Table I]}``: a
    point per WER target, its curve as the voltages and pulses along it.
    """
    vc0 = device.critical_voltage(direction)
    voltages = vc0 * np.geomspace(1.08, device.vbd / vc0, points)
    curves = []
    for wer in wers:
        pulses = np.asarray(device.pulse_for_wer(wer, voltages, direction))
        keep = pulses <= max_pulse_tau * device.tau_d
        curves.append(
            {"wer": wer, "voltage": voltages[keep].tolist(), "pulse": pulses[keep].tolist()}
        )
    table = [row.to_dict() for row in table_one(device, direction)]
    return {"device": device.name, "direction": direction, "points": curves, "table": table}


def plot_write_voltage_vs_pulse(
    data: dict, device: MTJ, path: str | Path | None = None, closed_form: bool = False
):
    """Draw :func:`write_voltage_curves` data as the paper's Fig. 5 (returns the figure; saved
    to ``path`` if given)."""
    direction = data["direction"]
    vc0 = device.critical_voltage(direction)
    tau_ns = device.tau_d * 1e9
    with _styled() as plt:
        figure, axes = plt.subplots(figsize=FIGURE_SIZE, layout="constrained")
        for index, curve in enumerate(data["points"]):
            color = f"C{index}"
            pulse_ns = np.asarray(curve["pulse"]) * 1e9
            axes.plot(pulse_ns, curve["voltage"], color=color, label=f"WER {curve['wer']:g}")
            if closed_form:
                from xnorfault.mram.switching import pulse_for_wer_closed_form

                reduced = np.asarray(curve["voltage"]) / vc0
                approx = pulse_for_wer_closed_form(curve["wer"], reduced, device.delta) * tau_ns
                axes.plot(approx, curve["voltage"], color=color, linestyle="--", linewidth=1)
        markers = {0: "o", 1: "s", 2: "D", 3: "^", 4: "v"}
        for index, row in enumerate(data["table"]):
            axes.plot(
                row["pulse"] * 1e9,
                row["voltage"],
                linestyle="none",
                marker=markers.get(index, "o"),
                markerfacecolor="white",
                markeredgecolor="black",
                label=f"Table I: {row['label']}",
            )
        axes.axhline(device.vbd, color="grey", linestyle=":", linewidth=1)
        axes.text(0.2 * tau_ns, device.vbd, " breakdown $V_{bd}$", va="bottom", color="grey")
        longest = max((max(c["pulse"], default=0) for c in data["points"]), default=0)
        axes.set_xlim(0, longest * 1e9 * 1.02 or 1)
        axes.set_ylim(vc0, device.vbd * 1.08)
        axes.set_xlabel("pulse length (ns)")
        axes.set_ylabel("write voltage (V)")
        axes.secondary_xaxis(
            "top", functions=(lambda x: x / tau_ns, lambda x: x * tau_ns)
        ).set_xlabel(r"$\tau/\tau_D$")
        axes.secondary_yaxis("right", functions=(lambda v: v / vc0, lambda v: v * vc0)).set_ylabel(
            r"$V/V_{c0}$"
        )
        axes.legend(loc="upper right")
        _title(
            axes,
            "Write voltage for a target WER",
            f"device {device.name} (Δ = {device.delta:g}), {direction}",
            "solid: exact Fokker–Planck, dashed: closed form" if closed_form else None,
        )
    return _finish(figure, path)


def plot_accuracy_vs_epoch(record: dict, path: str | Path | None = None, band: str = "std"):
    """Error-free test accuracy vs epoch, one line per fault point: the mean over completed
    repeats, with a band of ±1 standard deviation (``band="std"``) or min–max (the paper's
    Figs. 1–4). Returns the figure; saved to ``path`` if given."""
    from matplotlib.ticker import MaxNLocator

    with _styled() as plt:
        figure, axes = plt.subplots(figsize=FIGURE_SIZE, layout="constrained")
        for point in record["points"]:
            curves = [
                [e["test_accuracy"] for e in job["epochs"]]
                for job in point["repeats"]
                if job["epochs"]
            ]
            if not curves:
                continue
            length = min(len(c) for c in curves)
            values = np.array([c[:length] for c in curves]) * 100
            epochs = np.arange(1, length + 1)
            mean = values.mean(axis=0)
            if band == "minmax":
                low, high = values.min(axis=0), values.max(axis=0)
            else:
                spread = values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros(length)
                low, high = mean - spread, mean + spread
            (line,) = axes.plot(
                epochs,
                mean,
                marker="o" if length < 30 else None,
                markersize=3,
                label=f"{point['point']} (n={len(values)})",
            )
            axes.fill_between(
                epochs,
                np.clip(low, 0, 100),
                np.clip(high, 0, 100),
                color=line.get_color(),
                alpha=0.2,
                linewidth=0,
            )
        config = record["config"]
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel("epoch")
        axes.set_ylabel("error-free test accuracy (%)")
        axes.legend(title="training faults")
        spread = "min–max" if band == "minmax" else "±1 std"
        _title(
            axes,
            f"{config['model']} on {config['data']}: bit errors in binary activations during "
            "training",
            f"band {spread} over repeats",
        )
    return _finish(figure, path)


def plot_pareto(result: dict, path: str | Path | None = None):
    """Energy per inference (J) against predicted accuracy drop (search half) along the
    per-site greedy walk and along the shared point, with the verified answers (held-out half,
    their upper bounds as error bars), the budget and the conventional point
    (``xnorfault optimize --plot``). Returns the figure; saved to ``path`` if given."""
    with _styled() as plt:
        figure, axes = plt.subplots(figsize=FIGURE_SIZE, layout="constrained")
        for key, label, color in (("per_site", "per site", "C0"), ("shared", "shared point", "C1")):
            front = np.asarray(result["pareto"][key], dtype=float)
            if front.size:
                axes.plot(
                    front[:, 0],
                    front[:, 1] * 100,
                    marker=".",
                    markersize=3,
                    linewidth=1,
                    color=color,
                    label=f"{label}: predicted on the search half",
                )
        for key, color in (("per_site", "C0"), ("shared", "C1")):
            for check in result["search"]["verifications"][key]:
                axes.errorbar(
                    check["energy_per_inference"],
                    check["drop"] * 100,
                    yerr=[[0], [(check["drop_upper"] - check["drop"]) * 100]],
                    fmt="o" if check["drop_upper"] <= result["max_drop"] else "x",
                    color=color,
                    capsize=3,
                )
        axes.errorbar(
            [], [], yerr=[], fmt="o", color="gray", capsize=3, label="held-out: drop, upper bound"
        )
        axes.axhline(
            result["max_drop"] * 100,
            color="black",
            linestyle="--",
            linewidth=1,
            label=f"budget {_budget_text(result['max_drop'])}",
        )
        axes.axvline(
            result["energy_per_inference"], color=BUDGET_COLOR, linestyle=":", label="answer"
        )
        conventional = (result.get("conventional") or {}).get("energy_per_inference")
        if conventional:
            axes.axvline(
                conventional, color="grey", linestyle="-.", label="conventional point (WER 1e-6)"
            )
        axes.xaxis.set_major_formatter(_joules())
        axes.set_xlabel("activation-write energy per inference")
        axes.set_ylabel("accuracy drop (points)")
        top = max(3 * result["max_drop"] * 100, 1)
        axes.set_ylim(bottom=-0.1 * top, top=top)
        axes.legend(loc="upper right")
        _title(
            axes,
            "Activation-write energy against accuracy drop",
            f"device {result['device']['name']}",
            f"{result['evaluations']} evaluations",
        )
    return _finish(figure, path)


def plot_accuracy_vs_age(curves: list[tuple[str, dict]], path: str | Path | None = None):
    """Accuracy vs the age of the weights (log axis; age 0 left out) for one or more
    ``evaluate --age`` results: per curve the chips' mean with its 95 % interval over chips
    and the worst chip (dashed), the error-free baseline of the first, and the drop budget
    when the results carry one. Returns the figure; saved to ``path`` if given."""
    with _styled() as plt:
        figure, axes = plt.subplots(figsize=FIGURE_SIZE, layout="constrained")
        for index, (label, result) in enumerate(curves):
            points = [p for p in sorted(result["points"], key=lambda p: p["age"]) if p["age"] > 0]
            days = np.array([p["age"] / 86400.0 for p in points])
            color = f"C{index}"
            axes.plot(
                days,
                _percent([p["accuracy_mean"] for p in points]),
                marker="o",
                color=color,
                label=label,
            )
            axes.fill_between(
                days,
                _percent([p["ci95"][0] for p in points]),
                _percent([p["ci95"][1] for p in points]),
                color=color,
                alpha=0.18,
                linewidth=0,
            )
            axes.plot(
                days,
                _percent([p["chip_accuracy"]["worst"] for p in points]),
                linestyle="--",
                color=color,
                linewidth=1,
            )
        baseline = curves[0][1]["baseline_accuracy"] * 100
        axes.axhline(baseline, color="black", linewidth=0.8, label="error-free")
        budget = curves[0][1].get("max_drop")
        if budget:
            _budget_line(axes, baseline, budget["max_drop"], "budget {budget}", 0.8)
        axes.set_xscale("log")
        axes.set_xlabel("age of the weights (days since the write)")
        axes.set_ylabel("test accuracy (%)")
        chips = curves[0][1]["weight_chips"]["count"]
        axes.legend()
        _title(
            axes,
            "Weights in MRAM",
            f"mean of {chips} chips (band 95 %), worst chip dashed",
        )
    return _finish(figure, path)
