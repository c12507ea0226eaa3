"""One path from fault options to fault points (xnorfault.cli._options, xnorfault.faults)."""

import pytest

from xnorfault.errors import XnorfaultError
from xnorfault.evaluation.request import sweep_points
from xnorfault.fault_options import fault_source
from xnorfault.faults import FaultSource, FlipRates, fault_points, mram_figures
from xnorfault.mram import load_device


def test_each_source_gives_its_points():
    bers = fault_points(fault_source(ber="0,0.02"))
    assert [(p.label, p.ber, p.rates) for p in bers] == [
        ("ber=0", 0.0, FlipRates()),
        ("ber=0.02", 0.02, FlipRates.symmetric(0.02)),
    ]
    (rates,) = fault_points(fault_source(p_flip_pos="0.03"))
    assert rates.label == "p+-=0.03,p-+=0" and rates.rates == FlipRates(0.03, 0.0)
    device = load_device("paper")
    voltages = fault_points(fault_source(voltage="0.5,0.6", pulse="10ns"))
    assert [p.label for p in voltages] == ["V=0.5", "V=0.6"]
    for point in voltages:
        assert point.pulse == 10e-9
        assert point.rates == FlipRates(*device.flip_rates(point.voltage, 10e-9))
        assert point.extra == mram_figures(device, point.voltage, 10e-9)
        assert point.spec.source["kind"] == "mram"


def test_training_extras_reach_every_point():
    layers, weights = {"act1": FlipRates.symmetric(0.0)}, FlipRates.symmetric(0.01)
    (ramp,) = fault_points(
        fault_source(ber="0.04", ramp=True), epochs=5, layers=layers, weights=weights
    )
    assert ramp.label == "ber-ramp=0.04" and len(ramp.spec.epochs) == 5
    assert ramp.spec.layers == layers and ramp.spec.weights == weights
    (schedule,) = fault_points(fault_source(voltage_schedule="0.8,0.6", pulse="10ns"), epochs=3)
    assert schedule.label == "voltage-schedule" and len(schedule.spec.epochs) == 2
    with pytest.raises(XnorfaultError, match="gives 2 voltages for 1 epoch"):
        fault_points(fault_source(voltage_schedule="0.8,0.6", pulse="10ns"), epochs=1)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"ber": "0.1", "voltage": "0.5", "pulse": "10ns"}, "not --ber and --voltage"),
        ({"p_flip_neg": "0.1", "ber": "0.1"}, "not --ber and --p-flip-pos/--p-flip-neg"),
        ({"voltage": "0.5"}, "--voltage needs --pulse"),
        ({"voltage_schedule": "0.5"}, "--voltage-schedule needs --pulse"),
        ({"ber": "0.1,0.2", "single": True}, "--ber takes one value here, not 2"),
        ({"voltage": "0.4:0.6:0.1", "pulse": "10ns", "single": True}, "--voltage takes one"),
        ({"ber": "2"}, "between 0 and 1"),
        ({"p_flip_pos": "-0.1"}, "between 0 and 1"),
    ],
)
def test_bad_fault_options_are_one_clear_error(options, message):
    with pytest.raises(XnorfaultError, match=message):
        fault_source(**options)


def test_no_options_give_no_source_or_the_default():
    assert fault_source() is None
    assert fault_source(default_ber="0") == FaultSource(bers=(0.0,))


def test_evaluation_sweeps_voltages_from_the_safest():
    source = fault_source(voltage="0.4:0.6:0.1", pulse="10ns")
    assert [p.voltage for p in sweep_points(source, None)] == pytest.approx([0.6, 0.5, 0.4])
    assert [p.voltage for p in fault_points(source)] == pytest.approx([0.4, 0.5, 0.6])


def test_every_command_declares_the_fault_options_alike():
    import typer

    from xnorfault.cli import app

    commands = typer.main.get_command(app).commands
    shared = ["--ber", "--p-flip-pos", "--p-flip-neg", "--voltage", "--pulse", "--mram-device"]
    declared = {}
    for name in ("train", "inject", "evaluate"):
        options = {o: p for p in commands[name].params for o in p.opts}
        declared[name] = [(o, options[o].help) for o in shared]
        assert set(options["--mram-device"].opts) == {"--mram-device"}
    assert declared["train"] == declared["inject"] == declared["evaluate"]
