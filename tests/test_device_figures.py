"""Device figures a physicist would sign: the conventional point in both write directions,
endurance as a ratio capped at a service life, and the retention formula's own number."""

import numpy as np
import pytest

from xnorfault.mram import MTJ
from xnorfault.mram.device import SERVICE_LIFE


def test_the_conventional_point_reaches_1e6_in_both_directions():
    device = MTJ(delta=40, vc0=0.33, vc0_ap_to_p=0.27)  # AP→P switches more easily
    pulse = 10e-9
    voltage = device.conventional_voltage(pulse)
    assert voltage == pytest.approx(device.voltage_for_wer(1e-6, pulse, "p_to_ap"))
    assert voltage > device.voltage_for_wer(1e-6, pulse, "ap_to_p")
    assert device.wer(voltage, pulse, "p_to_ap") == pytest.approx(1e-6, rel=1e-3)
    assert device.wer(voltage, pulse, "ap_to_p") < 1e-6
    mirrored = MTJ(delta=40, vc0=0.27, vc0_ap_to_p=0.33)  # now AP→P decides
    assert mirrored.conventional_voltage(pulse) == pytest.approx(
        mirrored.voltage_for_wer(1e-6, pulse, "ap_to_p")
    )


def test_endurance_is_a_ratio_to_that_point_and_capped_at_a_service_life():
    device = MTJ(name="paper")
    pulse = 10e-9
    reference = device.conventional_voltage(pulse)
    assert device.endurance_gain(reference, pulse) == pytest.approx(1.0)
    gain = device.endurance_gain(0.7, pulse)
    assert gain == pytest.approx(np.exp(device.breakdown_gamma * (reference - 0.7)))
    cycles = np.asarray(device.endurance([0.8, 0.5], pulse))
    assert list(device.outlasts_service_life([0.8, 0.5], pulse)) == list(
        cycles * pulse > SERVICE_LIFE
    )
    assert list(device.outlasts_service_life([0.8, 0.5], pulse)) == [False, True]


def test_retention_follows_its_own_formula():
    """Δ = 40, τ₀ = 1 ns: 1 − exp(−(1 y/τ₀) e^{−40}) = 0.125 per year, not the paper's 6e-6."""
    device = MTJ(name="paper")
    year = 365.25 * 86400
    expected = -np.expm1(-(year / device.attempt_time) * np.exp(-device.delta))
    assert device.retention_error(year) == pytest.approx(expected)
    assert device.retention_error(year) == pytest.approx(0.125, abs=0.001)
