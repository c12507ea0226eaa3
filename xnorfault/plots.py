"""Figures. matplotlib is imported inside each function (Agg backend, no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xnorfault.io import atomic_save_figure
from xnorfault.mram.device import MTJ, Direction
from xnorfault.mram.table import table_one

FIGURE5_WERS = (0.1, 0.01, 1e-6)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


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
    data: dict, device: MTJ, path: str | Path, closed_form: bool = False
) -> Path:
    """Draw :func:`write_voltage_curves` data as the paper's Fig. 5 and save it to ``path``."""
    plt = _pyplot()
    direction = data["direction"]
    vc0 = device.critical_voltage(direction)
    tau_ns = device.tau_d * 1e9
    figure, axes = plt.subplots(figsize=(6.4, 4.6), layout="constrained")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for color, curve in zip(colors, data["points"], strict=False):
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
    axes.text(
        0.2 * tau_ns, device.vbd, " breakdown $V_{bd}$", va="bottom", color="grey", fontsize=8
    )
    axes.set_xlim(0, max(max(c["pulse"], default=0) for c in data["points"]) * 1e9 * 1.02)
    axes.set_ylim(vc0, device.vbd * 1.08)
    axes.set_xlabel("pulse length (ns)")
    axes.set_ylabel("write voltage (V)")
    axes.secondary_xaxis("top", functions=(lambda x: x / tau_ns, lambda x: x * tau_ns)).set_xlabel(
        r"$\tau/\tau_D$"
    )
    axes.secondary_yaxis("right", functions=(lambda v: v / vc0, lambda v: v * vc0)).set_ylabel(
        r"$V/V_{c0}$"
    )
    title = f"Write voltage for a target WER, device '{device.name}' ($\\Delta$={device.delta:g})"
    if closed_form:
        title += "\nsolid: exact Fokker–Planck, dashed: closed form"
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="upper right")
    try:
        return atomic_save_figure(figure, path, dpi=150)
    finally:
        plt.close(figure)


def plot_accuracy_vs_epoch(record: dict, path: str | Path, band: str = "std") -> Path:
    """Error-free test accuracy vs epoch, one line per fault point: the mean over completed
    repeats, with a band of ±1 standard deviation (``band="std"``) or min–max (the paper's
    Figs. 1–4)."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6.4, 4.4), layout="constrained")
    for point in record["points"]:
        curves = [
            [e["test_accuracy"] for e in job["epochs"]] for job in point["repeats"] if job["epochs"]
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
        axes.fill_between(epochs, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    config = record["config"]
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("epoch")
    axes.set_ylabel("error-free test accuracy (%)")
    axes.set_title(
        f"{config['model']} on {config['data']}: bit errors in binary activations during training",
        fontsize=9,
    )
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, title="training faults", title_fontsize=8)
    try:
        return atomic_save_figure(figure, path, dpi=150)
    finally:
        plt.close(figure)


def plot_evaluation(result: dict, path: str | Path, device: MTJ | None = None) -> Path:
    """Accuracy (mean with its 95 % interval) vs write voltage, with the WER of both write
    directions and the write energy relative to the highest swept voltage on secondary axes;
    for BER sweeps, accuracy vs BER. With chips, every chip's accuracy is a dot. A
    weight-memory evaluation (``--age``) draws accuracy vs age (:func:`plot_accuracy_vs_age`)."""
    if result.get("weight_memory") is not None:
        return plot_accuracy_vs_age([("chips' mean", result)], path)
    plt = _pyplot()
    points = result["points"]
    figure, axes = plt.subplots(figsize=(7.2, 4.6), layout="constrained")
    voltage_sweep = all(p.get("voltage") is not None for p in points)
    order = sorted(points, key=lambda p: p["voltage"] if voltage_sweep else (p["ber"] or 0.0))
    x = np.array([p["voltage"] if voltage_sweep else (p["ber"] or 0.0) for p in order])
    mean = np.array([p["accuracy_mean"] for p in order]) * 100
    low = np.array([p["ci95"][0] for p in order]) * 100
    high = np.array([p["ci95"][1] for p in order]) * 100
    chips = all(p.get("chips") is not None for p in order)
    axes.plot(
        x,
        mean,
        marker="o",
        color="C0",
        label="chips' mean accuracy" if chips else "accuracy under flips (mean)",
    )
    axes.fill_between(x, low, high, color="C0", alpha=0.2, linewidth=0, label="95 % interval")
    if chips:
        for index, (position, point) in enumerate(zip(x, order, strict=True)):
            axes.scatter(
                np.full(len(point["chips"]), position),
                np.asarray(point["chips"]) * 100,
                s=6,
                color="C0",
                alpha=0.35,
                linewidths=0,
                label="one chip" if index == 0 else None,
            )
    axes.axhline(
        result["baseline_accuracy"] * 100,
        color="black",
        linestyle="--",
        linewidth=1,
        label="error-free",
    )
    drop = result.get("max_drop") or {}
    axes.set_ylabel("test accuracy (%)")
    if voltage_sweep:
        if drop.get("voltage") is not None:
            axes.axvline(
                drop["voltage"],
                color="C2",
                linestyle=":",
                label=f"lowest V within {drop['max_drop']:g}",
            )
        axes.set_xlabel(f"write voltage (V), pulse {order[0]['pulse'] * 1e9:g} ns")
        wer_axis = axes.twinx()
        wer_axis.semilogy(
            x,
            [p["wer_p_to_ap"] for p in order],
            color="C3",
            linestyle="-.",
            label="WER P→AP" + (" (nominal cell)" if chips else ""),
        )
        if any(p["wer_ap_to_p"] != p["wer_p_to_ap"] for p in order):
            wer_axis.semilogy(
                x, [p["wer_ap_to_p"] for p in order], color="C4", linestyle="-.", label="WER AP→P"
            )
        wer_axis.set_ylabel("write error rate", color="C3")
        energy_axis = axes.twinx()
        energy_axis.spines["right"].set_position(("axes", 1.13))
        energies = np.array([p["write_energy"] for p in order])
        energy_axis.plot(
            x, energies / energies.max(), color="C1", linestyle=":", label="write energy (rel.)"
        )
        energy_axis.set_ylabel("write energy relative to highest voltage", color="C1")
        handles = [
            h for a in (axes, wer_axis, energy_axis) for h in a.get_legend_handles_labels()[0]
        ]
        labels = [
            label
            for a in (axes, wer_axis, energy_axis)
            for label in a.get_legend_handles_labels()[1]
        ]
        axes.legend(handles, labels, fontsize=7, loc="lower right")
    else:
        axes.set_xscale("symlog", linthresh=1e-3)
        axes.set_xlabel("bit-error rate of the binary activations")
        axes.legend(fontsize=8, loc="lower left")
    axes.grid(alpha=0.3)
    name = Path(result["backend"].get("model") or "model").name
    axes.set_title(
        f"{name}: accuracy under activation bit errors ("
        + (f"{len(points[0]['chips'])} chips × " if chips else "")
        + f"{points[0]['repeats']} repeats per point)",
        fontsize=9,
    )
    try:
        return atomic_save_figure(figure, path, dpi=150)
    finally:
        plt.close(figure)


def plot_pareto(result: dict, path: str | Path) -> Path:
    """Energy per inference against predicted accuracy drop (search half) along the per-site
    greedy walk and along the shared point, with the verified answers (held-out half, their
    upper bounds as error bars) and the budget (``xnorfault optimize --plot``)."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7.2, 4.6), layout="constrained")
    reference = (result.get("conventional") or {}).get("energy_per_inference")
    scale = reference if reference else 1.0
    unit = "energy relative to the conventional point" if reference else "energy per inference (J)"
    for key, label, color in (("per_site", "per site", "C0"), ("shared", "shared point", "C1")):
        front = np.asarray(result["pareto"][key], dtype=float)
        if front.size:
            axes.plot(
                front[:, 0] / scale,
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
                check["energy_per_inference"] / scale,
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
        result["max_drop"] * 100, color="black", linestyle="--", linewidth=1, label="budget"
    )
    axes.axvline(result["energy_per_inference"] / scale, color="C2", linestyle=":", label="answer")
    axes.set_xlabel(unit)
    axes.set_ylabel("accuracy drop (points)")
    top = max(3 * result["max_drop"] * 100, 1)
    axes.set_ylim(bottom=-0.1 * top, top=top)
    within = [
        energy
        for key in ("per_site", "shared")
        for energy, drop in result["pareto"][key]
        if drop * 100 <= top
    ]
    if within:
        axes.set_xlim(left=0.95 * min(within) / scale)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="upper right")
    axes.set_title(
        f"activation-write energy vs accuracy drop ({result['device']['name']}, "
        f"{result['evaluations']} evaluations)",
        fontsize=9,
    )
    try:
        return atomic_save_figure(figure, path, dpi=150)
    finally:
        plt.close(figure)


def plot_accuracy_vs_age(curves: list[tuple[str, dict]], path: str | Path) -> Path:
    """Accuracy vs the age of the weights (log axis; age 0 left out) for one or more
    ``evaluate --age`` results: per curve the chips' mean with its 95 % interval over chips
    and the worst chip (dashed), the error-free baseline of the first, and the drop budget
    when the results carry one."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7.2, 4.6), layout="constrained")
    for index, (label, result) in enumerate(curves):
        points = [p for p in sorted(result["points"], key=lambda p: p["age"]) if p["age"] > 0]
        days = np.array([p["age"] / 86400.0 for p in points])
        mean = np.array([p["accuracy_mean"] for p in points]) * 100
        low = np.array([p["ci95"][0] for p in points]) * 100
        high = np.array([p["ci95"][1] for p in points]) * 100
        worst = np.array([p["chip_accuracy"]["worst"] for p in points]) * 100
        color = f"C{index}"
        axes.plot(days, mean, marker="o", color=color, label=label)
        axes.fill_between(days, low, high, color=color, alpha=0.18, linewidth=0)
        axes.plot(days, worst, linestyle="--", color=color, linewidth=1)
    baseline = curves[0][1]["baseline_accuracy"] * 100
    axes.axhline(baseline, color="black", linewidth=0.8, label="error-free")
    budget = curves[0][1].get("max_drop")
    if budget:
        axes.axhline(
            baseline - budget["max_drop"] * 100,
            color="black",
            linestyle=":",
            linewidth=0.8,
            label=f"{budget['max_drop'] * 100:g}-point budget",
        )
    axes.set_xscale("log")
    axes.set_xlabel("age of the weights (days since the write)")
    axes.set_ylabel("test accuracy (%)")
    chips = curves[0][1]["weight_chips"]["count"]
    axes.set_title(f"Weights in MRAM: mean of {chips} chips (band 95 %), worst chip dashed")
    axes.legend(fontsize=8)
    return atomic_save_figure(figure, path)
