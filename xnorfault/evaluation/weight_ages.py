r"""Binary weights kept in MRAM over their life (``evaluate --age``): a chip's persistent weight
faults, age by age.

The physics (:mod:`xnorfault.mram.weights`) says which binary weights of a chip read wrong
after the weight memory's life; here those weights are flipped (negated,
:math:`\pm\alpha \to \mp\alpha`, :func:`xnorfault.graph.weights.flipped`) in the model's
initializers, and every inference of that chip runs with them — the same wrong weights in
every batch and every repeat, unlike training's transient ``--weight-ber``. Activation faults run on top as before (scalar rates, or a chip's
per-address rates on a device with variation).

:func:`evaluate_weight_ages` evaluates ``count`` chips at each age: per chip and age the
accuracy (the mean of the repeats' activation-fault runs), the share of weights that read
wrong, and over chips the distribution and the yield — the accuracy-vs-age curve that says
when the weights must be written again. Imports numpy, onnx and onnx_ir (and the backend's
runtime).
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np

from xnorfault.errors import XnorfaultError
from xnorfault.evaluation.jobs import Job, job_seed
from xnorfault.evaluation.request import needs_rate_maps
from xnorfault.graph.weights import flipped, weight_signs
from xnorfault.mram.chips import ChipPopulation, chip_rates, draw_chip
from xnorfault.mram.weights import (
    WeightTables,
    draw_weight_chip,
    format_age,
    weight_error,
    weight_faults,
)
from xnorfault.statistics import ACCURACY_BOUNDS, chip_distribution, summarise, yield_estimate


def evaluate_weight_ages(
    test_runner,
    device,
    memory,
    ages: list[float],
    count: int,
    seed: int,
    activation_rates,
    repeats: int,
    baseline: float,
    max_drop: float | None = None,
    advance=None,
) -> list[dict]:
    r"""Every chip at every age (ages in the given order): one point per age.

    ``activation_rates(chip_index)`` gives the activation rates of a chip (a dict by site).
    Per point: ``age`` (s), ``weight_error`` (the probabilities that a +1 / −1 weight reads
    wrong on a nominal cell, :func:`~xnorfault.mram.weights.weight_error`),
    ``expected_wrong_share`` (the mean over chips of the expected share of wrong weights),
    ``wrong_weights`` (per chip: how many read wrong) and ``wrong_share`` (their mean share),
    ``chips`` (per-chip accuracies), their mean, 95 % t-interval, 5th percentile and worst
    chip, and with ``max_drop`` the ``yield`` — the share of chips within the drop — with its
    Clopper–Pearson interval."""
    backend = test_runner.backend
    weights = backend.binary_weights()
    if not weights:
        raise XnorfaultError(
            "the model has no binary weights (Conv/Gemm/MatMul weights of ±c per tensor or "
            "channel): there is nothing to place in the weight memory; see 'xnorfault inspect'"
        )
    signs = weight_signs(weights)
    sizes = {name: int(values.size) for name, values in weights.items()}
    total = sum(sizes.values())
    tables = WeightTables.build(device, memory) if device.varies else None
    per_age = [{"accuracies": [], "wrong": [], "expected": []} for _ in ages]
    try:
        for index in range(count):
            chip = draw_weight_chip(device, sizes, seed, index)
            rates = activation_rates(index)
            for slot, age in enumerate(ages):
                masks, expected = weight_faults(chip, signs, device, memory.at_age(age), tables)
                backend.set_weight_faults(flipped(weights, masks))
                # seeds by coordinates (age, chip, repeat): any age evaluated alone agrees
                key = f"weights|age={age!r}"
                runs = [
                    test_runner.correct(
                        rates, seed=job_seed(test_runner.seed, key, Job(slot, index, r))
                    )
                    for r in range(repeats)
                ]
                per_age[slot]["accuracies"].append(float(np.mean([r.mean() for r in runs])))
                per_age[slot]["wrong"].append(int(sum(int(m.sum()) for m in masks.values())))
                per_age[slot]["expected"].append(
                    sum(expected[name] * sizes[name] for name in sizes) / total
                )
                if advance is not None:
                    advance()
    finally:
        backend.set_weight_faults(None)
    points = []
    for age, collected in zip(ages, per_age, strict=True):
        values = np.asarray(collected["accuracies"])
        summary = summarise(values, ACCURACY_BOUNDS)
        wrong_pos, wrong_neg = weight_error(device, memory.at_age(age))
        point = {
            "label": f"age {format_age(age)}",
            "age": age,
            "weight_memory": memory.at_age(age).to_dict(device),
            "weight_error": {"pos": wrong_pos, "neg": wrong_neg},
            "binary_weights": total,
            "expected_wrong_share": float(np.mean(collected["expected"])),
            "wrong_weights": collected["wrong"],
            "wrong_share": float(np.mean(collected["wrong"]) / total),
            **summary,
            "repeats": repeats,
            "chips": collected["accuracies"],
            "chip_accuracy": chip_distribution(values),
            "accuracy_drop": baseline - summary["accuracy_mean"],
        }
        if max_drop is not None:
            point.update(yield_estimate(values >= baseline - max_drop))
        else:
            point["yield"] = None
        points.append(point)
    return points


def run_weight_evaluation(request, test_runner, points, progress) -> dict:
    """Every chip at every age (:func:`xnorfault.evaluation.weight_ages.evaluate_weight_ages`), with
    the activation faults of the one point on top (per-address on a varied device)."""
    runner = test_runner.backend
    point = points[0]
    sites = runner.sites
    everywhere = {site: point.spec.activation_rates(site) for site in sites}
    population = None
    if request.faults.source is not None and needs_rate_maps(request):
        population = ChipPopulation.build(
            request.faults.source.device,
            {site: runner.site_addresses.get(site) for site in sites},
            request.faults.chips or 1,
            request.faults.chip_seed,
            request.faults.source.pulse,
            request.faults.source.voltages,
        )

    def activation_rates(index: int):
        if population is None:
            return everywhere
        chip = draw_chip(population.device, population.addresses, request.faults.chip_seed, index)
        return chip_rates(chip, population.table, point.voltage)

    clean = test_runner.correct({})
    baseline = float(clean.mean())
    count = request.faults.chips or 1
    task = (
        progress.add_task("evaluating", total=count * len(request.weights.ages))
        if progress
        else None
    )
    with progress if progress is not None else nullcontext():
        results = evaluate_weight_ages(
            test_runner,
            request.weights.device,
            request.weights.memory,
            list(request.weights.ages),
            count,
            request.faults.chip_seed,
            activation_rates,
            request.repeats,
            baseline,
            request.max_drop,
            (lambda: progress.advance(task)) if progress else None,
        )
    for result in results:
        result.update(
            {
                "activation_point": point.label,
                "ber": point.ber,
                "voltage": point.voltage,
                "pulse": point.pulse,
                "p_flip_pos_to_neg": point.rates.pos_to_neg,
                "p_flip_neg_to_pos": point.rates.neg_to_pos,
            }
        )
    memory, device = request.weights.memory, request.weights.device
    result = {
        "baseline_accuracy": baseline,
        "points": results,
        "site_names": sites,
        "test_images": int(len(test_runner.labels)),
        "weight_memory": memory.to_dict(device),
        "weight_memory_summary": memory.describe(device),
        "weight_device": device.to_dict(),
        "weight_chips": {"count": count, "seed": request.faults.chip_seed, "varied": device.varies},
    }
    if population is not None:
        result["chip_draw"] = population.describe()
    return result


__all__ = ["evaluate_weight_ages", "run_weight_evaluation"]
