"""Larq Compute Engine export, conversion audit and backend (run in the LCE environment)."""

import contextlib
import io
import json
import os
import sys

import numpy as np
import pytest
from binomial_bounds import assert_rate
from helpers import cli_ok

from xnorfault.errors import XnorfaultError
from xnorfault.faults import FlipRates

# every test here starts the LCE environment's worker process (tensorflow, ~5 s each)
pytestmark = pytest.mark.slow

TINY = ["--data", "digits", "--limit-train", "256", "--limit-test", "200", "--batch-size", "64"]


def _lce_available() -> bool:
    from xnorfault.runtimes.lce import lce_python

    try:
        lce_python()
    except XnorfaultError:
        return False
    return True


if not _lce_available():
    if os.environ.get("XNORFAULT_REQUIRE_LCE"):
        raise RuntimeError("XNORFAULT_REQUIRE_LCE is set but the LCE environment is missing")
    pytest.skip("the LCE environment (.venv-lce) is not built", allow_module_level=True)


@pytest.fixture(scope="module")
def lce_export(tmp_path_factory):
    """A tiny trained LeNet-4 exported to LCE (and its test set)."""
    folder = tmp_path_factory.mktemp("lce")
    cli_ok("train", *TINY, "--ber", "0.04", "--epochs", "1", "--out", str(folder / "run"))
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        cli_ok(
            "export",
            str(folder / "run"),
            "--format",
            "lce",
            "-o",
            str(folder / "model.tflite"),
            "--testset",
            str(folder / "test.npz"),
            "--json",
        )
    cli_ok("export", str(folder / "run"), "-o", str(folder / "model.onnx"))
    return folder, json.loads(output.getvalue())


def test_lce_export_matches_onnx_at_zero_rates(lce_export):
    folder, summary = lce_export
    assert (folder / "model.tflite").stat().st_size == summary["bytes"]
    assert summary["test_images"] == 200
    assert summary["argmax_agreement_with_onnx"] >= 0.995
    assert abs(summary["lce_test_accuracy"] - summary["onnx_test_accuracy"]) <= 0.005
    assert abs(summary["lce_test_accuracy"] - summary["recorded_test_accuracy"]) <= 0.005
    # the audit: every binary layer of LeNet-4 (conv and dense) became an LCE binary kernel
    assert summary["binary_layers"] == 2
    assert summary["binary_kernels"] == 2
    assert summary["matched_layers"] == ["weight1", "weight2"]
    assert summary["operator_counts"]["RANDOM_UNIFORM"] == 2


def test_evaluate_picks_lce_from_the_extension(lce_export, run_cli):
    folder, summary = lce_export
    code, out, err = run_cli(
        "evaluate",
        str(folder / "model.tflite"),
        "--data",
        str(folder / "test.npz"),
        "--ber",
        "0,0.5",
        "--repeats",
        "2",
        "--latency-batches",
        "1",
        "--latency-iterations",
        "3",
        "--json",
    )
    assert code in (0, None), err
    result = json.loads(out)
    assert result["backend"]["backend"] == "lce"
    assert result["baseline_accuracy"] == pytest.approx(summary["lce_test_accuracy"])
    clean, noisy = result["points"]
    assert clean["accuracy_mean"] == pytest.approx(summary["lce_test_accuracy"])
    # at BER 0.5 the binary activations carry no information: near chance on 10 classes
    assert noisy["accuracy_mean"] < 0.35
    assert clean["latency"]["1"]["p50_ms"] > 0


def test_flip_rates_of_the_lce_flip_layer_are_binomial(tmp_path):
    """A spec whose output is the flipped sign of the input itself: every value is one trial."""
    from xnorfault.exporters.lce import SPEC_FORMAT, convert_spec, write_spec
    from xnorfault.runtimes.lce import LceBackend

    spec = {
        "format": SPEC_FORMAT,
        "input_shape": [4, 16, 16],
        "num_classes": 1024,
        "sites": ["act1"],
        "binary_layers": [],
        "layers": [{"op": "binarize", "site": "act1"}, {"op": "flatten"}],
    }
    write_spec(tmp_path / "spec.npz", spec, {})
    convert_spec(tmp_path / "spec.npz", tmp_path / "probe.tflite", flip_seed=7)
    rng = np.random.default_rng(3)
    images = rng.normal(size=(40, 4, 16, 16)).astype(np.float32)
    images[0, 0, 0, :4] = 0.0  # sign(0) is +1, as in training
    signs = np.where(images >= 0, 1.0, -1.0).reshape(len(images), -1)
    with LceBackend(tmp_path / "probe.tflite") as backend:
        assert backend.sites == ["act1"]
        clean = backend.run(images, {}, 0)
        np.testing.assert_array_equal(clean, signs)
        p_pos, p_neg = 0.02, 0.2
        flipped = backend.run(images, {"act1": FlipRates(p_pos, p_neg)}, 0) != signs
        again = backend.run(images, {"act1": FlipRates(p_pos, p_neg)}, 0) != signs
    positive, negative = signs > 0, signs < 0
    assert_rate(int(flipped[positive].sum()), int(positive.sum()), p_pos)
    assert_rate(int(flipped[negative].sum()), int(negative.sum()), p_neg)
    # every invoke draws afresh: two runs flip different values
    assert (flipped != again).sum() > 0


def test_audit_names_a_binary_layer_left_in_float(tmp_path):
    """Binary dense kept as larq QuantDense (no LCE kernel) must be rejected, naming it."""
    from xnorfault.exporters.lce import convert_spec, layer_spec, write_spec
    from xnorfault.models import create_model

    model = create_model("lenet4", num_classes=10, in_channels=1, input_size=28)
    spec, arrays = layer_spec(model)
    write_spec(tmp_path / "spec.npz", spec, arrays)
    with pytest.raises(XnorfaultError, match=r"weight2 \(dense 800→500"):
        convert_spec(tmp_path / "spec.npz", tmp_path / "bad.tflite", binary_dense="dense")
    assert not (tmp_path / "bad.tflite").exists()


@pytest.mark.slow
def test_nin_lowering_matches_onnx(tmp_path):
    """NiN exercises padded max/avg pooling, 'same' binary convs and global pooling."""
    import torch

    from xnorfault.exporters.lce import convert_spec, layer_spec, write_spec
    from xnorfault.exporters.onnx import export_onnx
    from xnorfault.models import create_model
    from xnorfault.runtimes.lce import LceBackend
    from xnorfault.runtimes.onnxruntime import OnnxRuntimeBackend

    torch.manual_seed(0)
    model = create_model("nin", num_classes=10, in_channels=3, input_size=32)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
    model.eval()
    spec, arrays = layer_spec(model)
    assert spec["sites"] == [f"act{i}" for i in range(1, 8)]
    write_spec(tmp_path / "spec.npz", spec, arrays)
    summary = convert_spec(tmp_path / "spec.npz", tmp_path / "nin.tflite")
    assert summary["binary_kernels"] == 7
    images = np.random.default_rng(1).normal(size=(16, 3, 32, 32)).astype(np.float32)
    reference = OnnxRuntimeBackend(export_onnx(model)).run(images, {}, 0)
    with LceBackend(tmp_path / "nin.tflite") as backend:
        logits = backend.run(images, {}, 0)
    assert np.mean(logits.argmax(1) == reference.argmax(1)) >= 15 / 16
    assert np.median(np.abs(logits - reference)) < 1e-3 * np.abs(reference).max()


def test_export_lce_needs_a_tflite_output(lce_export, run_cli):
    folder, _ = lce_export
    code, out, err = run_cli(
        "export", str(folder / "run"), "--format", "lce", "-o", str(folder / "m.onnx")
    )
    assert code == 2 and "should end in .tflite" in err and err.count("\n") == 1


def test_missing_lce_environment_is_one_clear_line(lce_export, run_cli, monkeypatch, tmp_path):
    folder, _ = lce_export
    monkeypatch.setenv("XNORFAULT_LCE_PYTHON", str(tmp_path / "nowhere" / "python"))
    code, out, err = run_cli(
        "evaluate", str(folder / "model.tflite"), "--data", str(folder / "test.npz")
    )
    assert code == 2
    assert err.count("\n") == 1 and "XNORFAULT_LCE_PYTHON" in err and "Traceback" not in err


def test_a_tflite_that_is_not_an_xnorfault_export_is_refused(tmp_path, run_cli):
    bogus = tmp_path / "bogus.tflite"
    bogus.write_bytes(b"not a flatbuffer at all")
    np.savez(tmp_path / "t.npz", x=np.zeros((2, 1, 28, 28), np.float32), y=np.zeros(2, np.int64))
    code, out, err = run_cli("evaluate", str(bogus), "--data", str(tmp_path / "t.npz"))
    assert code == 2
    assert err.startswith("error: cannot load") and err.count("\n") == 1


def test_frames_round_trip():
    from xnorfault.runtimes.lce import read_frame, write_frame

    stream = io.BytesIO()
    write_frame(stream, command="run", images=np.arange(6, dtype=np.float32).reshape(2, 3))
    write_frame(stream, command="quit")
    stream.seek(0)
    first = read_frame(stream)
    assert str(first["command"]) == "run"
    np.testing.assert_array_equal(first["images"], np.arange(6).reshape(2, 3))
    assert str(read_frame(stream)["command"]) == "quit"
    assert read_frame(stream) is None


FAKE_BENCHMARK = """#!/usr/bin/env python3
# Stands in for LCE's lce_benchmark_model: checks the flags as the TFLite benchmark tool parses
# them, records the values it was fed and prints timings in the tool's format.
import json, sys
import numpy as np
flags = dict(a[2:].split("=", 1) for a in sys.argv[1:])
names = flags["input_layer"].split(",")
shapes = [[int(d) for d in s.split(",")] for s in flags["input_layer_shape"].split(":")]
files = {}
for item in flags["input_layer_value_files"].split(","):
    name, _, path = item.replace("::", "\\0").partition(":")
    files[name.replace("\\0", ":")] = path
fed = {n: np.fromfile(files[n], np.float32).reshape(s).tolist() if n.startswith("serving_default_p_") else list(s)
       for n, s in zip(names, shapes)}
json.dump({"graph": flags["graph"], "threads": flags["num_threads"], "runs": flags["num_runs"], "fed": fed},
          open(sys.argv[0] + ".log", "w"))
print("STARTING!")
print("Running benchmark for at least 3 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.")
print("count=3 first=612 curr=415 min=401 max=612 avg=476.3 std=98")
print("Running benchmark for at least %s iterations and at least 1 seconds but terminate if exceeding 150 seconds." % flags["num_runs"])
print("count=%s first=420 curr=401 min=379 max=800 avg=405.25 std=15" % flags["num_runs"])
print("Inference timings in us: Init: 3200, First inference: 612, Warmup (avg): 476.3, Inference (avg): 405.25")
"""


def test_tflite_inputs_are_read_without_tensorflow(lce_export):
    from xnorfault.runtimes.tflite import tflite_inputs

    folder, summary = lce_export
    inputs = tflite_inputs(folder / "model.tflite")
    assert [name for name, _ in inputs] == summary["inputs"]
    shapes = dict(inputs)
    assert shapes["serving_default_input:0"] == [1, 28, 28, 1]
    assert shapes["serving_default_p_flip_pos_act1:0"] == [1]


def test_lce_benchmark_backend_times_the_tflite_and_scores_the_onnx(lce_export, run_cli, tmp_path):
    folder, summary = lce_export
    binary = tmp_path / "lce_benchmark_model"
    binary.write_text(FAKE_BENCHMARK.replace("#!/usr/bin/env python3", "#!" + sys.executable))
    binary.chmod(0o755)
    code, out, err = run_cli(
        "evaluate",
        str(folder / "model.onnx"),
        "--data",
        str(folder / "test.npz"),
        "--backend",
        "lce-benchmark",
        "--lce-benchmark-binary",
        str(binary),
        "--ber",
        "0,0.02",
        "--repeats",
        "1",
        "--latency-batches",
        "1",
        "--latency-iterations",
        "50",
        "--threads",
        "2",
        "--json",
    )
    assert code in (0, None), err
    result = json.loads(out)
    assert result["backend"]["backend"] == "lce-benchmark"
    assert "onnxruntime" in result["backend"]["accuracy_from"]
    assert result["baseline_accuracy"] == pytest.approx(summary["onnx_test_accuracy"])
    latency = result["points"][1]["latency"]["1"]
    assert latency["mean_ms"] == pytest.approx(0.40525) and latency["iterations"] == 50
    assert "mean" in latency["statistic"]
    log = json.loads((tmp_path / "lce_benchmark_model.log").read_text())
    assert log["graph"] == str(folder / "model.tflite") and log["threads"] == "2"
    fed = log["fed"]
    assert fed["serving_default_input:0"] == [1, 28, 28, 1]
    assert fed["serving_default_p_flip_pos_act2:0"] == [pytest.approx(0.02)]
    assert fed["serving_default_p_flip_neg_act1:0"] == [pytest.approx(0.02)]


def test_lce_benchmark_needs_an_executable_binary(lce_export, run_cli, tmp_path):
    folder, _ = lce_export
    code, _, err = run_cli(
        "evaluate",
        str(folder / "model.onnx"),
        "--data",
        str(folder / "test.npz"),
        "--backend",
        "lce-benchmark",
        "--lce-benchmark-binary",
        str(tmp_path / "missing"),
    )
    assert code == 2 and "not an executable file" in err and err.count("\n") == 1
