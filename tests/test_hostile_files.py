"""Files from someone else, round three (issue 40): external data is looked for in every
tensor of every graph — subgraphs, sparse initializers, functions — never read from outside the
model's folder or from the working directory, and an output never overwrites an input."""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from xnorfault.errors import XnorfaultError
from xnorfault.graph.rewrite import all_tensors, external_data_files, load_model


def _external(tensor: onnx.TensorProto, location: str) -> None:
    onnx.external_data_helper.set_external_data(tensor, location)
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL


def _branch_model(location: str) -> onnx.ModelProto:
    """``y = If(c) then w else 0``, the branch's initializer ``w`` kept in ``location``."""
    weight = numpy_helper.from_array(np.full(2, 7.0, np.float32), "w")
    then = helper.make_graph(
        [helper.make_node("Identity", ["w"], ["y_then"])],
        "then",
        [],
        [helper.make_tensor_value_info("y_then", TensorProto.FLOAT, [2])],
        [weight],
    )
    zero = numpy_helper.from_array(np.zeros(2, np.float32))
    other = helper.make_graph(
        [helper.make_node("Constant", [], ["y_else"], value=zero)],
        "else",
        [],
        [helper.make_tensor_value_info("y_else", TensorProto.FLOAT, [2])],
    )
    node = helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(graph)
    _external(_then(model.graph.node[0]).initializer[0], location)
    return model


def _then(node: onnx.NodeProto) -> onnx.GraphProto:
    return next(a.g for a in node.attribute if a.name == "then_branch")


def _sparse_model(location: str) -> onnx.ModelProto:
    values = numpy_helper.from_array(np.array([5.0], np.float32), "s")
    indices = numpy_helper.from_array(np.array([1], np.int64), "s_indices")
    sparse = helper.make_sparse_tensor(values, indices, [3])
    graph = helper.make_graph(
        [helper.make_node("Identity", ["s"], ["y"])],
        "g",
        [],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
        sparse_initializer=[sparse],
    )
    model = helper.make_model(graph)
    _external(model.graph.sparse_initializer[0].values, location)
    return model


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A model folder, and a working directory that holds a planted ``w.bin``."""
    (tmp_path / "model").mkdir()
    (tmp_path / "cwd").mkdir()
    np.full(2, 9.0, np.float32).tofile(tmp_path / "cwd" / "w.bin")
    monkeypatch.chdir(tmp_path / "cwd")
    return tmp_path


@pytest.mark.parametrize("build", [_branch_model, _sparse_model])
def test_external_data_of_a_subgraph_or_sparse_tensor_is_never_read_from_the_working_directory(
    elsewhere, build
):
    path = elsewhere / "model" / "m.onnx"
    onnx.save(build("w.bin"), str(path))
    assert external_data_files(onnx.load(str(path), load_external_data=False)) == ["w.bin"]
    with pytest.raises(XnorfaultError, match="keeps its weights in w.bin, which is missing"):
        load_model(path)


@pytest.mark.parametrize("build", [_branch_model, _sparse_model])
def test_external_data_of_a_subgraph_outside_the_model_folder_is_refused(elsewhere, build):
    path = elsewhere / "model" / "m.onnx"
    onnx.save(build("../cwd/w.bin"), str(path))
    with pytest.raises(XnorfaultError, match="outside its own folder"):
        load_model(path)


def test_external_data_beside_the_model_is_read_into_every_tensor(elsewhere):
    path = elsewhere / "model" / "m.onnx"
    onnx.save(_branch_model("w.bin"), str(path))
    np.full(2, 7.0, np.float32).tofile(elsewhere / "model" / "w.bin")
    model = load_model(path)
    # nothing is left for a runtime to resolve against its own working directory
    assert external_data_files(model) == []
    branch = _then(model.graph.node[0]).initializer[0]
    assert numpy_helper.to_array(branch).tolist() == [7.0, 7.0]
    assert os.getcwd().endswith("cwd")


def test_the_tensor_walk_reaches_functions_and_nested_subgraphs():
    inner = _branch_model("w.bin")
    # the whole If inside a function's node, and inside another If's branch
    function = helper.make_function(
        "local",
        "f",
        ["c"],
        ["y"],
        [inner.graph.node[0]],
        opset_imports=[helper.make_opsetid("", 18)],
    )
    outer = helper.make_graph(
        [inner.graph.node[0]],
        "outer",
        [],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    nested = helper.make_node("If", ["c"], ["z"], then_branch=outer, else_branch=outer)
    model = helper.make_model(
        helper.make_graph(
            [nested],
            "g",
            [helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
            [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2])],
        ),
        functions=[function],
    )
    names = [tensor.name for tensor in all_tensors(model) if tensor.name == "w"]
    assert len(names) == 3  # twice in the nested branches, once in the function


def test_inspect_refuses_such_a_model_in_one_line(run_cli, elsewhere):
    path = elsewhere / "model" / "m.onnx"
    onnx.save(_branch_model("w.bin"), str(path))
    before = path.read_bytes()
    code, out, err = run_cli("inspect", str(path))
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "w.bin" in err and path.read_bytes() == before


@pytest.fixture(scope="module")
def tiny(tiny_model):
    from helpers import TINY_LENET4

    return tiny_model(*TINY_LENET4)


def _snapshot(folder) -> dict:
    from pathlib import Path

    return {p: p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def _with_external_data(tiny):
    """The tiny model saved with its weights in ``external.onnx.data`` beside it."""
    model = onnx.load(str(tiny / "model.onnx"))
    path = tiny / "external.onnx"
    onnx.save(
        model,
        str(path),
        save_as_external_data=True,
        location="external.onnx.data",
        size_threshold=0,
    )
    return path


def _paths(tiny) -> SimpleNamespace:
    """The files the cases name: the tiny model and test set, the run and one of its job
    records, the model saved with external data, and a symlink to the run's record."""
    run = tiny / "run"
    link = tiny / "link.onnx"
    if not link.is_symlink():
        link.symlink_to(run / "record.json")
    model, data = str(tiny / "model.onnx"), str(tiny / "test.npz")
    return SimpleNamespace(
        model=model,
        data=data,
        run=str(run),
        job=str(sorted((run / "jobs").glob("*/*.json"))[0]),
        external=str(_with_external_data(tiny)),
        external_data=str(tiny / "external.onnx.data"),
        report=str(tiny / "R.md"),
        link=str(link),
        sweep=["evaluate", model, "--data", data, "--ber", "0.1"],
        search=["optimize", model, "--data", data, "--max-drop", "2pt"],
    )


# each case: a command whose output is one of its inputs
CASES = {
    "evaluate --csv the model": lambda f: [*f.sweep, "--csv", f.model],
    "evaluate --csv the test set": lambda f: [*f.sweep, "--csv", f.data],
    "evaluate --plot the test set": lambda f: [*f.sweep, "--plot", f.data],
    "evaluate --csv the external data": lambda f: [
        *("evaluate", f.external, "--data", f.data, "--ber", "0.1", "--csv", f.external_data)
    ],
    "optimize -o the test set": lambda f: [*f.search, "-o", f.data],
    "optimize --operating-points the model": lambda f: [
        *f.search,
        *("--operating-points", f.model),
    ],
    "inject -o the external data": lambda f: [
        *("inject", f.external, "-o", f.external_data, "--ber", "0.1")
    ],
    "report --csv a job record": lambda f: ["report", f.run, "-o", f.report, "--csv", f.job],
    "export -o a symlink to the run's record": lambda f: ["export", f.run, "-o", f.link],
}


@pytest.mark.parametrize("case", list(CASES))
def test_an_output_that_is_an_input_is_refused_and_the_input_kept(run_cli, tiny, case):
    arguments = CASES[case](_paths(tiny))
    before = _snapshot(tiny)
    code, out, err = run_cli(*arguments)
    assert code == 2, (case, out, err)
    assert err.count("\n") == 1 and "which this command reads" in err, err
    assert _snapshot(tiny) == before


def test_mram_fit_does_not_write_over_its_starting_device(run_cli, tmp_path):
    from helpers import model_table, write_csv

    write_csv(tmp_path / "wer.csv", model_table())
    start = tmp_path / "start.toml"
    from xnorfault.mram.device_file import preset_toml

    start.write_text(preset_toml("paper"))
    before = start.read_bytes()
    code, _, err = run_cli(
        "mram", "fit", str(tmp_path / "wer.csv"), "--mram-device", str(start), "-o", str(start)
    )
    assert code == 2 and "starting device file" in err and start.read_bytes() == before


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "status", "word"), [(2, 130, "interrupted"), (15, 143, "terminated")]
)
def test_an_interrupted_command_says_so_in_one_line_and_how_to_resume(
    tiny, tmp_path, signum, status, word
):
    import signal
    import subprocess
    import sys
    import time

    command = [
        *(sys.executable, "-m", "xnorfault"),
        *("evaluate", str(tiny / "model.onnx"), "--data", str(tiny / "test.npz")),
        *("--ber", "0.01:0.5:0.01", "--repeats", "50", "--out", str(tmp_path / "campaign")),
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a shell's background jobs ignore SIGINT, and a child inherits that: restore it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    time.sleep(6)  # past start-up, into the campaign's jobs
    process.send_signal(signal.Signals(signum))
    out, err = process.communicate(timeout=120)
    lines = err.strip().splitlines()
    assert process.returncode == status, err
    assert lines[-1].startswith(word) and "rerun the same command to resume" in lines[-1]
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "arguments",
    [
        ["mram", "table", "--mram-device", "{fifo}"],
        ["plot", "{fifo}.json", "{fifo}.json", "-o", "{out}/o.png"],
    ],
)
def test_a_fifo_named_as_a_file_is_refused_at_once(run_cli, tmp_path, arguments):
    fifo = tmp_path / "device.toml"
    os.mkfifo(fifo)
    json_fifo = tmp_path / "device.toml.json"
    os.mkfifo(json_fifo)
    given = [a.format(fifo=fifo, out=tmp_path) for a in arguments]
    code, _, err = run_cli(*given)  # a read would block here for ever
    assert code == 2 and "not a regular file" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--repeats", "1000000000"),
        ("--chips", "1000000000"),
        ("--batch-size", "1000000000"),
        ("--latency-batches", "1000000000"),
        ("--threads", "100000"),
        ("--workers", "100000"),
    ],
)
def test_an_absurd_count_is_one_line_before_anything_is_allocated(run_cli, tiny, option, value):
    arguments = ["evaluate", str(tiny / "model.onnx"), "--data", str(tiny / "test.npz")]
    arguments += ["--voltage", "0.5", "--pulse", "10ns", option, value]
    if option == "--chips":
        arguments += ["--mram-device", "paper-varied"]
    code, _, err = run_cli(*arguments)
    assert code == 2 and err.count("\n") == 1 and "is outside 1 to" in err, err
    assert option.split()[0] in err


def test_the_api_refuses_an_absurd_count_by_its_parameter_name(tiny):
    import xnorfault

    with pytest.raises(XnorfaultError, match="^repeats 1000000000 is outside"):
        xnorfault.evaluate(tiny / "model.onnx", tiny / "test.npz", ber=0.1, repeats=10**9)
