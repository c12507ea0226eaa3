"""The Python API (``xnorfault.train``, ``export_onnx``, ``inject``, ``evaluate``, …): the same
results as the command line, the same defaults, docstring examples that run, clear errors."""

import csv
import doctest
import inspect as pyinspect
import io
import json

import numpy as np
import pytest
import typer

import xnorfault
from xnorfault.errors import XnorfaultError


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("api")
    record = xnorfault.train(
        folder / "run",
        data="digits",
        ber=[0, 0.05],
        epochs=1,
        limit_train=256,
        limit_test=150,
        batch_size=64,
    )
    summary = xnorfault.export_onnx(
        folder / "run", folder / "model.onnx", point="ber=0.05", testset=folder / "test.npz"
    )
    return folder, record, summary


def test_train_and_export_return_the_record_and_the_parity(trained):
    folder, record, summary = trained
    on_disk = json.loads((folder / "run" / "record.json").read_text())
    assert [p["point"] for p in record["points"]] == ["ber=0", "ber=0.05"]
    assert record["points"] == on_disk["points"]
    assert summary["binary_sites"] and summary["argmax_agreement"] == pytest.approx(1.0)
    assert (folder / "test.npz").exists()


def test_api_evaluate_equals_the_command_line(run_cli, trained, tmp_path):
    folder, _, _ = trained
    arguments = dict(voltage="0.45:0.55:0.05", pulse="10ns", repeats=3, seed=7, max_drop=0.02)
    evaluation = xnorfault.evaluate(folder / "model.onnx", folder / "test.npz", **arguments)
    code, out, err = run_cli(
        "evaluate",
        str(folder / "model.onnx"),
        "--data",
        str(folder / "test.npz"),
        "--voltage",
        "0.45:0.55:0.05",
        "--pulse",
        "10ns",
        "--repeats",
        "3",
        "--seed",
        "7",
        "--max-drop",
        "0.02",
        "--json",
        "--csv",
        str(tmp_path / "points.csv"),
    )
    assert code == 0, err
    cli = json.loads(out)
    assert [p["accuracy_mean"] for p in evaluation.points] == [
        p["accuracy_mean"] for p in cli["points"]
    ]
    assert evaluation.baseline_accuracy == cli["baseline_accuracy"]
    assert evaluation["max_drop"]["voltage"] == cli["max_drop"]["voltage"]
    # numbers in SI units (here a numpy array) give the same sweep as the command line's text
    again = xnorfault.evaluate(
        folder / "model.onnx",
        folder / "test.npz",
        voltage=np.linspace(0.45, 0.55, 3),
        pulse=10e-9,
        repeats=3,
        seed=7,
    )
    assert [p["accuracy_mean"] for p in again.points] == [p["accuracy_mean"] for p in cli["points"]]
    # the DataFrame holds what the CSV file holds
    frame = evaluation.to_dataframe()
    rows = list(csv.DictReader(io.StringIO((tmp_path / "points.csv").read_text())))
    assert list(frame.columns) == list(rows[0])
    assert np.allclose(frame["accuracy_mean"], [float(r["accuracy_mean"]) for r in rows])
    assert np.allclose(frame["ci95_low"], [float(r["ci95_low"]) for r in rows])
    figure = evaluation.plot(tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    # the figure itself, for a notebook to show: accuracy over WER and energy
    assert [axes.get_ylabel() for axes in figure.axes][:2] == [
        "test accuracy (%)",
        "write error rate",
    ]
    assert "3 points" in repr(evaluation) and dict(evaluation)["points"] == evaluation.points


def test_api_inject_writes_what_the_command_line_writes(run_cli, trained, tmp_path):
    folder, _, _ = trained
    injection = xnorfault.inject(folder / "model.onnx", tmp_path / "api.onnx", ber=0.03)
    code, out, err = run_cli(
        "inject",
        str(folder / "model.onnx"),
        "-o",
        str(tmp_path / "cli.onnx"),
        "--ber",
        "0.03",
        "--json",
    )
    assert code == 0, err
    cli = json.loads(out)
    ours = injection.to_dict()
    assert ours["site_names"] == cli["site_names"] and ours["rates"] == cli["rates"]
    assert ours["seed_input"] == cli["seed_input"] and ours["model"] == {
        **cli["model"],
        "model": ours["model"]["model"],
    }
    assert (tmp_path / "api.onnx").read_bytes() == (tmp_path / "cli.onnx").read_bytes()
    report = xnorfault.inspect(folder / "model.onnx")
    assert [s.name for s in report.sites] == injection.sites


def test_api_errors_are_one_line_xnorfault_errors(trained, tmp_path):
    folder, _, _ = trained
    with pytest.raises(XnorfaultError, match="give one source of fault rates"):
        xnorfault.fault_source(ber=0.01, voltage=0.5, pulse="10ns")
    # the API's errors name its parameters, the command line's its flags
    with pytest.raises(XnorfaultError, match="^voltage needs pulse") as raised:
        xnorfault.fault_source(voltage=0.5)
    assert "--" not in str(raised.value)
    with pytest.raises(XnorfaultError, match="takes a number, a list of numbers"):
        xnorfault.fault_source(ber={"a": 1})
    source = xnorfault.fault_source(ber=0.01)
    with pytest.raises(XnorfaultError, match="either as fault= or as keywords"):
        xnorfault.evaluate(folder / "model.onnx", folder / "test.npz", fault=source, ber=0.02)
    with pytest.raises(XnorfaultError, match="give one of ber"):
        xnorfault.inject(folder / "model.onnx", tmp_path / "x.onnx")
    with pytest.raises(XnorfaultError, match="takes one value here"):
        xnorfault.inject(folder / "model.onnx", tmp_path / "x.onnx", ber=[0.01, 0.02])
    with pytest.raises(XnorfaultError, match="unknown gradient"):
        xnorfault.train(tmp_path / "r", gradient="sideways")
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "r").exists()


def test_the_command_line_keeps_its_flags_in_the_same_errors(run_cli, trained):
    folder, _, _ = trained
    code, _, err = run_cli(
        "evaluate",
        str(folder / "model.onnx"),
        "--data",
        str(folder / "test.npz"),
        "--voltage",
        "0.5",
    )
    assert code == 2 and "--voltage needs --pulse" in err


def test_models_and_test_sets_in_memory_evaluate_as_their_files(trained):
    import onnx

    folder, _, _ = trained
    arrays = np.load(folder / "test.npz")
    from_files = xnorfault.evaluate(folder / "model.onnx", folder / "test.npz", ber=0.1, repeats=2)
    in_memory = xnorfault.evaluate(
        onnx.load(folder / "model.onnx"), (arrays["x"], arrays["y"]), ber=0.1, repeats=2
    )
    assert in_memory.points[0]["accuracy_mean"] == from_files.points[0]["accuracy_mean"]
    assert in_memory["backend"]["model"] == "(in memory)" and in_memory["data"] == "(arrays)"
    assert xnorfault.inspect(onnx.load(folder / "model.onnx")).model == "(in memory)"
    with pytest.raises(XnorfaultError, match="records its model and test set by path"):
        xnorfault.evaluate(onnx.load(folder / "model.onnx"), folder / "test.npz", ber=0.1, out="c")
    with pytest.raises(XnorfaultError, match="a pair"):
        xnorfault.evaluate(folder / "model.onnx", (arrays["x"],), ber=0.1)


def test_a_voltage_sweep_carries_its_energy_per_inference_in_joules(trained):
    folder, _, _ = trained
    sweep = xnorfault.evaluate(
        folder / "model.onnx", folder / "test.npz", voltage=[0.5, 0.6], pulse="10ns", repeats=1
    )
    bits = sweep["model"]["activation_bits_per_image"]
    for point in sweep.points:
        assert point["energy_per_inference"] == pytest.approx(point["write_energy"] * bits)
    low, high = sorted(sweep.points, key=lambda point: point["voltage"])
    assert low["energy_per_inference"] < high["energy_per_inference"]  # E = V²τ/R per bit


def test_a_device_object_and_a_write_model_reach_the_source():
    device = xnorfault.load_device("asymmetric")
    source = xnorfault.fault_source(
        voltage=0.5, pulse="10ns", mram_device=device, write_model="previous", initial_state="pos"
    )
    assert source.device is device
    assert (source.write.model, source.write.initial_state) == ("previous", "pos")


def _cli_defaults(command: str) -> dict:
    from xnorfault.cli import app

    click_command = typer.main.get_command(app).commands[command]
    return {
        param.name: getattr(param.default, "value", param.default)
        for param in click_command.params
        if not param.required
    }


@pytest.mark.parametrize(
    ("command", "function"),
    [
        ("evaluate", "evaluate"),
        ("inject", "inject"),
        ("train", "train"),
        ("optimize", "optimize"),
    ],
)
def test_api_and_command_line_agree_on_defaults(command, function):
    cli = _cli_defaults(command)
    cli.pop("layer_ber", None)  # repeated SITE=RATE options there, a mapping here
    cli.pop("log", None)  # a repeated option there, a sequence (default None) here
    api = {
        name: param.default
        for name, param in pyinspect.signature(getattr(xnorfault, function)).parameters.items()
        if param.default is not pyinspect.Parameter.empty
    }
    shared = sorted(set(cli) & set(api))
    assert len(shared) >= (3 if command == "inject" else 10), shared
    for name in shared:
        assert api[name] == cli[name], (command, name, api[name], cli[name])


def test_every_public_name_resolves():
    for name in xnorfault.__all__:
        assert getattr(xnorfault, name) is not None, name
    with pytest.raises(AttributeError):
        xnorfault.not_a_name  # noqa: B018


@pytest.mark.parametrize(
    "module",
    [
        "xnorfault.api",
        "xnorfault.faults",
        "xnorfault.mram.device",
        "xnorfault.mram.device_file",
        "xnorfault.mram.weights",
        "xnorfault.optimization.run",
    ],
)
def test_the_docstring_examples_run(module, trained, tmp_path):
    """Every public function's example runs as written, on a tiny run of the embedded digits."""
    import importlib

    folder, _, _ = trained
    names = {
        "workdir": tmp_path,
        "run": folder / "run",
        "model": folder / "model.onnx",
        "testset": folder / "test.npz",
    }
    results = doctest.testmod(importlib.import_module(module), extraglobs=names, verbose=False)
    assert results.attempted >= 3 and results.failed == 0
