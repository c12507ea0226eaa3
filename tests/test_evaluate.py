"""Backends and ``xnorfault evaluate``: statistics, sweeps, errors, and a torch-free install."""

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import cli_ok, train_and_export

from xnorfault.errors import XnorfaultError

TINY = ["--data", "digits", "--limit-train", "300", "--limit-test", "200", "--batch-size", "64"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("evaluate")
    train_and_export(folder, *TINY, "--ber", "0.04", "--epochs", "2")
    cli_ok("inject", str(folder / "model.onnx"), "-o", str(folder / "faulty.onnx"), "--ber", "0.05")
    return folder


def evaluate_json(run_cli, *args):
    code, out, err = run_cli("evaluate", *args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_baseline_equals_the_training_record(run_cli, trained):
    result = evaluate_json(
        run_cli,
        str(trained / "faulty.onnx"),
        "--data",
        str(trained / "test.npz"),
        "--ber",
        "0",
        "--repeats",
        "2",
    )
    record = json.loads((trained / "run" / "record.json").read_text())
    recorded = record["points"][0]["repeats"][0]["epochs"][-1]["test_accuracy"]
    assert result["baseline_accuracy"] == pytest.approx(recorded, abs=1e-12)
    assert result["points"][0]["accuracy_mean"] == pytest.approx(recorded, abs=1e-12)
    assert result["points"][0]["accuracy_std"] == 0.0
    assert result["backend"]["backend"] == "onnxruntime" and result["backend"]["site_names"] == [
        "act1",
        "act2",
    ]


def test_every_point_names_each_sites_rates_whatever_their_values(run_cli, trained):
    """``per_site_rates`` is part of every point, whether the sites share one rate (a BER
    sweep, a model injected at one BER) or not: a field does not appear or vanish with the
    values."""
    for args in (["--ber", "0,0.1"], []):
        result = evaluate_json(
            run_cli, str(trained / "faulty.onnx"), "--data", str(trained / "test.npz"), *args
        )
        for point in result["points"]:
            assert set(point["per_site_rates"]) == set(result["site_names"]) == {"act1", "act2"}
            for rates in point["per_site_rates"].values():
                assert rates["pos_to_neg"] == point["p_flip_pos_to_neg"]
                assert rates["neg_to_pos"] == point["p_flip_neg_to_pos"]


def test_write_model_iid_is_accepted_and_an_initial_state_with_it_refused(run_cli, trained):
    """``--write-model iid`` alone runs (it was refused: the options' default state was passed
    on as if given); iid with an initial state is one line."""
    args = [str(trained / "model.onnx"), "--data", str(trained / "test.npz")]
    args += ["--voltage", "0.5", "--pulse", "10ns", "--repeats", "2"]
    result = evaluate_json(run_cli, *args, "--write-model", "iid")
    assert result["backend"]["write_model"]["model"] == "iid"
    code, _, err = run_cli("evaluate", *args, "--write-model", "iid", "--initial-state", "pos")
    assert code == 2 and "--initial-state goes with" in err and err.count("\n") == 1, err


def test_accuracy_falls_as_ber_grows(run_cli, trained):
    result = evaluate_json(
        run_cli,
        str(trained / "model.onnx"),
        "--data",
        str(trained / "test.npz"),
        "--ber",
        "0,0.2,0.5",
        "--repeats",
        "3",
    )
    means = [p["accuracy_mean"] for p in result["points"]]
    assert means[0] > means[1] > means[2]
    assert means[2] < 0.3  # random activations: near chance (10 classes)


def test_interval_narrows_with_more_repeats(run_cli, trained):
    widths = []
    for repeats in ("4", "16"):
        result = evaluate_json(
            run_cli,
            str(trained / "model.onnx"),
            "--data",
            str(trained / "test.npz"),
            "--ber",
            "0.15",
            "--repeats",
            repeats,
        )
        low, high = result["points"][0]["ci95"]
        assert low <= result["points"][0]["accuracy_mean"] <= high
        widths.append(high - low)
    assert widths[1] < widths[0]


def test_seed_makes_campaigns_reproducible(run_cli, trained):
    args = [
        str(trained / "model.onnx"),
        "--data",
        str(trained / "test.npz"),
        "--ber",
        "0.2",
        "--repeats",
        "3",
    ]
    first = evaluate_json(run_cli, *args, "--seed", "5")["points"][0]
    again = evaluate_json(run_cli, *args, "--seed", "5")["points"][0]
    other = evaluate_json(run_cli, *args, "--seed", "6")["points"][0]
    assert first["accuracy_mean"] == again["accuracy_mean"] and first["ci95"] == again["ci95"]
    assert first["ci95"] != other["ci95"]


def test_model_latency_is_taken_on_the_graph_without_flips(trained):
    """The latency evaluate reports is the deployed model's: a session of the graph stripped
    of every flip node and flip input, which computes the clean model's logits; the simulated
    runs are timed beside it and reported as the simulation's overhead."""
    from xnorfault.evaluation.runner import TestSetRunner
    from xnorfault.evaluation.testset import read_test_npz
    from xnorfault.graph.contract import BITFLIP_DOMAIN
    from xnorfault.runtimes.onnxruntime import OnnxRuntimeBackend

    images, labels = read_test_npz(trained / "test.npz")
    with OnnxRuntimeBackend(trained / "faulty.onnx", threads=1) as backend:
        stripped = backend.model_proto
        assert not any(node.domain == BITFLIP_DOMAIN for node in stripped.graph.node)
        assert not stripped.functions
        assert [value.name for value in stripped.graph.input] == [backend.input_name]
        import onnxruntime as ort

        session = ort.InferenceSession(
            stripped.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        (logits,) = session.run(None, {backend.input_name: images[:16]})
        assert np.array_equal(logits, backend.run(images[:16], {}, 0))
        timed_model, timed_simulation = [], []
        backend.run_model_timed = lambda batch: timed_model.append(len(batch)) or 0.002
        backend.run_timed = lambda batch, rates, seed: (
            timed_simulation.append(rates) or None,
            0.005,
        )
        test_runner = TestSetRunner(backend, images, labels, seed=0, batch_size=64)
        latency = test_runner.latency({"act1": backend.injected_rates["act1"]}, 8, 4, warmup=1)
    assert latency["p50_ms"] == pytest.approx(2.0) and latency["simulated_p50_ms"] == pytest.approx(
        5.0
    )
    assert latency["simulation_overhead"] == pytest.approx(2.5)
    assert latency["simulation_ms"] == pytest.approx(3.0)
    # one probe, then warm-up and timed rounds alternate model and simulation
    assert timed_model == [1] + [8] * 5 and len(timed_simulation) == 5


def test_voltage_sweep_with_latency_max_drop_csv_and_plot(run_cli, trained, tmp_path):
    from xnorfault.mram import load_device

    result = evaluate_json(
        run_cli,
        str(trained / "faulty.onnx"),
        "--data",
        str(trained / "test.npz"),
        "--voltage",
        "0.4:0.7:0.1",
        "--pulse",
        "10ns",
        "--repeats",
        "3",
        "--latency-batches",
        "1,32",
        "--latency-iterations",
        "3",
        "--max-drop",
        "0.02",
        "--csv",
        str(tmp_path / "points.csv"),
        "--plot",
        str(tmp_path / "acc.png"),
        "--threads",
        "1",
    )
    device = load_device("paper")
    points = result["points"]
    assert [p["voltage"] for p in points] == pytest.approx([0.7, 0.6, 0.5, 0.4])
    for p in points:
        assert p["wer_p_to_ap"] == pytest.approx(device.wer(p["voltage"], 1e-8), rel=1e-9)
        assert p["p_flip_pos_to_neg"] == pytest.approx(
            device.wer(p["voltage"], 1e-8, "ap_to_p"), rel=1e-6
        )
        assert set(p["latency"]) == {"1", "32"}
        assert 0 < p["latency"]["1"]["p50_ms"] <= p["latency"]["1"]["p99_ms"]
        assert p["latency"]["32"]["throughput_per_s"] > 0
        timed = p["latency"]["32"]
        assert timed["graph"] == "without flips"
        assert timed["simulation_overhead"] == pytest.approx(
            timed["simulated_p50_ms"] / timed["p50_ms"]
        )
    assert result["backend"]["threads"] == 1
    drop = result["max_drop"]
    assert drop["voltage"] in [p["voltage"] for p in points]
    assert all(
        p["accuracy_mean"] >= result["baseline_accuracy"] - 0.02
        for p in points
        if p["voltage"] >= drop["voltage"]
    )
    assert 0 < drop["energy_saving"] < 1 and drop["endurance_gain"] > 1
    assert drop["reference_voltage"] == pytest.approx(device.voltage_for_wer(1e-6, 1e-8), rel=1e-6)
    lines = (tmp_path / "points.csv").read_text().splitlines()
    assert (
        lines[0].startswith("label,ber,voltage,pulse")
        and len(lines) == 5
        and "latency_b1_p50_ms" in lines[0]
    )
    assert (tmp_path / "acc.png").read_bytes()[:4] == b"\x89PNG"


def test_per_layer_sensitivity(run_cli, trained):
    result = evaluate_json(
        run_cli,
        str(trained / "model.onnx"),
        "--data",
        str(trained / "test.npz"),
        "--ber",
        "0.4",
        "--repeats",
        "2",
        "--per-layer",
    )
    point = result["points"][0]
    assert set(point["per_layer"]) == {"act1", "act2"}
    # one site flipping loses less than all sites flipping
    assert all(v["accuracy_mean"] > point["accuracy_mean"] for v in point["per_layer"].values())


def test_clean_model_is_injected_in_memory_behind_the_protocol(trained):
    import onnxruntime as ort

    from xnorfault.faults import FlipRates
    from xnorfault.runtimes.base import Backend
    from xnorfault.runtimes.onnxruntime import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(trained / "model.onnx", threads=1)
    assert isinstance(backend, Backend)
    assert backend.sites == ["act1", "act2"] and backend.input_shape == (1, 28, 28)
    assert all(r.is_zero for r in backend.injected_rates.values())
    images = np.load(trained / "test.npz")["x"][:16]
    session = ort.InferenceSession(str(trained / "model.onnx"), providers=["CPUExecutionProvider"])
    clean = session.run(None, {"input": images})[0]
    assert np.array_equal(backend.run(images, {}, seed=1), clean)
    flipped = backend.run(images, {"act2": FlipRates.symmetric(0.5)}, seed=1)
    assert not np.array_equal(flipped, clean)
    assert np.array_equal(flipped, backend.run(images, {"act2": FlipRates.symmetric(0.5)}, seed=1))
    assert backend.describe()["threads"] == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--backend", "tensorrt"], "'tensorrt' is not one of 'auto', 'onnxruntime'"),
        (
            ["--ber", "0.1", "--voltage", "0.5"],
            "one source of fault rates, not --ber and --voltage",
        ),
        (["--voltage", "0.5"], "needs --pulse"),
        (["--plot", "x.gif"], "cannot write a figure"),
        (["--max-drop", "2"], "between 0 and 1"),
    ],
)
def test_bad_options(run_cli, trained, args, message):
    code, _, err = run_cli(
        "evaluate", str(trained / "model.onnx"), "--data", str(trained / "test.npz"), *args
    )
    assert code == 2 and message in err and err.count("\n") == 1


def test_bad_test_sets(run_cli, trained, tmp_path):
    wrong_shape = tmp_path / "shape.npz"
    np.savez(wrong_shape, x=np.zeros((3, 1, 8, 8), np.float32), y=np.zeros(3, np.int64))
    wrong_type = tmp_path / "type.npz"  # a float model takes no raw uint8 pixels
    np.savez(wrong_type, x=np.zeros((3, 1, 28, 28), np.uint8), y=np.zeros(3, np.int64))
    missing_keys = tmp_path / "keys.npz"
    np.savez(missing_keys, images=np.zeros((3, 1, 28, 28), np.float32))
    for path, message in (
        (wrong_shape, "shape (1, 8, 8) per image, the model takes (1, 28, 28)"),
        (wrong_type, "the model takes float32 images but the test set holds uint8"),
        (missing_keys, "lacks the arrays x and y"),
        (tmp_path / "none.npz", "not found"),
    ):
        code, _, err = run_cli("evaluate", str(trained / "model.onnx"), "--data", str(path))
        assert code == 2 and message in err, err
    code, _, err = run_cli(
        "evaluate", str(tmp_path / "absent.onnx"), "--data", str(trained / "test.npz")
    )
    assert code == 2 and "not found" in err


def test_open_backend_needs_a_known_extension(tmp_path):
    from xnorfault.runtimes import open_backend

    with pytest.raises(XnorfaultError, match="cannot tell the backend"):
        open_backend(tmp_path / "model.bin")


@pytest.mark.slow
def test_deployed_side_runs_without_torch(trained, tmp_path, xnorfault_wheel):
    """Install the core package alone (its wheel) into a fresh venv; inject and evaluate run
    there."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    wheel = str(xnorfault_wheel)
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", wheel],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    probe = subprocess.run([str(python), "-c", "import torch"], capture_output=True)
    assert probe.returncode != 0  # torch is not there
    cli = str(venv / "bin" / "xnorfault")
    subprocess.run(
        [
            cli,
            "inject",
            str(trained / "model.onnx"),
            "-o",
            str(tmp_path / "f.onnx"),
            "--voltage",
            "0.5",
            "--pulse",
            "10ns",
        ],
        check=True,
        capture_output=True,
    )
    out = subprocess.run(
        [
            cli,
            "evaluate",
            str(tmp_path / "f.onnx"),
            "--data",
            str(trained / "test.npz"),
            "--ber",
            "0,0.1",
            "--repeats",
            "2",
            "--json",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result = json.loads(out)
    assert [p["ber"] for p in result["points"]] == [0.0, 0.1]
    # the Python API there: every public name resolves, inject and evaluate run, no torch
    script = (
        "import json, sys, xnorfault\n"
        "names = [getattr(xnorfault, name) for name in xnorfault.__all__]\n"
        f"xnorfault.inject({str(trained / 'model.onnx')!r}, {str(tmp_path / 'g.onnx')!r}, "
        "voltage=0.5, pulse='10ns')\n"
        f"result = xnorfault.evaluate({str(tmp_path / 'g.onnx')!r}, "
        f"{str(trained / 'test.npz')!r}, ber=[0, 0.1], repeats=2)\n"
        "assert 'torch' not in sys.modules and 'brevitas' not in sys.modules\n"
        "print(json.dumps([p['ber'] for p in result.points]))\n"
    )
    api = subprocess.run([str(python), "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert api.returncode == 0, api.stderr[-2000:]
    assert json.loads(api.stdout) == [0.0, 0.1]
    code = subprocess.run(
        [cli, "evaluate", str(tmp_path / "f.onnx"), "--data", "digits"],
        capture_output=True,
        text=True,
    )
    assert code.returncode == 2 and "needs the train extra" in code.stderr


def test_max_drop_on_a_ber_sweep(run_cli, trained):
    result = evaluate_json(
        run_cli,
        str(trained / "model.onnx"),
        "--data",
        str(trained / "test.npz"),
        "--ber",
        "0.5,0,0.01,0.2",
        "--repeats",
        "2",
        "--max-drop",
        "0.05",
    )
    drop = result["max_drop"]
    upper = {p["ber"]: p["drop_ci95"][1] for p in result["points"]}
    # the highest BER such that it and every lower BER are shown within the drop by the upper
    # end of their drop's interval (images and flips; not by their means)
    expected = None
    for ber in sorted(upper):
        if upper[ber] >= 0.05:
            break
        expected = ber
    assert drop["ber"] == expected and drop["ber"] is not None and drop["ber"] < 0.5
    for point in result["points"]:  # the drop's interval holds the mean drop; images add width
        low, high = point["drop_ci95"]
        assert low <= point["accuracy_drop"] <= high
        test_low, test_high = point["test_set_ci95"]
        assert test_low <= point["accuracy_mean"] <= test_high


def test_target_ci_adds_repeats_until_the_interval_is_narrow(run_cli, trained):
    """--target-ci: every point's 95 % half-width is within the target, or it used
    --max-repeats; a noisier point needs more runs than the error-free one."""
    result = evaluate_json(
        run_cli,
        str(trained / "model.onnx"),
        "--data",
        str(trained / "test.npz"),
        "--ber",
        "0,0.05,0.2",
        "--repeats",
        "2",
        "--target-ci",
        "0.01",
        "--max-repeats",
        "30",
    )
    for point in result["points"]:
        half = (point["ci95"][1] - point["ci95"][0]) / 2
        assert half <= 0.01 or point["repeats"] == 30
        assert point["target_ci"] == {"half_width": 0.01, "met": half <= 0.01}
    repeats = {p["ber"]: p["repeats"] for p in result["points"]}
    assert repeats[0] == 2 and repeats[0.2] > 2
    code, _, err = run_cli(
        "evaluate",
        str(trained / "model.onnx"),
        "--data",
        str(trained / "test.npz"),
        "--ber",
        "0.1",
        "--target-ci",
        "2",
    )
    assert code == 2 and "--target-ci" in err


def test_model_with_a_fixed_batch_of_one_is_fed_image_by_image(run_cli, trained, tmp_path):
    """A model exported with batch 1 evaluates (no onnxruntime shape error) with the same
    error-free accuracy as the dynamic-batch export, and flips still cost accuracy."""
    import onnx

    model = onnx.load(str(trained / "model.onnx"))
    for value in (*model.graph.input, *model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].Clear()
            dims[0].dim_value = 1
    fixed = tmp_path / "batch1.onnx"
    onnx.save(model, str(fixed))
    common = ["--data", str(trained / "test.npz"), "--limit-test", "45", "--repeats", "2"]
    dynamic = evaluate_json(run_cli, str(trained / "model.onnx"), *common, "--ber", "0")
    result = evaluate_json(run_cli, str(fixed), *common, "--ber", "0,0.3", "--batch-size", "16")
    assert result["backend"]["fixed_batch"] == 1
    assert result["baseline_accuracy"] == dynamic["baseline_accuracy"]
    assert result["points"][1]["accuracy_mean"] < result["baseline_accuracy"]


def test_backend_base_class_is_the_whole_contract():
    """A backend must implement run and describe; timing, latency statistics, metadata and the
    context manager come from the base class, and the campaign uses nothing else."""
    from xnorfault.evaluation.runner import TestSetRunner
    from xnorfault.runtimes.base import Backend

    class Incomplete(Backend):
        def describe(self):
            return {}

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()

    class Constant(Backend):
        name = "constant"
        sites = ["act1"]
        input_shape = (1, 2, 2)
        threads = 1
        closed = False
        seeds: list = []

        def run(self, images, rates, seed):
            self.seeds.append(seed)
            return np.tile(np.eye(3, dtype=np.float32)[1], (len(images), 1))

        def describe(self):
            return {"backend": self.name}

        def close(self):
            self.closed = True

    with Constant() as backend:
        images = np.zeros((5, 1, 2, 2), np.float32)
        test_runner = TestSetRunner(
            backend, images, np.array([1, 1, 0, 1, 2]), seed=3, batch_size=2
        )
        assert test_runner.accuracy({}) == pytest.approx(3 / 5)
        latency = test_runner.latency({}, batch=8, iterations=4)
        assert latency["iterations"] == 4 and latency["p50_ms"] <= latency["p99_ms"]
        assert dict(backend.metadata) == {} and dict(backend.injected_rates) == {}
    assert backend.closed
    # every batch run after the probe got a distinct seed from the campaign
    assert len(set(backend.seeds[1:])) == len(backend.seeds) - 1
