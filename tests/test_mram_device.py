"""MTJ device model in SI units, device descriptions, and Table I of the paper."""

import math

import numpy as np
import pytest

from xnorfault.errors import XnorfaultError
from xnorfault.mram import MTJ, available_devices, load_device, switching, table_one


@pytest.fixture(scope="module")
def paper():
    return load_device("paper")


@pytest.fixture(scope="module")
def table(paper):
    return table_one(paper)


def test_paper_preset_has_table_one_parameters(paper):
    assert (paper.delta, paper.tau_d, paper.vc0, paper.vbd) == (40.0, 2e-9, 0.3, 1.2)
    assert paper.critical_voltage("ap_to_p") == paper.critical_voltage("p_to_ap")
    assert {"paper", "asymmetric"} <= set(available_devices())


def test_table_one_reference_voltage(table):
    assert table[0].v_over_vc0 == pytest.approx(2.78, abs=0.03)
    assert table[0].pulse_over_tau_d == pytest.approx(5.0)


def test_table_one_voltage_reductions_at_same_pulse(table):
    assert table[1].voltage_change * 100 == pytest.approx(-36, abs=2)
    assert table[2].voltage_change * 100 == pytest.approx(-46, abs=2.5)
    assert table[1].pulse_change == table[2].pulse_change == 0


def test_table_one_pulse_reductions_at_80_percent_voltage(table):
    assert table[3].voltage_change == pytest.approx(-0.2) and table[
        4
    ].voltage_change == pytest.approx(-0.2)
    assert table[3].pulse_change * 100 == pytest.approx(-32, abs=2)
    assert table[4].pulse_change * 100 == pytest.approx(-50, abs=2.5)


def test_table_one_energy_and_endurance(table):
    # fixed pulse: energy ∝ V² (paper: ≈0.40× at WER 0.01, ≈0.28× at 0.1)
    assert table[1].energy_ratio == pytest.approx((1 + table[1].voltage_change) ** 2)
    assert table[1].energy_ratio == pytest.approx(0.40, abs=0.01)
    assert table[2].energy_ratio == pytest.approx(0.28, abs=0.01)
    # 20 % less voltage: up to six orders of magnitude more cycles (paper, §III.A(b))
    assert 1e6 <= table[3].endurance_gain < 1e7
    assert table[1].endurance_gain > 1e10


def test_wer_matches_reduced_units_solver(paper):
    volts, seconds = 0.6, 7e-9
    expected = switching.wer_exact(volts / paper.vc0, seconds / paper.tau_d, paper.delta)
    assert paper.wer(volts, seconds) == pytest.approx(float(expected), rel=1e-12)
    assert isinstance(paper.wer(volts, seconds), float)
    assert np.shape(paper.wer(np.array([0.5, 0.6]), seconds)) == (2,)


def test_inverse_solves_in_si_units(paper):
    voltage = paper.voltage_for_wer(1e-3, 10e-9)
    assert paper.wer(voltage, 10e-9) == pytest.approx(1e-3, rel=1e-5)
    pulse = paper.pulse_for_wer(1e-3, 0.7)
    assert paper.wer(0.7, pulse) == pytest.approx(1e-3, rel=1e-5)
    voltages = paper.voltage_for_wer(np.array([0.1, 0.01]), 10e-9)
    assert voltages[0] < voltages[1]


def test_asymmetric_device_gives_distinct_flip_rates():
    device = load_device("asymmetric")
    pos_to_neg, neg_to_pos = device.flip_rates(0.6, 10e-9)
    # +1 -> -1 is a failed AP->P write, which has the lower critical voltage: fewer failures
    assert pos_to_neg == pytest.approx(device.wer(0.6, 10e-9, "ap_to_p"))
    assert neg_to_pos == pytest.approx(device.wer(0.6, 10e-9, "p_to_ap"))
    assert pos_to_neg < neg_to_pos / 10


def test_symmetric_device_gives_equal_flip_rates(paper):
    pos_to_neg, neg_to_pos = paper.flip_rates(0.55, 10e-9)
    assert pos_to_neg == neg_to_pos


def test_endurance_e_model(paper):
    n1 = paper.endurance(0.8, 10e-9)
    n2 = paper.endurance(0.8 * 0.8, 10e-9)
    assert n2 / n1 == pytest.approx(math.exp(paper.breakdown_gamma * 0.16))
    assert paper.endurance(0.8, 5e-9) == pytest.approx(2 * n1)
    assert paper.time_to_breakdown(paper.vbd) == pytest.approx(paper.breakdown_time_at_vbd)


def test_write_energy(paper):
    assert paper.write_energy(0.5, 10e-9, "p_to_ap") == pytest.approx(0.25 * 10e-9 / paper.r_p)
    assert paper.write_energy(0.5, 10e-9, "ap_to_p") == pytest.approx(0.25 * 10e-9 / paper.r_ap)
    mean = 0.5 * (
        paper.write_energy(0.5, 10e-9, "p_to_ap") + paper.write_energy(0.5, 10e-9, "ap_to_p")
    )
    assert paper.write_energy(0.5, 10e-9) == pytest.approx(mean)


def test_retention_error_neel_brown(paper):
    year = 365.25 * 86400
    assert paper.retention_error(year) == pytest.approx(-math.expm1(-(year / 1e-9) * math.exp(-40)))
    assert paper.retention_error(0.0) == 0.0
    stable = MTJ(delta=50.0)
    assert stable.retention_error(year) == pytest.approx(6e-6, rel=0.05)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda d: d.wer(0.0, 1e-8), "voltage must be positive"),
        (lambda d: d.wer(-0.5, 1e-8), "voltage must be positive"),
        (lambda d: d.wer(0.5, 0.0), "pulse must be positive"),
        (lambda d: d.wer(0.5, float("nan")), "pulse must be positive"),
        (lambda d: d.voltage_for_wer(0.0, 1e-8), "strictly between 0 and 1"),
        (lambda d: d.voltage_for_wer(1.0, 1e-8), "strictly between 0 and 1"),
        (lambda d: d.pulse_for_wer(1.5, 0.5), "strictly between 0 and 1"),
        (lambda d: d.voltage_for_wer(1e-9, 1e-9), "breakdown voltage"),
        (lambda d: d.pulse_for_wer(1e-6, 0.03), "raise the voltage"),
        (lambda d: d.wer(0.5, 1e-8, "sideways"), "unknown write direction"),
    ],
)
def test_bad_input_gives_clear_errors(paper, call, message):
    with pytest.raises(XnorfaultError, match=message):
        call(paper)


def test_device_toml_round_trip_and_units(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(
        'name = "mine"\n[switching]\ndelta = 45\ntau_d = "1.5ns"\nvc0_p_to_ap = "320mV"\n'
        "vc0_ap_to_p = 0.28\n[breakdown]\nvbd = 1.3\n[resistance]\nr_p = 2500\n"
    )
    with pytest.warns(UserWarning, match="does not give breakdown.gamma, .*retention"):
        device = load_device(path)
    assert device.defaulted == (
        "breakdown.gamma",
        "breakdown.time_at_vbd",
        "resistance.r_ap",
        "retention.attempt_time",
    )
    assert (
        device.to_dict()["defaulted"] == list(device.defaulted)
        or device.to_dict()["defaulted"] == device.defaulted
    )
    assert device.name == "mine"
    assert (device.delta, device.tau_d, device.vc0, device.vc0_ap_to_p) == pytest.approx(
        (45.0, 1.5e-9, 0.32, 0.28), rel=1e-12
    )
    assert device.vbd == 1.3 and device.r_p == 2500.0
    assert device.r_ap == MTJ().r_ap  # unspecified keys keep the paper's values


@pytest.mark.parametrize(
    "text, message",
    [
        ("[switching]\ndelta = -3\n", "delta must be a positive number"),
        ("[switching]\ndeltaa = 40\n", "unknown key switching.deltaa"),
        ("[switchin]\ndelta = 40\n", "unknown section"),
        ('[switching]\ntau_d = "2 parsecs"\n', "unknown unit"),
        ("[switching\ndelta = 40\n", "not valid TOML"),
    ],
)
def test_malformed_device_files(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(XnorfaultError, match=message):
        load_device(path)


def test_missing_device_file_names_presets(tmp_path):
    with pytest.raises(XnorfaultError, match="not found.*paper"):
        load_device(tmp_path / "absent.toml")
