"""The verification step of ``xnorfault optimize``: the paired drop of a candidate on a half of
the test set with its one-sided upper bound (Bonferroni over at most :data:`VERIFICATIONS`
checks per answer), the candidates verified in turn until one holds, and the answer on chips.
Imports numpy and scipy only.
"""

from __future__ import annotations

import numpy as np

from xnorfault.optimization.search import Search
from xnorfault.statistics import paired_drop, yield_estimate

# candidates: the allocations predicted within these shares of the budget (the shared point
# then falls back to the safest one): at most four verifications per answer (Bonferroni K)
BUDGET_FRACTIONS = (1.0, 0.5, 0.25, 0.125)

SHARED_FRACTIONS = (1.0, 0.5, 0.25)

VERIFICATIONS = 4


def verify(search, half: str, clean, rates, repeats: int, alpha: float) -> dict:
    r"""The drop on the images of ``half`` (the held-out half, or the search half when
    screening) under ``rates``: per image
    :math:`\delta_i` = clean correct − share of ``repeats`` runs correct, the mean and its
    one-sided upper :math:`1-\alpha` t-bound (:func:`xnorfault.statistics.paired_drop`)."""
    runs = search.runs(half, rates, repeats)
    paired = paired_drop(clean, runs, 1 - alpha, one_sided=True)
    return {
        "accuracy_mean": float(np.mean(runs)),
        "baseline_accuracy": float(np.mean(clean)),
        "drop": paired["drop"],
        "drop_upper": paired["high"],
        "confidence_each": 1 - alpha,
        "images": paired["images"],
        "repeats": repeats,
    }


def settle(path, candidates, budget, check, fallback: bool):
    """Verify ``candidates`` (indices into ``path``, fixed by the search alone) in turn, then,
    with ``fallback``, the safest allocation; the first that holds and every verification."""
    tried: dict[int, dict] = {}
    order = list(dict.fromkeys(candidates)) + ([0] if fallback else [])
    for index in order:
        if index in tried:
            continue
        tried[index] = check(path[index])
        if tried[index]["drop_upper"] <= budget:
            return index, tried
    return None, tried


def chip_report(
    search: Search,
    clean,
    points: dict,
    count: int,
    seed: int,
    repeats: int,
    max_drop: float,
) -> dict:
    """The answer on ``count`` chips (:mod:`xnorfault.mram.chips`) of chip seed ``seed``: each
    site's cells at its own operating point (``points``: site → :class:`WritePoint`),
    ``repeats`` runs per chip on the held-out half. Reports every chip's drop, their mean and
    worst, and the yield — the share of chips within ``max_drop`` — with its Clopper–Pearson
    95 % interval. A report on the answer (searched at the nominal WERs), not a constraint of
    the search."""
    described = tuple((site, p.voltage, p.pulse) for site, p in points.items())
    per_chip = search.chip_runs(described, count, repeats)
    drops = [float(clean.mean() - np.mean([run.mean() for run in runs])) for runs in per_chip]
    return {
        "count": count,
        "seed": seed,
        "repeats": repeats,
        "drops": drops,
        "mean_drop": float(np.mean(drops)),
        "worst_drop": float(np.max(drops)),
        **yield_estimate(np.asarray(drops) <= max_drop),
    }


__all__ = [
    "BUDGET_FRACTIONS",
    "SHARED_FRACTIONS",
    "VERIFICATIONS",
    "chip_report",
    "settle",
    "verify",
]
