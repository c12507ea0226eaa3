r"""Persistent weight faults on the graph side: a chip's wrong weights in the ONNX model.

The physics (:mod:`xnorfault.mram.weights`) says which binary weights of a chip read wrong
after the weight memory's life; here those weights are flipped (negated, :math:`\pm\alpha \to
\mp\alpha`) in the model's initializers, and every inference of that chip runs with them — the
same wrong weights in every batch and every repeat, unlike training's transient
``--weight-ber``. Activation faults run on top as before (scalar rates, or a chip's
per-address rates on a device with variation).

:func:`evaluate_weight_ages` evaluates ``count`` chips at each age: per chip and age the
accuracy (the mean of the repeats' activation-fault runs), the share of weights that read
wrong, and over chips the distribution and the yield — the accuracy-vs-age curve that says
when the weights must be written again. Imports numpy, onnx and onnx_ir (and the backend's
runtime).
"""

from __future__ import annotations

import numpy as np
import onnx

from xnorfault.errors import XnorfaultError


def weight_faults_unsupported(backend: str) -> XnorfaultError:
    """The one-line error where weight faults cannot run: any backend but onnxruntime."""
    return XnorfaultError(
        f"weight faults run on ONNX models with the onnxruntime backend, not {backend}: LCE's "
        "converter packs binary weights into bitpacked constants xnorfault does not rewrite; "
        "evaluate the .onnx model with --backend onnxruntime"
    )


def binary_weight_tensors(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """The model's binary weights (:func:`xnorfault.inspection.binary_weight_values`) by
    initializer name, and the model to run them in: the same one, or — where a weight is a
    ``Constant`` node (a lowered QONNX quantizer) — a copy with those constants lifted to
    initializers, which a runtime can replace."""
    import onnx_ir as ir
    from onnx_ir.passes.common import LiftConstantsToInitializersPass

    from xnorfault.inspection import binary_weight_values
    from xnorfault.sites import constant

    model = ir.serde.deserialize_model(proto)
    values = binary_weight_values(model)
    if any(not value.is_initializer() for _, value in values):
        LiftConstantsToInitializersPass(lift_all_constants=False, size_limit=1)(model)
        values = binary_weight_values(model)
        proto = ir.serde.serialize_model(model)
    tensors = {}
    for _, value in values:
        if not value.is_initializer():
            raise XnorfaultError(
                f"binary weight {value.name!r} is neither an initializer nor a Constant node's "
                "value: xnorfault cannot place its faults"
            )
        tensors[value.name] = constant(value)
    return proto, tensors


def flipped(weights: dict[str, np.ndarray], masks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``weights`` with the masked elements negated (only the tensors with a flip)."""
    out = {}
    for name, mask in masks.items():
        if mask.any():
            values = weights[name].copy()
            values.reshape(-1)[mask] *= -1
            out[name] = values
    return out


def weight_signs(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each binary weight's stored value, flattened: ``True`` for +1."""
    return {name: values.reshape(-1) >= 0 for name, values in weights.items()}


def evaluate_weight_ages(
    campaign,
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
    from xnorfault.campaign import Job, job_seed
    from xnorfault.evaluation import summarise
    from xnorfault.mram.weights import (
        WeightTables,
        draw_weight_chip,
        format_age,
        weight_error,
        weight_faults,
    )
    from xnorfault.statistics import binomial_interval

    backend = campaign.backend
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
                    campaign.correct(rates, seed=job_seed(campaign.seed, key, Job(slot, index, r)))
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
        summary = summarise(values)
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
            "chip_accuracy": {
                "count": int(values.size),
                "mean": summary["accuracy_mean"],
                "p5": float(np.percentile(values, 5)),
                "worst": float(values.min()),
            },
            "accuracy_drop": baseline - summary["accuracy_mean"],
        }
        if max_drop is not None:
            within = int(np.sum(values >= baseline - max_drop))
            point["yield"] = within / values.size
            point["yield_ci95"] = binomial_interval(within, values.size)
        else:
            point["yield"] = None
        points.append(point)
    return points


__all__ = ["binary_weight_tensors", "evaluate_weight_ages", "flipped", "weight_signs"]
