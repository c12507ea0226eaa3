"""The statistics behind the claims, against textbook values: Welch's interval and p by hand,
Holm's correction by hand (the Fashion-MNIST study's five tests), Clopper–Pearson, the
tolerance claim decided on intervals, and campaign sizing."""

import math

import numpy as np
import pytest
from scipy import stats

from xnorfault.report import build_report
from xnorfault.statistics import (
    binomial_interval,
    contiguous_tolerance,
    half_width,
    holm,
    paired_drop,
    runs_needed,
    welch_difference,
    within,
)


def test_welch_difference_matches_the_textbook_formulas():
    a, b = [0.890, 0.891, 0.888], [0.884, 0.886, 0.881]
    mean_a, mean_b = np.mean(a), np.mean(b)
    var_a, var_b = np.var(a, ddof=1) / 3, np.var(b, ddof=1) / 3
    se = math.sqrt(var_a + var_b)
    df = (var_a + var_b) ** 2 / (var_a**2 / 2 + var_b**2 / 2)  # Welch–Satterthwaite
    t = (mean_a - mean_b) / se
    result = welch_difference(a, b)
    assert result["difference"] == pytest.approx(mean_a - mean_b)
    assert result["df"] == pytest.approx(df)
    assert result["p_value"] == pytest.approx(2 * stats.t.sf(abs(t), df))
    half = stats.t.ppf(0.975, df) * se
    assert result["ci"] == pytest.approx([mean_a - mean_b - half, mean_a - mean_b + half])
    assert welch_difference([0.9], b)["ci"] is None  # one value: no interval


def test_holm_by_hand_and_on_the_fashion_mnist_study():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.2, None, 0.01]) == [pytest.approx(0.2), None, pytest.approx(0.02)]
    # the committed study's five Welch tests (BER 2, 4, 8, 16, 32 % vs 0): 8 % goes from
    # p = 0.0232 to 0.0696 — no longer below 0.05
    raw = [0.606, 0.175, 0.0232, 2.66e-05, 0.000175]
    adjusted = holm(raw)
    assert adjusted[2] == pytest.approx(0.0696)
    assert adjusted == pytest.approx([0.606, 0.35, 0.0696, 1.33e-4, 7.0e-4])


def test_clopper_pearson_interval():
    low, high = binomial_interval(0, 10)
    assert low == 0 and high == pytest.approx(1 - 0.025 ** (1 / 10))
    low, high = binomial_interval(8900, 10000)
    assert low < 0.89 < high and high - low == pytest.approx(0.0123, abs=5e-4)


def test_within_flips_to_not_shown_when_the_interval_crosses_the_margin():
    assert within([-0.0099, 0.002], 0.01)
    assert not within([-0.0126, 0.001], 0.01)  # mean −0.6 points, interval reaches −1.26
    assert not within(None, 0.01)
    sweep = [(0, None), (0.02, [-0.005, 0.006]), (0.04, [-0.0125, 0.004]), (0.08, [-0.008, 0.0])]
    assert contiguous_tolerance(sweep, 0.01) == 0.02  # 0.08 is within, but 0.04 breaks the run
    assert contiguous_tolerance(sweep[:1] + sweep[2:], 0.01) is None


def test_runs_needed_reaches_the_half_width():
    rng = np.random.default_rng(3)
    values = list(rng.normal(0.9, 0.01, 5))
    needed = runs_needed(values, 0.002)
    s = np.std(values, ddof=1)
    assert needed == math.ceil((stats.t.ppf(0.975, 4) * s / 0.002) ** 2)
    more = values + list(rng.normal(0.9, 0.01, needed - 5))
    assert half_width(more) < half_width(values)
    assert runs_needed([0.9, 0.9], 0.001) == 2 and half_width([0.9]) == math.inf


def record_with(finals_by_ber):
    return {
        "config": {"model": "lenet4", "data": "digits", "epochs": 1, "batch_size": 8, "seed": 1},
        "points": [
            {
                "point": f"ber={ber:g}",
                "ber": ber,
                "repeats": [
                    {"status": "complete", "repeat": i, "epochs": [{"test_accuracy": a}]}
                    for i, a in enumerate(finals)
                ],
            }
            for ber, finals in finals_by_ber.items()
        ],
    }


def test_report_decides_tolerance_on_the_interval():
    reference = [0.890, 0.892, 0.891]
    tight = build_report(record_with({0: reference, 0.04: [0.886, 0.887, 0.886]}), None, [])
    assert "every swept training BER up to 0.04 stays within 1 point" in tight
    assert "| yes |" in tight and "p (Holm)" in tight
    # the same mean change (−0.5 points) with a spread whose interval reaches below −1 point
    wide = build_report(record_with({0: reference, 0.04: [0.878, 0.896, 0.884]}), None, [])
    assert "| not shown |" in wide and "no training BER is shown within 1 point" in wide


def test_paired_drop_holds_images_and_flips():
    """Per image δ = clean − share of runs right; mean and t-interval by hand."""
    clean = np.array([1, 1, 1, 0, 1, 1, 0, 1], bool)
    runs = [
        np.array([1, 0, 1, 0, 1, 1, 1, 1], bool),
        np.array([1, 1, 0, 0, 1, 0, 0, 1], bool),
    ]
    delta = clean.astype(float) - np.mean(runs, axis=0)
    half = stats.t.ppf(0.975, 7) * delta.std(ddof=1) / math.sqrt(8)
    result = paired_drop(clean, runs)
    assert result["drop"] == pytest.approx(delta.mean())
    assert [result["low"], result["high"]] == pytest.approx(
        [delta.mean() - half, delta.mean() + half]
    )
    upper = paired_drop(clean, runs, 0.95, one_sided=True)["high"]
    assert upper == pytest.approx(
        delta.mean() + stats.t.ppf(0.95, 7) * delta.std(ddof=1) / math.sqrt(8)
    )


def test_accuracy_intervals_are_clipped_to_zero_and_one_and_differences_are_not():
    """Two repeats at 0.99 and 1.0: the t-interval reaches past 1 (t_{0.975,1} = 12.7); an
    accuracy's interval stops at 1, a difference's does not."""
    from xnorfault.statistics import ACCURACY_BOUNDS, half_width, summarise

    values = [0.99, 1.0]
    free = summarise(values)
    clipped = summarise(values, ACCURACY_BOUNDS)
    assert free["ci95"][1] > 1 and free["ci95"][0] < 0.99
    assert clipped["ci95"] == [free["ci95"][0], 1.0]
    assert free["ci95"][1] - free["accuracy_mean"] == pytest.approx(half_width(values))
    low = summarise([0.0, 0.02], ACCURACY_BOUNDS)["ci95"][0]
    assert low == 0.0
