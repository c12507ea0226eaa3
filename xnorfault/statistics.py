r"""The statistics behind xnorfault's claims: differences with Welch intervals, Holm-corrected
p-values, tolerance decided on intervals, binomial intervals, and campaign sizing.

- **Welch difference** of two samples (e.g. final accuracies at a training BER against BER 0):
  :math:`\Delta = \bar a - \bar b`, standard error :math:`\sqrt{s_a^2/n_a + s_b^2/n_b}`,
  Welch–Satterthwaite degrees of freedom, the two-sided t-test p-value and the
  :math:`1-\alpha` interval :math:`\Delta \pm t_{1-\alpha/2,\nu}\,\mathrm{SE}` (scipy's
  ``ttest_ind(equal_var=False)``).
- **Holm's step-down correction** of m p-values (Holm 1979): sorted
  :math:`p_{(1)} \le \dots \le p_{(m)}`, adjusted
  :math:`\tilde p_{(i)} = \max_{j \le i} \min(1, (m-j+1)\,p_{(j)})`; it
  controls the family-wise error rate with no assumption on how the tests depend on each other.
- **Within a margin** X: a difference is *within X* only when the lower end of its interval
  lies above −X (the interval, not the mean); otherwise the claim is *not shown*. A tolerance
  claim over a sweep ("training BERs up to b stay within X") takes the contiguous run from BER 0:
  the largest b such that every swept BER ≤ b is within X.
- **Binomial interval** (Clopper–Pearson, exact) of a share of k in n, e.g. an accuracy on n
  test images: the test set's own sampling error, apart from flip noise.
- **Paired drop** against the error-free run on the same images (:func:`paired_drop`): the
  interval of a drop that holds both the images drawn and the bits flipped.
- **Summaries** of repeated accuracies (:func:`summarise`: mean, sample std, 95 % t-interval of
  the mean) and of chips (:func:`chip_distribution`; the yield within a drop with its
  Clopper–Pearson interval, :func:`yield_estimate`).
- **Campaign sizing**: with a sample standard deviation s over n runs, the t-interval's
  half-width is :math:`t_{0.975,n-1}\,s/\sqrt n`; reaching a half-width W needs
  :math:`n \ge (t_{0.975,n-1}\,s/W)^2` runs (solved with the t quantile at the current n, then
  checked again with the runs added).

Imports numpy and scipy only.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats


def welch_difference(sample, reference, confidence: float = 0.95) -> dict:
    """``mean(sample) − mean(reference)`` with its Welch interval and two-sided p-value; with
    fewer than two values on a side (or no spread at all) the interval and p are ``None``."""
    sample, reference = np.asarray(sample, float), np.asarray(reference, float)
    difference = float(sample.mean() - reference.mean())
    result = {"difference": difference, "ci": None, "p_value": None, "df": None}
    if sample.size < 2 or reference.size < 2:
        return result
    if sample.std(ddof=1) == 0 and reference.std(ddof=1) == 0:
        return result
    with warnings.catch_warnings():  # a side without spread makes scipy warn
        warnings.simplefilter("ignore", RuntimeWarning)
        test = stats.ttest_ind(sample, reference, equal_var=False)
        interval = test.confidence_interval(confidence)
    result.update(
        ci=[float(interval.low), float(interval.high)],
        p_value=float(test.pvalue),
        df=float(test.df),
    )
    return result


def holm(p_values) -> list[float | None]:
    """Holm's step-down adjusted p-values, in the order given (``None`` entries are skipped and
    kept as ``None``; m counts the others)."""
    indexed = [(p, i) for i, p in enumerate(p_values) if p is not None]
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    m = len(indexed)
    for rank, (p, index) in enumerate(sorted(indexed)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[index] = running
    return adjusted


def within(ci, margin: float) -> bool:
    """Whether a difference's interval shows it within ``margin`` below zero (lower end above
    −margin); an unknown interval shows nothing."""
    return ci is not None and ci[0] > -margin


def contiguous_tolerance(bers_and_cis, margin: float) -> float | None:
    """The largest swept BER b such that every swept BER ≤ b (BER 0 itself excepted) is within
    ``margin`` of BER 0 by its interval; ``None`` when the smallest one is not."""
    best = None
    for ber, ci in sorted(bers_and_cis, key=lambda item: item[0]):
        if ber == 0:
            continue
        if not within(ci, margin):
            break
        best = ber
    return best


def paired_drop(clean, runs, confidence: float = 0.95, one_sided: bool = False) -> dict:
    r"""The accuracy drop of repeated runs against the error-free run on the same images, with
    the interval that holds both error sources — which images were drawn and which bits
    flipped: per image :math:`\delta_i` = correct without errors (0/1) − share of runs
    correct; the drop is :math:`\bar\delta` and its interval
    :math:`\bar\delta \pm t_{q,N-1}\,s_\delta/\sqrt N` (two-sided, q = (1 + confidence)/2,
    or with ``one_sided`` only the upper end, q = confidence)."""
    clean = np.asarray(clean, float)
    delta = clean - np.mean(np.asarray(runs, float), axis=0)
    count = delta.size
    drop = float(delta.mean())
    spread = float(delta.std(ddof=1)) if count > 1 else 0.0
    quantile = confidence if one_sided else 0.5 + confidence / 2
    half = float(stats.t.ppf(quantile, max(count - 1, 1))) * spread / math.sqrt(count)
    return {"drop": drop, "low": drop - half, "high": drop + half, "images": int(count)}


def binomial_interval(successes: int, trials: int, confidence: float = 0.95) -> list[float]:
    """Clopper–Pearson interval of the share ``successes / trials``."""
    interval = stats.binomtest(int(successes), int(trials)).proportion_ci(confidence, "exact")
    return [float(interval.low), float(interval.high)]


def half_width(values, confidence: float = 0.95) -> float:
    """Half-width of the t-interval of the mean of ``values`` (infinite below two values)."""
    values = np.asarray(values, float)
    if values.size < 2:
        return math.inf
    quantile = stats.t.ppf(0.5 + confidence / 2, values.size - 1)
    return float(quantile * values.std(ddof=1) / math.sqrt(values.size))


def runs_needed(values, target: float, confidence: float = 0.95) -> int:
    """Runs the t-interval needs for a half-width ≤ ``target``, from the spread of ``values``:
    :math:`\\lceil (t_{n-1}\\,s/W)^2 \\rceil`, at least the runs already made."""
    values = np.asarray(values, float)
    if values.size < 2:
        return 2
    spread = values.std(ddof=1)
    if spread == 0:
        return int(values.size)
    quantile = stats.t.ppf(0.5 + confidence / 2, values.size - 1)
    return max(int(values.size), math.ceil((quantile * spread / target) ** 2))


ACCURACY_BOUNDS = (0.0, 1.0)


def summarise(values, bounds: tuple[float, float] | None = None) -> dict:
    r"""Mean, sample std and 95 % t-interval of the mean of repeated values,
    :math:`\bar a \pm t_{0.975,n-1}\,s/\sqrt n`; with ``bounds`` (an accuracy's
    :data:`ACCURACY_BOUNDS`) the interval is clipped to them — the mean of values within them
    cannot lie outside, and a t-interval past them claims what cannot occur."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if values.size < 2:
        return {
            "accuracy_mean": mean,
            "accuracy_std": 0.0,
            "ci95": [mean, mean],
            "repeats": int(values.size),
        }
    half = half_width(values)
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return {
        "accuracy_mean": mean,
        "accuracy_std": float(values.std(ddof=1)),
        "ci95": [low, high],
        "repeats": int(values.size),
    }


def chip_distribution(accuracies) -> dict:
    """Accuracies over chips (independent draws of a population): ``count``, ``mean``, ``p5``
    (the 5th percentile, linear interpolation between order statistics) and ``worst``."""
    values = np.asarray(accuracies, dtype=float)
    return {
        "count": int(values.size),
        "mean": float(values.mean()),
        "p5": float(np.percentile(values, 5)),
        "worst": float(values.min()),
    }


def yield_estimate(passed) -> dict:
    """The yield of chips that ``passed`` (one bool per chip, independent draws): the share
    :math:`k/n` as ``yield`` and its Clopper–Pearson 95 % interval as ``yield_ci95``
    (:func:`binomial_interval`)."""
    passed = np.asarray(passed, dtype=bool)
    within = int(passed.sum())
    return {"yield": within / passed.size, "yield_ci95": binomial_interval(within, passed.size)}


__all__ = [
    "binomial_interval",
    "chip_distribution",
    "paired_drop",
    "contiguous_tolerance",
    "half_width",
    "holm",
    "runs_needed",
    "summarise",
    "welch_difference",
    "within",
    "yield_estimate",
]
