"""The Fokker–Planck solver: construction, convergence, physics and the closed form."""

import math

import numpy as np
import pytest
from numpy.polynomial.legendre import leggauss, legvander

from xnorfault.mram import switching


def galerkin_by_quadrature(v, delta, n_terms):
    """Independent construction of M: M_mn = -(2m+1)/2 ∫ P_m' (1-μ²)[(v-μ)P_n + P_n'/2Δ] dμ
    (the weak form after integrating by parts), evaluated by Gauss quadrature."""
    x, w = leggauss(n_terms + 8)
    basis = legvander(x, n_terms - 1).T
    derivative = np.zeros_like(basis)
    for n in range(1, n_terms):  # (1-μ²) P_n' = n (P_{n-1} - μ P_n)
        derivative[n] = n * (basis[n - 1] - x * basis[n]) / (1 - x**2)
    flux = (1 - x**2) * ((v - x) * basis + derivative / (2 * delta))
    return -((2 * np.arange(n_terms) + 1) / 2)[:, None] * ((derivative * w) @ flux.T)


@pytest.mark.parametrize("v, delta", [(0.5, 40.0), (2.78, 40.0), (4.0, 15.0)])
def test_generator_matches_quadrature_projection(v, delta):
    closed = switching.legendre_generator(v, delta, 40)
    reference = galerkin_by_quadrature(v, delta, 40)
    assert np.max(np.abs(closed - reference)) < 1e-9 * np.max(np.abs(reference))


def test_generator_conserves_probability_and_is_banded():
    generator = switching.legendre_generator(2.0, 40.0, 30)
    assert np.all(generator[0] == 0)
    rows, cols = np.nonzero(generator)
    assert np.max(np.abs(rows - cols)) == 2


CASES = [  # (Δ, v, t) spanning WER ≈ 0.9 down to 1e-20, thermal and precessional regimes
    (40.0, 2.7827, 5.0),
    (40.0, 1.46, 5.0),
    (40.0, 3.5, 10.0),
    (40.0, 1.5, 40.0),
    (40.0, 0.6, 2e4),
    (40.0, 2.0, 0.5),
    (20.0, 4.0, 2.0),
    (60.0, 2.0, 6.0),
]


@pytest.mark.parametrize("delta, v, t", CASES)
def test_wer_converged_in_legendre_terms(delta, v, t):
    terms = switching.default_terms(delta, v)
    coarse = float(switching.wer_exact(v, t, delta, n_terms=terms))
    fine = float(switching.wer_exact(v, t, delta, n_terms=int(1.5 * terms)))
    assert 0 < coarse <= 1
    assert coarse == pytest.approx(fine, rel=1e-6)


def test_wer_resolves_tiny_rates_relative_to_themselves():
    # A plain c·exp(Mt)a0 bottoms out at ~1e-13 of rounding noise; the stationary split keeps
    # the relative accuracy far below it, so WER keeps falling exponentially with the pulse.
    t = np.array([12.0, 14.0, 16.0, 18.0, 20.0])
    wer = switching.wer_exact(2.0, t, 40.0)
    assert 1e-17 < wer[-1] < 1e-16
    slopes = np.diff(np.log(wer)) / np.diff(t)
    # deep in the tail one mode is left, decaying at about 2(v-1), the escape rate from the
    # unstable point μ=1: the log-slope is constant to 1e-6 from WER 1e-9 down to 1e-16.
    assert np.all(np.abs(slopes + 2.0) < 0.1)
    assert np.ptp(slopes) < 1e-6


def test_wer_tends_to_one_for_vanishing_pulse():
    for v in (0.5, 2.0, 4.0):
        assert switching.wer_exact(v, 1e-6, 40.0) > 1 - 1e-4
    assert switching.wer_exact(2.0, 0.0, 40.0) == 1.0


def test_wer_falls_monotonically_with_voltage_and_pulse():
    voltages = np.linspace(0.8, 4.0, 25)
    by_voltage = switching.wer_exact(voltages, 5.0, 40.0)
    assert np.all(np.diff(by_voltage) < 0)
    pulses = np.geomspace(0.05, 30.0, 25)
    by_pulse = switching.wer_exact(2.0, pulses, 40.0)
    # at the shortest pulses the WER is 1 to within rounding: non-increasing there
    assert np.all(np.diff(by_pulse) <= 1e-12)
    switching_starts = by_pulse < 1 - 1e-9
    assert np.all(np.diff(by_pulse[switching_starts]) < 0)
    assert switching_starts.sum() > 10


def test_thermal_regime_below_critical_voltage_switches_slowly():
    # Below V_c0 switching is thermally activated: still likely to fail after 100 τ_D at v = 0.5
    assert switching.wer_exact(0.5, 100.0, 40.0) > 0.99
    assert switching.wer_exact(0.9, 100.0, 40.0) < switching.wer_exact(0.5, 100.0, 40.0)


def test_stationary_probability_matches_direct_integration():
    from scipy.integrate import quad

    v, delta = 0.05, 10.0
    density = lambda mu: math.exp(delta * mu**2 - 2 * delta * v * mu)  # noqa: E731
    expected = quad(density, 0, 1)[0] / quad(density, -1, 1)[0]
    assert switching.stationary_unswitched_probability(v, delta) == pytest.approx(
        expected, rel=1e-10
    )


@pytest.mark.parametrize("v", [2.0, 2.5, 3.0, 3.5, 4.0])
@pytest.mark.parametrize("wer", [1e-2, 1e-4, 1e-6])
def test_closed_form_within_20_percent_in_wer(v, wer):
    t = switching.pulse_for_wer_exact(wer, v, 40.0, t_max=1e9)
    assert float(switching.wer_closed_form(v, t, 40.0)) == pytest.approx(wer, rel=0.2)


@pytest.mark.parametrize("v", [2.5, 3.0, 4.0])
def test_closed_form_within_20_percent_down_to_1e_12_at_higher_voltage(v):
    t = switching.pulse_for_wer_exact(1e-12, v, 40.0, t_max=1e9)
    assert float(switching.wer_closed_form(v, t, 40.0)) == pytest.approx(1e-12, rel=0.2)


def test_closed_form_is_undefined_below_critical_voltage():
    assert math.isnan(float(switching.wer_closed_form(0.9, 5.0, 40.0)))


def test_closed_form_inverses_are_consistent():
    t = float(switching.pulse_for_wer_closed_form(1e-6, 2.5, 40.0))
    assert float(switching.wer_closed_form(2.5, t, 40.0)) == pytest.approx(1e-6, rel=1e-9)
    v = switching.voltage_for_wer_closed_form(1e-6, 5.0, 40.0)
    assert float(switching.wer_closed_form(v, 5.0, 40.0)) == pytest.approx(1e-6, rel=1e-8)


@pytest.mark.parametrize("wer", [0.3, 1e-2, 1e-6, 1e-12])
def test_inverse_solves_round_trip(wer):
    v = switching.voltage_for_wer_exact(wer, 5.0, 40.0, v_max=10.0)
    assert float(switching.wer_exact(v, 5.0, 40.0)) == pytest.approx(wer, rel=1e-5)
    t = switching.pulse_for_wer_exact(wer, 2.2, 40.0, t_max=1e9)
    assert float(switching.wer_exact(2.2, t, 40.0)) == pytest.approx(wer, rel=1e-5)


def test_unreachable_targets_raise():
    with pytest.raises(switching.UnreachableWER):
        switching.voltage_for_wer_exact(1e-9, 0.5, 40.0, v_max=4.0)
    with pytest.raises(switching.UnreachableWER):
        switching.pulse_for_wer_exact(1e-6, 0.2, 40.0, t_max=1e3)
