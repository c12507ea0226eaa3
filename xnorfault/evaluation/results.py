r"""The ``evaluate`` result from its jobs' results: per point the accuracy over repeats (mean,
std, 95 % t-interval), the test set's own sampling error (Clopper–Pearson over the N images),
the paired drop against the error-free run (:func:`xnorfault.statistics.paired_drop`), the
distribution over chips with the yield, per-site sensitivity; the voltage, BER or age within
``--max-drop`` decided on those intervals; and the points as flat CSV rows. Imports numpy and
scipy only.
"""

from __future__ import annotations

import csv
import io

import numpy as np

from xnorfault.errors import XnorfaultError
from xnorfault.evaluation.jobs import Job
from xnorfault.faults import FaultPoint
from xnorfault.mram.chips import chip_rates
from xnorfault.mram.device import CONVENTIONAL_WER
from xnorfault.statistics import (
    ACCURACY_BOUNDS,
    binomial_interval,
    chip_distribution,
    half_width,
    paired_drop,
    summarise,
    yield_estimate,
)


def assemble(
    points: list[FaultPoint],
    outcomes: dict,
    repeats: int,
    sites: list[str],
    chips=None,
    max_drop: float | None = None,
    per_layer: bool = False,
    target_ci: float | None = None,
) -> dict:
    """The ``evaluate`` result from the jobs' results (``outcomes``: :class:`~xnorfault.evaluation.jobs.Job`
    → which images each run got right): the baseline, per point the mean, std and 95 %
    interval over repeats with the test-set and paired-drop intervals (or, with chips, the
    distribution over chips, :func:`chip_summary`), and the per-site sensitivity."""
    clean = outcomes[Job(-1, -1, 0)]
    baseline = float(clean.mean())
    results = []
    for index, point in enumerate(points):
        result = {
            "label": point.label,
            "ber": point.ber,
            "voltage": point.voltage,
            "pulse": point.pulse,
            "p_flip_pos_to_neg": point.rates.pos_to_neg,
            "p_flip_neg_to_pos": point.rates.neg_to_pos,
            **point.extra,
        }
        if chips is not None:
            accuracies = [
                float(np.mean([outcomes[Job(index, c, r)].mean() for r in range(repeats)]))
                for c in range(chips.count)
            ]
            result.update(chip_summary(accuracies, chips, point, repeats, baseline, max_drop))
        else:
            runs = []
            while Job(index, -1, len(runs)) in outcomes:
                runs.append(outcomes[Job(index, -1, len(runs))])
            result.update(summarise([float(run.mean()) for run in runs], ACCURACY_BOUNDS))
            result.update(uncertainty_sources(clean, runs, result["accuracy_mean"]))
            if target_ci is not None:
                # the t-interval's own half-width: clipping to [0, 1] must not meet the target
                half = half_width([float(run.mean()) for run in runs])
                result["target_ci"] = {"half_width": target_ci, "met": bool(half <= target_ci)}
        result["accuracy_drop"] = baseline - result["accuracy_mean"]
        if per_layer:
            result["per_layer"] = {
                site: summarise(
                    [float(outcomes[Job(index, -1, r, site)].mean()) for r in range(repeats)],
                    ACCURACY_BOUNDS,
                )
                for site in sites
            }
        # every point names each site's rates, whether or not they differ between sites, so
        # that the field does not appear or vanish with the values
        everywhere = {site: point.spec.activation_rates(site) for site in sites}
        result["per_site_rates"] = {site: r.to_dict() for site, r in everywhere.items()}
        results.append(result)
    return {"baseline_accuracy": baseline, "points": results, "site_names": sites}


def uncertainty_sources(clean: np.ndarray, runs: list[np.ndarray], accuracy: float) -> dict:
    """The uncertainty of a point beyond its flip-noise interval (``ci95``, over repeats on
    these images): ``test_set_ci95``, the accuracy's Clopper–Pearson interval over the N test
    images (the test set's own sampling error), and ``drop_ci95``, the interval of the drop
    against the error-free run on the same images that holds both sources
    (:func:`xnorfault.statistics.paired_drop`)."""
    count = len(clean)
    paired = paired_drop(clean, runs)
    return {
        "test_set_ci95": binomial_interval(round(accuracy * count), count),
        "drop_ci95": [paired["low"], paired["high"]],
    }


def chip_summary(
    accuracies: list[float],
    chips,
    point: FaultPoint,
    repeats: int,
    baseline: float,
    max_drop: float | None = None,
) -> dict:
    r"""One voltage point over the chips of ``chips``, from each chip's accuracy :math:`a_k`
    (the mean of its ``repeats`` runs with its per-address rates):

    - ``chips``: the per-chip accuracies, in chip order;
    - ``accuracy_mean``, ``accuracy_std``, ``ci95``: mean, sample std and 95 % t-interval of
      the mean over chips (the chip population's mean accuracy);
    - ``chip_accuracy``: mean, 5th percentile (linear interpolation between order statistics)
      and worst chip;
    - ``yield`` (with ``max_drop``): the share of chips with :math:`a_k \ge a_0 - \text{drop}`
      (:math:`a_0` the error-free baseline), and ``yield_ci95``, its Clopper–Pearson 95 %
      interval — chips are independent draws of the population;
    - ``population_p_flip_*``: the population's exact mean rates
      (:meth:`~xnorfault.mram.MTJ.population_wer`) and ``chip_mean_p_flip_*`` the drawn cells'
      mean, which converges to it.
    """
    pos_total, neg_total = 0.0, 0.0
    for chip in chips.chips():
        rates = chip_rates(chip, chips.table, point.voltage)
        pos_total += sum(float(r.pos_to_neg.sum()) for r in rates.values())
        neg_total += sum(float(r.neg_to_pos.sum()) for r in rates.values())
    values = np.asarray(accuracies)
    result = summarise(values, ACCURACY_BOUNDS)
    result["repeats"] = repeats
    result["chips"] = list(accuracies)
    result["chip_accuracy"] = chip_distribution(values)
    device = chips.device
    result["population_p_flip_pos_to_neg"] = float(
        device.population_wer(point.voltage, point.pulse, "ap_to_p")
    )
    result["population_p_flip_neg_to_pos"] = float(
        device.population_wer(point.voltage, point.pulse, "p_to_ap")
    )
    cells = chips.cells * chips.count
    result["chip_mean_p_flip_pos_to_neg"] = pos_total / cells
    result["chip_mean_p_flip_neg_to_pos"] = neg_total / cells
    if max_drop is not None:
        result.update(yield_estimate(values >= baseline - max_drop))
    else:
        result["yield"] = None
    return result


def _shown_within(point: dict, baseline: float, max_drop: float) -> bool:
    """Whether a point's drop is shown below ``max_drop`` by its interval, not its mean: the
    paired interval of the drop (images and flips, ``drop_ci95``) where the point has one, else
    (chips) the interval of the accuracy over chips."""
    if point.get("drop_ci95") is not None:
        return point["drop_ci95"][1] < max_drop
    return point["ci95"][0] > baseline - max_drop


def _last_within(points: list[dict], baseline: float, max_drop: float) -> dict | None:
    """The last of ``points`` (ordered from safest to most aggressive) before the first that is
    not shown within ``max_drop`` (:func:`_shown_within`)."""
    chosen = None
    for point in points:
        if not _shown_within(point, baseline, max_drop):
            break
        chosen = point
    return chosen


def lowest_voltage_within(result: dict, max_drop: float, device=None) -> dict | None:
    """The lowest swept write voltage whose drop, and that of every higher swept voltage, is
    shown within ``max_drop`` of the error-free baseline by its 95 % interval
    (:func:`_shown_within`), with its energy saving and endurance
    gain (E-model) against the conventional operating point: WER 1e-6 in both write directions
    at the same pulse (:meth:`xnorfault.mram.MTJ.conventional_voltage`, Table I)."""
    voltage_points = sorted(
        (p for p in result["points"] if p.get("voltage") is not None), key=lambda p: -p["voltage"]
    )
    if not voltage_points:
        return None
    chosen = _last_within(voltage_points, result["baseline_accuracy"], max_drop)
    if chosen is None:
        return {
            "max_drop": max_drop,
            "voltage": None,
            "reason": "even the highest swept voltage loses more than the allowed drop",
        }
    answer = {
        "max_drop": max_drop,
        "voltage": chosen["voltage"],
        "pulse": chosen["pulse"],
        "accuracy_mean": chosen["accuracy_mean"],
        "p_flip_pos_to_neg": chosen["p_flip_pos_to_neg"],
        "p_flip_neg_to_pos": chosen["p_flip_neg_to_pos"],
    }
    if chosen.get("yield") is not None:
        answer["yield"] = chosen["yield"]
        answer["yield_ci95"] = chosen["yield_ci95"]
        answer["chip_accuracy"] = chosen["chip_accuracy"]
    if device is not None:
        try:
            reference = float(device.conventional_voltage(chosen["pulse"], CONVENTIONAL_WER))
        except XnorfaultError:
            reference = None
        if reference is not None:
            answer["reference_voltage"] = reference
            answer["reference_wer"] = CONVENTIONAL_WER
            answer["energy_saving"] = 1 - float(
                device.write_energy(chosen["voltage"], chosen["pulse"])
                / device.write_energy(reference, chosen["pulse"])
            )
            answer["endurance_gain"] = float(
                device.endurance_gain(chosen["voltage"], chosen["pulse"], reference)
            )
            answer["outlasts_service_life"] = bool(
                device.outlasts_service_life(chosen["voltage"], chosen["pulse"])
            )
    return answer


def highest_ber_within(result: dict, max_drop: float) -> dict | None:
    """The highest swept BER whose accuracy (and that of every lower BER) is shown within the
    drop by its 95 % interval."""
    ber_points = sorted(
        (p for p in result["points"] if p.get("ber") is not None), key=lambda p: p["ber"]
    )
    chosen = _last_within(ber_points, result["baseline_accuracy"], max_drop)
    if not ber_points:
        return None
    return {
        "max_drop": max_drop,
        "ber": None if chosen is None else chosen["ber"],
        "accuracy_mean": None if chosen is None else chosen["accuracy_mean"],
    }


def longest_age_within(result: dict, max_drop: float) -> dict:
    """The oldest age up to which every age's interval over chips shows the drop below
    ``max_drop`` (ages ascending; :func:`_last_within`): how long the weights may go
    unwritten. ``age`` ``None`` when even the first age is not shown within."""
    chosen = _last_within(result["points"], result["baseline_accuracy"], max_drop)
    answer = {"max_drop": max_drop, "age": None if chosen is None else chosen["age"]}
    if chosen is not None:
        answer["accuracy_mean"] = chosen["accuracy_mean"]
        answer["ci95"] = chosen["ci95"]
        answer["yield"] = chosen.get("yield")
        answer["yield_ci95"] = chosen.get("yield_ci95")
    return answer


CSV_COLUMNS = [
    "label",
    "ber",
    "voltage",
    "pulse",
    "p_flip_pos_to_neg",
    "p_flip_neg_to_pos",
    "accuracy_mean",
    "accuracy_std",
    "ci95_low",
    "ci95_high",
    "repeats",
    "accuracy_drop",
    "write_energy",
    "energy_per_inference",
    "endurance_cycles",
    "chip_p5",
    "chip_worst",
    "yield",
]

# a weight-memory evaluation (``--age``) adds these
WEIGHT_CSV_COLUMNS = ["age", "p_wrong_pos", "p_wrong_neg", "wrong_share", "expected_wrong_share"]


def point_rows(result: dict) -> tuple[list[str], list[dict]]:
    """The points of an evaluation result as flat rows (one per point; the interval split in
    ``ci95_low``/``ci95_high``, the chips' 5th percentile and worst, each batch size's latency
    as ``latency_bB_KEY``) and their column names: the ``--csv`` file and
    :meth:`xnorfault.api.Evaluation.to_dataframe`."""
    latency_keys = sorted(
        {
            f"latency_b{b}_{k}"
            for p in result["points"]
            for b in p.get("latency") or {}
            for k in ("p50_ms", "p90_ms", "p99_ms", "throughput_per_s")
        }
    )
    weights = result.get("weight_memory") is not None
    extra = WEIGHT_CSV_COLUMNS if weights else []
    rows = []
    for point in result["points"]:
        row = dict(point)
        row["ci95_low"], row["ci95_high"] = point["ci95"]
        if weights:
            row["p_wrong_pos"] = point["weight_error"]["pos"]
            row["p_wrong_neg"] = point["weight_error"]["neg"]
        if point.get("chip_accuracy") is not None:
            row["chip_p5"] = point["chip_accuracy"]["p5"]
            row["chip_worst"] = point["chip_accuracy"]["worst"]
        for b, values in (point.get("latency") or {}).items():
            for key, value in values.items():
                row[f"latency_b{b}_{key}"] = value
        columns = CSV_COLUMNS + extra + latency_keys
        rows.append({key: row.get(key) for key in columns})
    return CSV_COLUMNS + extra + latency_keys, rows


def points_csv(result: dict) -> str:
    """``evaluate --csv``: :func:`point_rows` as CSV (empty cells where a point lacks a field)."""
    columns, rows = point_rows(result)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


__all__ = [
    "CSV_COLUMNS",
    "WEIGHT_CSV_COLUMNS",
    "assemble",
    "chip_summary",
    "highest_ber_within",
    "longest_age_within",
    "lowest_voltage_within",
    "point_rows",
    "points_csv",
    "uncertainty_sources",
]
