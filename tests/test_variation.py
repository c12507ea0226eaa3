"""Cell-to-cell variation of a device: the draws, the exact population mean by quadrature
against a Monte Carlo population (a 4-standard-error bound, fixed seed), the device file."""

import math

import numpy as np
import pytest

from xnorfault.errors import XnorfaultError
from xnorfault.mram import MTJ, load_device

VARIED = MTJ(sigma_delta=0.1, sigma_vc0=0.05, variation="lognormal", variation_correlation=0.4)


def test_without_variation_the_population_is_the_nominal_device():
    device = MTJ(name="paper")
    assert not device.varies
    assert device.population_wer(0.55, 10e-9) == device.wer(0.55, 10e-9)


def test_draws_have_the_stated_spread_and_correlation():
    delta, vc0 = VARIED.sample_cells(200_000, np.random.default_rng(1))
    assert np.mean(delta) == pytest.approx(1.0, abs=2e-3)  # lognormal with mean 1
    assert np.std(np.log(delta)) == pytest.approx(0.1, rel=0.01)
    assert np.std(np.log(vc0)) == pytest.approx(0.05, rel=0.01)
    assert np.corrcoef(np.log(delta), np.log(vc0))[0, 1] == pytest.approx(0.4, abs=0.01)
    normal = MTJ(sigma_delta=0.1, sigma_vc0=0.05)
    delta, vc0 = normal.sample_cells(200_000, np.random.default_rng(2))
    assert np.std(delta) == pytest.approx(0.1, rel=0.01) and np.mean(vc0) == pytest.approx(
        1, abs=1e-3
    )


def test_population_mean_by_quadrature_matches_a_sampled_population():
    """The mean WER of 300 drawn cells (each exact) lies within 4 standard errors of the
    quadrature; the quadrature has converged (8 and 12 nodes agree to 1e-9); weak cells make
    the mean exceed the nominal WER."""
    voltage, pulse = 0.55, 10e-9
    exact = VARIED.population_wer(voltage, pulse)
    assert VARIED.population_wer(voltage, pulse, nodes=8) == pytest.approx(exact, rel=1e-9)
    delta, vc0 = VARIED.sample_cells(300, np.random.default_rng(3))
    cells = VARIED.cell_wer(voltage, pulse, delta, vc0)
    error = cells.std(ddof=1) / math.sqrt(cells.size)
    assert abs(cells.mean() - exact) < 4 * error
    assert exact > VARIED.wer(voltage, pulse)


def test_variation_in_a_device_file(tmp_path):
    base = 'name = "v"\n[switching]\ndelta = 40\ntau_d = "2ns"\nvc0_p_to_ap = "0.3V"\n'
    (tmp_path / "ok.toml").write_text(
        base + '[variation]\nsigma_delta = 0.08\nsigma_vc0 = 0.04\ndistribution = "lognormal"\n'
    )
    device = load_device(str(tmp_path / "ok.toml"))
    assert (device.sigma_delta, device.sigma_vc0, device.variation) == (0.08, 0.04, "lognormal")
    assert device.to_dict()["sigma_delta"] == 0.08
    for section, message in (
        ("sigma_delta = 0.3\n", "use distribution"),
        ('sigma_delta = 0.1\ndistribution = "uniform"\n', "use one of normal, lognormal"),
        ("correlation = 1.0\n", "strictly between -1 and 1"),
        ("sigma_vc0 = -0.1\n", "non-negative"),
    ):
        (tmp_path / "bad.toml").write_text(base + "[variation]\n" + section)
        with pytest.raises(XnorfaultError, match=message):
            load_device(str(tmp_path / "bad.toml"))
