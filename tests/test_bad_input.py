"""One error contract for every command: bad input gives exit status 2, a single ``error:`` line,
no traceback, and leaves every output path as it was (not created, not changed).

Each case below was once a traceback, a silently wrong number or a lost file."""

import gzip
import os
import shutil
import struct

import numpy as np
import onnx
import pytest
from helpers import TINY_LENET4
from onnx import TensorProto, helper


def snapshot(folder) -> dict:
    """Every path under ``folder`` with its size, mode and modification time."""
    state = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            info = os.lstat(path)
            state[os.path.relpath(path, folder)] = (info.st_size, info.st_mode, info.st_mtime_ns)
    return state


def assert_refused(run_cli, args, message, watched):
    """The command exits 2 with one ``error:`` line holding ``message``, and ``watched`` (a
    folder holding every input and output path of the case) is exactly as before."""
    before = snapshot(watched)
    code, out, err = run_cli(*args)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err + out
    assert message in lines[0], lines[0]
    assert snapshot(watched) == before, "the command created or changed files"


@pytest.fixture(scope="module")
def workspace(tiny_model):
    """A trained run, its ONNX export and test set, and a folder of bad files."""
    folder = tiny_model(*TINY_LENET4)
    with np.load(folder / "test.npz") as data:
        x, y = data["x"], data["y"]
    bad = folder / "files"
    bad.mkdir()
    np.savez(bad / "label42.npz", x=x, y=np.where(y == 3, 42, y))
    np.savez(bad / "label_minus1.npz", x=x, y=np.where(y == 0, -1, y))
    nan_images = x.copy()
    nan_images[5, 0, 3, 3] = np.nan
    np.savez(bad / "nan.npz", x=nan_images, y=y)
    np.savez(bad / "float_labels.npz", x=x, y=y + 0.5)
    np.savez(bad / "string_labels.npz", x=x, y=np.array([str(v) for v in y]))
    np.savez(bad / "no_images.npz", x=x[:0], y=y[:0])
    (bad / "zero_bytes.npz").write_bytes(b"")
    (bad / "truncated.npz").write_bytes((folder / "test.npz").read_bytes()[:300])
    (bad / "latin1.toml").write_bytes(
        'name = "caf\xe9"\n[switching]\ndelta = 40\n'.encode("latin-1")
    )
    (bad / "only_delta.toml").write_text("[switching]\ndelta = 45\n")
    (bad / "a_folder").mkdir()
    (bad / "a_file").write_text("not a folder\n")
    (bad / "not_json.json").write_text("{'points': [")
    (bad / "a_list.json").write_text("[1, 2, 3]\n")
    write_int32_model(bad / "int32.onnx")
    write_idx_folders(bad)
    return folder


def write_int32_model(path) -> None:
    """A foreign graph whose binary site (Sign) is an integer tensor."""
    graph = helper.make_graph(
        [
            helper.make_node("Sign", ["x"], ["s"]),
            helper.make_node("ReduceSum", ["s"], ["y"], keepdims=0),
        ],
        "int32",
        [helper.make_tensor_value_info("x", TensorProto.INT32, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.save(model, path)


def _idx(array: np.ndarray, type_code: int = 0x08) -> bytes:
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx_folders(bad) -> None:
    """MNIST-format folders, each broken in one way."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (20, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 20).astype(np.uint8)

    def folder(name, train_labels=labels, train_images=None, test_images=None, raw=None):
        path = bad / name
        path.mkdir()
        train_images = _idx(images) if train_images is None else train_images
        (path / "train-images-idx3-ubyte").write_bytes(train_images)
        (path / "train-labels-idx1-ubyte").write_bytes(_idx(train_labels))
        (path / "t10k-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(_idx(images) if test_images is None else test_images)
        )
        (path / "t10k-labels-idx1-ubyte").write_bytes(_idx(labels))
        return path

    folder("mnist_label42", train_labels=np.where(labels == 1, 42, labels).astype(np.uint8))
    huge = struct.pack(">BBBB", 0, 0, 8, 3) + struct.pack(">3I", 2**31, 2**31, 28) + b"\0" * 64
    folder("mnist_huge_header", train_images=huge)
    empty = bad / "mnist_empty"
    folder("mnist_empty")
    (empty / "train-images-idx3-ubyte").write_bytes(_idx(images[:0]))
    (empty / "train-labels-idx1-ubyte").write_bytes(_idx(labels[:0]))
    nan_images = images.astype(">f4")
    nan_images[0, 0, 0] = np.nan
    folder("mnist_float_images", train_images=_idx(nan_images, 0x0D))


# --- train ----------------------------------------------------------------------------------

TRAIN_CASES = [
    (["--data", "mnist:{bad}/mnist_label42"], "outside the 10 classes"),
    (["--data", "mnist:{bad}/mnist_huge_header"], "truncated or padded"),
    (["--data", "mnist:{bad}/mnist_empty"], "holds no images"),
    (["--data", "mnist:{bad}/mnist_float_images"], "expected unsigned bytes"),
    (["--voltage-schedule", "0.8,0.7,0.6", "--pulse", "10ns"], "3 voltages for 1 epoch"),
    (["--voltage", "1.5", "--pulse", "10ns"], "exceeds the breakdown voltage"),
    (["--voltage", "0.1:0.9:1e-9", "--pulse", "10ns"], "more than 10000 values"),
    (["--voltage", "0.5", "--pulse", "10ns", "--mram-device", "{bad}/latin1.toml"], "not UTF-8"),
    (
        ["--voltage", "0.5", "--pulse", "10ns", "--mram-device", "{bad}/only_delta.toml"],
        "lacks switching.tau_d, switching.vc0_p_to_ap",
    ),
    (["--milestones", "nan"], "write a whole number"),
    (["--ber", "0.04", "--out", "{bad}/a_file/run"], "a_file"),
]


@pytest.mark.parametrize("args, message", TRAIN_CASES)
def test_train_refuses(run_cli, workspace, args, message):
    bad = workspace / "files"
    args = [a.format(bad=bad) for a in args]
    out = [] if "--out" in args else ["--out", str(bad / "new_run")]
    data = [] if "--data" in args else ["--data", "digits"]
    assert_refused(
        run_cli, ["train", *data, "--limit-train", "64", "--epochs", "1", *out, *args], message, bad
    )


# --- evaluate -------------------------------------------------------------------------------

EVALUATE_CASES = [
    ("label42.npz", [], "labels (y) hold 42, outside the 10 classes 0..9"),
    ("label_minus1.npz", [], "labels (y) hold -1, outside the 10 classes"),
    ("nan.npz", [], "test images 5 hold NaN or infinite pixels"),
    ("float_labels.npz", [], "are float64, not integers"),
    ("string_labels.npz", [], "not integers"),
    ("no_images.npz", [], "holds no images"),
    ("zero_bytes.npz", [], "is empty (0 bytes)"),
    ("truncated.npz", [], "is not a readable .npz file"),
    (None, ["--csv", "{bad}/a_folder"], "is a folder"),
    (None, ["--csv", "{bad}/a_file/points.csv"], "a_file"),
    (None, ["--voltage", "1.5", "--pulse", "10ns"], "exceeds the breakdown voltage"),
    (None, ["--voltage", "0.1:0.9:1e-9", "--pulse", "10ns"], "more than 10000 values"),
    (
        None,
        ["--voltage", "0.5", "--pulse", "10ns", "--mram-device", "{bad}/latin1.toml"],
        "not UTF-8",
    ),
    (None, ["--latency-batches", "nan"], "write a whole number"),
    (None, ["--latency-batches", "0"], "at least 1"),
]


@pytest.mark.parametrize("test_set, args, message", EVALUATE_CASES)
def test_evaluate_refuses(run_cli, workspace, test_set, args, message):
    bad = workspace / "files"
    data = str(bad / test_set) if test_set else str(workspace / "test.npz")
    args = [a.format(bad=bad) for a in args]
    outputs = [] if "--csv" in args else ["--csv", str(bad / "points.csv")]
    outputs += ["--plot", str(bad / "sweep.png")]
    ber = [] if "--voltage" in args else ["--ber", "0,0.01"]
    command = ["evaluate", str(workspace / "model.onnx"), "--data", data, *ber, *args, *outputs]
    assert_refused(run_cli, [*command, "--repeats", "1"], message, bad)


# --- inject, export, report, plot, mram, deploy ------------------------------------------------

INJECT_CASES = [
    ("{bad}/int32.onnx", ["--ber", "0.1"], "are not floating point"),
    ("{model}", ["--voltage", "1.5", "--pulse", "10ns"], "exceeds the breakdown voltage"),
    (
        "{model}",
        ["--voltage", "0.5", "--pulse", "10ns", "--mram-device", "{bad}/latin1.toml"],
        "UTF-8",
    ),
    ("{bad}/truncated.npz", ["--ber", "0.1"], "not a valid ONNX model"),
]


@pytest.mark.parametrize("model, args, message", INJECT_CASES)
def test_inject_refuses(run_cli, workspace, model, args, message):
    bad = workspace / "files"
    values = {"bad": bad, "model": workspace / "model.onnx"}
    model = model.format(**values)
    args = [a.format(**values) for a in args]
    assert_refused(run_cli, ["inject", model, "-o", str(bad / "out.onnx"), *args], message, bad)


def _copy_run(workspace, name) -> "os.PathLike":
    copy = workspace / "files" / name
    if not copy.exists():
        shutil.copytree(workspace / "run", copy)
    return copy


def _checkpoint(run):
    return next((run / "jobs").glob("*/repeat-0.pt"))


def _job_record(run):
    return next((run / "jobs").glob("*/repeat-0.json"))


class PlantedCode:
    """An object whose unpickling runs code: it creates a file named after itself."""

    marker = None

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _plant(run, workspace):
    import torch

    marker = workspace / "files" / "PWNED"
    PlantedCode.marker = marker
    state = {"model": {}, "model_config": {"name": "lenet4"}, "payload": PlantedCode()}
    torch.save(state, _checkpoint(run))
    return marker


def test_export_never_runs_code_from_a_checkpoint(run_cli, workspace):
    run = _copy_run(workspace, "planted_run")
    marker = _plant(run, workspace)
    assert_refused(
        run_cli,
        ["export", str(run), "-o", str(workspace / "files" / "planted.onnx")],
        "holds objects other than tensors and plain data",
        workspace / "files",
    )
    assert not marker.exists()


def test_train_resume_never_runs_code_from_a_checkpoint(run_cli, workspace):
    import json

    run = _copy_run(workspace, "planted_resume")
    marker = _plant(run, workspace)
    record = json.loads(_job_record(run).read_text())
    record["status"] = "incomplete"  # so the resume loads the checkpoint
    record["epochs"] = []
    _job_record(run).write_text(json.dumps(record))
    assert_refused(
        run_cli,
        ["train", *TINY_LENET4, "--out", str(run)],
        "holds objects other than tensors and plain data",
        workspace / "files",
    )
    assert not marker.exists()


@pytest.mark.parametrize(
    "damage, message",
    [
        (
            lambda run: _checkpoint(run).write_bytes(_checkpoint(run).read_bytes()[:500]),
            "unreadable",
        ),
        (lambda run: (run / "record.json").write_text("{"), "record.json is not valid JSON"),
        (lambda run: (run / "config.json").write_text("[]"), "config.json is not the settings"),
        (lambda run: _job_record(run).write_text('{"point": "ber=0.04"}'), "lacks repeat"),
        (lambda run: _job_record(run).write_bytes(b"\xff\xfe"), "is not valid JSON"),
    ],
)
def test_export_of_a_damaged_run(run_cli, workspace, damage, message):
    run = workspace / "files" / f"damaged_{message.split()[0].replace('.', '_')}"
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(workspace / "run", run)
    damage(run)
    assert_refused(
        run_cli,
        ["export", str(run), "-o", str(workspace / "files" / "m.onnx")],
        message,
        run.parent,
    )


REPORT_CASES = [
    (["--evaluation", "{bad}/not_json.json"], "is not valid JSON"),
    (["--evaluation", "{bad}/a_list.json"], "is not the JSON output of 'xnorfault evaluate'"),
    (["--csv", "{bad}/a_folder"], "is a folder"),
    (["--discussion", "{bad}/latin1.toml"], "is not UTF-8 text"),
]


@pytest.mark.parametrize("args, message", REPORT_CASES)
def test_report_refuses(run_cli, workspace, args, message):
    bad = workspace / "files"
    args = [a.format(bad=bad) for a in args]
    command = ["report", str(workspace / "run"), "-o", str(bad / "REPORT.md"), *args]
    assert_refused(run_cli, command, message, bad)


MRAM_CASES = [
    (["wer", "--voltage", "0.5,1.3", "--pulse", "10ns"], "exceeds the breakdown voltage 1.200 V"),
    (["table", "--mram-device", "{bad}/latin1.toml"], "not UTF-8"),
    (["table", "--mram-device", "{bad}/only_delta.toml"], "lacks switching.tau_d"),
    (["curve", "-o", "{bad}/a_file/fig.png"], "a_file"),
]


@pytest.mark.parametrize("args, message", MRAM_CASES)
def test_mram_refuses(run_cli, workspace, args, message):
    bad = workspace / "files"
    assert_refused(run_cli, ["mram", *[a.format(bad=bad) for a in args]], message, bad)


def test_plot_refuses_an_unwritable_figure(run_cli, workspace):
    bad = workspace / "files"
    command = ["plot", str(workspace / "run"), "-o", str(bad / "a_folder")]
    assert_refused(run_cli, command, "cannot write a figure", bad)
    command = ["plot", str(workspace / "run"), "-o", str(bad / "a_file" / "fig.png")]
    assert_refused(run_cli, command, "a_file", bad)


def test_deploy_never_deletes_the_run_or_its_neighbours(run_cli, workspace):
    """-o pointing at the run, at a folder holding it, or inside it is refused, --force or not;
    --force replaces only a folder that is an earlier bundle with nothing else in it."""
    bad = workspace / "files"
    parent = bad / "projects"
    run = parent / "victim"
    if not run.exists():
        shutil.copytree(workspace / "run", run)
        (parent / "notes.txt").write_text("a user's notes\n")
        (parent / "sibling").mkdir()
        (parent / "sibling" / "data.txt").write_text("keep me\n")
    deploy = ["deploy", str(run), "--target", "raspberry-pi-4"]
    for output in (run, parent, run / "jobs", run / "inside"):
        assert_refused(run_cli, [*deploy, "-o", str(output), "--force"], "source run", bad)
    assert_refused(
        run_cli,
        [*deploy, "-o", str(parent / "sibling"), "--force"],
        "is not a bundle of xnorfault deploy",
        bad,
    )
    fake = bad / "fake_bundle"
    fake.mkdir(exist_ok=True)
    (fake / "manifest.json").write_text(
        '{"format": "xnorfault-bundle/1", "files": {"model.onnx": {}}}'
    )
    (fake / "model.onnx").write_text("x")
    (fake / "thesis.tex").write_text("a user's work\n")
    assert_refused(
        run_cli,
        [*deploy, "-o", str(fake), "--force"],
        "holds files its bundle manifest does not list (thesis.tex)",
        bad,
    )


def test_report_and_plot_of_a_damaged_run(run_cli, workspace):
    bad = workspace / "files"
    run = _copy_run(workspace, "damaged_for_report")
    (run / "config.json").write_text('{"config": ')
    for command in (
        ["report", str(run), "-o", str(bad / "R.md")],
        ["plot", str(run), "-o", str(bad / "fig.png")],
    ):
        assert_refused(run_cli, command, "config.json is not valid JSON", bad)
