"""Devices described by measured WER tables: interpolation that reproduces its own points and
refuses to extrapolate, device files that name a table, and `mram fit` recovering the model's
parameters from a table the model generated."""

import json

import numpy as np
import pytest
from helpers import TRUTH, model_table, write_csv

from xnorfault.errors import XnorfaultError
from xnorfault.mram import load_device
from xnorfault.mram.fit import fit_device
from xnorfault.mram.measured import MeasuredWER


def test_a_table_reproduces_its_own_points_and_refuses_to_extrapolate():
    table = model_table()
    for direction, column in (("p_to_ap", table.wer_p_to_ap), ("ap_to_p", table.wer_ap_to_p)):
        np.testing.assert_allclose(
            table.wer(np.array(table.voltages), np.array(table.pulses), direction),
            column,
            rtol=1e-9,
        )
    between = table.wer(0.6, 7e-9)  # inside: a convex combination of its neighbours (log WER)
    corners = [TRUTH.wer(v, t) for v in (0.57, 0.64) for t in (5e-9, 10e-9)]
    assert min(corners) <= between <= max(corners)
    for volts, seconds in ((0.3, 10e-9), (0.6, 50e-9), (0.9, 5e-9)):
        with pytest.raises(XnorfaultError, match="outside the measured WER table"):
            table.wer(volts, seconds)
    solved = table.voltage_for_wer(1e-3, 10e-9)
    assert table.wer(solved, 10e-9) == pytest.approx(1e-3, rel=1e-6)
    with pytest.raises(XnorfaultError, match="not reached within the measured voltages"):
        table.voltage_for_wer(1e-12, 10e-9)


def test_a_single_pulse_table_interpolates_along_voltage(tmp_path):
    table = model_table(pulses=(10e-9,))
    assert table.wer(0.6, 10e-9) > table.wer(0.7, 10e-9)
    with pytest.raises(XnorfaultError, match="outside"):
        table.wer(0.6, 12e-9)


def test_a_device_file_names_its_table_and_every_command_uses_it(tmp_path, run_cli):
    write_csv(tmp_path / "wer.csv", model_table())
    (tmp_path / "chip.toml").write_text(
        'name = "chip"\n[switching]\ndelta = 45\ntau_d = "3ns"\nvc0_p_to_ap = "0.32V"\n'
        '[measured]\ntable = "wer.csv"\n'
    )
    device = load_device(str(tmp_path / "chip.toml"))
    assert device.measured is not None
    assert device.wer(0.57, 10e-9) == pytest.approx(TRUTH.wer(0.57, 10e-9), rel=1e-9)
    code, out, err = run_cli(
        "mram", "wer", "--voltage", "0.57", "--pulse", "10ns",
        "--mram-device", str(tmp_path / "chip.toml"), "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["points"][0]["wer_p_to_ap"] == pytest.approx(TRUTH.wer(0.57, 10e-9))
    code, _, err = run_cli(
        "mram", "wer", "--voltage", "0.3", "--pulse", "10ns",
        "--mram-device", str(tmp_path / "chip.toml"),
    )  # fmt: skip
    # one line of error; beside it, as in every command of this file, the warning that the
    # device file leaves breakdown, resistance and retention to the paper's values
    errors = [line for line in err.splitlines() if not line.startswith("warning: device file")]
    assert code == 2 and len(errors) == 1 and "outside the measured WER table" in errors[0], err
    (tmp_path / "escape.toml").write_text(
        'name = "x"\n[switching]\ndelta = 45\ntau_d = "3ns"\nvc0_p_to_ap = "0.32V"\n'
        '[measured]\ntable = "../wer.csv"\n'
    )
    with pytest.raises(XnorfaultError, match="outside the device file's folder"):
        load_device(str(tmp_path / "escape.toml"))


def test_bad_tables_are_one_line_errors(tmp_path):
    (tmp_path / "columns.csv").write_text("volts,pulse\n0.5,10ns\n")
    (tmp_path / "wer.csv").write_text(
        "voltage,pulse,wer_p_to_ap,wer_ap_to_p\n0.5,10ns,1.5,0.1\n0.6,10ns,0.1,0.1\n"
    )
    (tmp_path / "twice.csv").write_text(
        "voltage,pulse,wer_p_to_ap,wer_ap_to_p\n0.5,10ns,0.1,0.1\n0.5,10ns,0.2,0.2\n"
    )
    for name, message in (
        ("columns.csv", "expected the columns"),
        ("wer.csv", "strictly between 0 and 1"),
        ("twice.csv", "appears twice"),
        ("absent.csv", "not found"),
    ):
        with pytest.raises(XnorfaultError, match=message):
            MeasuredWER.from_csv(tmp_path / name)


def test_fit_recovers_the_parameters_of_a_model_table(tmp_path, run_cli):
    fit = fit_device(model_table())
    assert fit.delta == pytest.approx(TRUTH.delta, rel=0.02)
    assert fit.tau_d == pytest.approx(TRUTH.tau_d, rel=0.02)
    assert fit.vc0 == pytest.approx(TRUTH.vc0, rel=0.02)
    assert fit.vc0_ap_to_p == pytest.approx(TRUTH.vc0_ap_to_p, rel=0.02)
    assert fit.rms_log10 < 1e-3
    write_csv(tmp_path / "wer.csv", model_table())
    code, out, err = run_cli(
        "mram", "fit", str(tmp_path / "wer.csv"), "-o", str(tmp_path / "fitted.toml"), "--json"
    )
    assert code == 0, err
    assert json.loads(out)["delta"] == pytest.approx(45, rel=0.02)
    refitted = load_device(str(tmp_path / "fitted.toml"))
    assert refitted.vc0 == pytest.approx(0.32, rel=0.02)
