"""Models brought from elsewhere: Brevitas' own binarized reference networks (bnn_pynq TFC and CNV,
1-bit weights and activations) exported by Brevitas as QONNX, ``torch.sign`` graphs exported by
``torch.onnx.export`` with static and dynamic batch, and the shapes real models come in (fixed
batch, NHWC, uint8 input, several outputs, old opsets, external data) — through inspect,
inject and evaluate, against the torch forward of the same network."""

import json
import os
import stat

import numpy as np
import onnx
import pytest
from binomial_bounds import assert_rate
from onnx import TensorProto, helper, numpy_helper

from xnorfault.faults import FlipRates
from xnorfault.graph.inspection import inspect_graph
from xnorfault.graph.rewrite import inject_flips, load_model, save_model
from xnorfault.runtimes.inspection import inspect_model
from xnorfault.runtimes.onnxruntime import OnnxRuntimeBackend

torch = pytest.importorskip("torch")

IMAGES = 48
# elements per image of CNV_1W1A's eight binary activations (conv 64·30², 64·28², pool…, FC 512)
CNV_SITE_BITS = [57600, 50176, 18432, 12800, 2304, 256, 512, 512]
TFC_SITE_BITS = [784, 64, 64, 64]  # the binarized input image, then three 64-wide layers


def brevitas_reference(name: str, folder, seed: int = 0):
    """A bnn_pynq network with random weights and non-trivial batch-norm statistics, its QONNX
    export (batch 1, as Brevitas exports it), test images and the torch logits on them."""
    pytest.importorskip("brevitas_examples")
    pytest.importorskip("onnxoptimizer")  # Brevitas' QONNX export needs it
    from brevitas.export import export_qonnx
    from brevitas_examples.bnn_pynq.models import model_with_cfg

    torch.manual_seed(seed)
    network, _ = model_with_cfg(name.lower(), pretrained=False)
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.3, 0.3)
    network.eval()
    shape = (IMAGES, 1, 28, 28) if name.startswith("TFC") else (IMAGES, 3, 32, 32)
    images = torch.rand(shape, generator=torch.Generator().manual_seed(seed + 1))
    path = folder / f"{name}.onnx"
    export_qonnx(network, images[:1], str(path))
    with torch.no_grad():
        logits = network(images).numpy()
    return path, images.numpy(), logits


@pytest.fixture(scope="module")
def tfc(tmp_path_factory):
    return brevitas_reference("TFC_1W1A", tmp_path_factory.mktemp("tfc"))


@pytest.fixture(scope="module")
def cnv(tmp_path_factory):
    return brevitas_reference("CNV_1W1A", tmp_path_factory.mktemp("cnv"))


@pytest.mark.parametrize("fixture, bits", [("tfc", TFC_SITE_BITS), ("cnv", CNV_SITE_BITS)])
def test_inspect_lists_the_binary_sites_of_brevitas_exports(request, fixture, bits):
    path, _, _ = request.getfixturevalue(fixture)
    report = inspect_model(path)
    assert [site.elements_per_image for site in report.sites] == bits
    assert {site.pattern for site in report.sites} == {"Where(GreaterOrEqual, s, Neg(s))"}
    assert report.activation_bits_per_image == sum(bits)
    assert report.data_input["fixed_batch"] == 1 and report.onnxruntime_error is None
    weights = report.binary_weights
    assert len(weights) == (4 if fixture == "tfc" else 9)  # every Gemm/Conv of the 1W network
    assert all(q["result"] != "left in the graph" for q in report.quantizers)
    multibit = [q for q in report.quantizers if q["kind"] == "activation" and not q["binary"]]
    if fixture == "cnv":  # CNV quantizes its input image to 8 bits: reported, never flipped
        assert [(q["op"], q["bit_width"]) for q in multibit] == [("Quant", 8.0)]
        assert any("not binary" in action for action in report.actions)
    else:
        assert multibit == []


@pytest.mark.parametrize("fixture", ["tfc", "cnv"])
def test_injected_at_zero_predicts_as_brevitas(request, fixture):
    """At p = 0 onnxruntime on the injected QONNX export agrees with Brevitas' torch forward on
    every image (fed one at a time: the export's batch is fixed at 1)."""
    path, images, logits = request.getfixturevalue(fixture)
    with OnnxRuntimeBackend(inject_flips(load_model(path), FlipRates())) as backend:
        assert backend.fixed_batch == 1
        got = backend.run(images, {}, seed=3)
    assert np.array_equal(got.argmax(axis=1), logits.argmax(axis=1))
    np.testing.assert_allclose(got, logits, rtol=1e-4, atol=1e-3)


def test_weight_faults_reach_the_lowered_weights_of_a_qonnx_export(tfc):
    """The TFC export's weights are BipolarQuant(constant) nodes, lowered to Constant nodes:
    lifted to initializers, every one of the four takes a chip's faults (persistently, whatever
    the flip seed), and flipping all of one layer's weights changes the logits."""
    from xnorfault.graph.weights import flipped

    path, images, _ = tfc
    with OnnxRuntimeBackend(inject_flips(load_model(path), FlipRates())) as backend:
        weights = backend.binary_weights()
        assert len(weights) == 4
        assert all(np.allclose(np.abs(w), np.abs(w).reshape(-1)[0]) for w in weights.values())
        clean = backend.run(images[:4], {}, seed=0)
        for name, values in weights.items():
            backend.set_weight_faults(flipped(weights, {name: np.ones(values.size, bool)}))
            first = backend.run(images[:4], {}, seed=0)
            assert not np.allclose(first, clean), name
            assert np.array_equal(first, backend.run(images[:4], {}, seed=9))
        backend.set_weight_faults(None)
        assert np.array_equal(backend.run(images[:4], {}, seed=0), clean)


@pytest.mark.parametrize("fixture", ["tfc", "cnv"])
def test_each_site_flips_at_its_rates(request, fixture):
    path, images, _ = request.getfixturevalue(fixture)
    rates = FlipRates(pos_to_neg=0.03, neg_to_pos=0.01)
    injected = inject_flips(load_model(path), rates, expose=True)
    import onnxruntime as ort

    session = ort.InferenceSession(injected.SerializeToString())
    names = [output.name for output in session.get_outputs()]
    sites = json.loads({p.key: p.value for p in injected.metadata_props}["xnorfault.injected"])
    counts = {site: np.zeros(4, np.int64) for site in sites["sites"]}
    for index in range(8):
        feeds = {"x": images[index : index + 1], "flip_seed": np.array(index, np.int64)}
        outputs = dict(zip(names, session.run(None, feeds), strict=True))
        for site in counts:
            clean, flipped = outputs[site], outputs[f"{site}.flipped"]
            positive = clean >= 0
            changed = np.sign(clean) != np.sign(flipped)
            counts[site] += [
                (changed & positive).sum(),
                positive.sum(),
                (changed & ~positive).sum(),
                (~positive).sum(),
            ]
    for pos_flips, pos_total, neg_flips, neg_total in counts.values():
        if pos_total > 1000:
            assert_rate(int(pos_flips), int(pos_total), 0.03)
        if neg_total > 1000:
            assert_rate(int(neg_flips), int(neg_total), 0.01)


def test_cli_pipeline_on_a_qonnx_export(run_cli, tfc, tmp_path):
    """inspect → inject → evaluate on Brevitas' TFC export: the labels are Brevitas' own
    predictions, so the error-free accuracy is exactly 1; latency runs despite batch 1."""
    path, images, logits = tfc
    test_set = tmp_path / "test.npz"
    np.savez(test_set, x=images, y=logits.argmax(axis=1))
    code, out, err = run_cli("inspect", str(path), "--json")
    assert code == 0, err
    assert len(json.loads(out)["sites"]) == 4
    faulty = tmp_path / "faulty.onnx"
    code, out, err = run_cli("inject", str(path), "-o", str(faulty), "--ber", "0.02", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["model"]["activation_bits_per_image"] == sum(TFC_SITE_BITS)
    code, out, err = run_cli(
        "evaluate", str(faulty), "--data", str(test_set), "--repeats", "2", "--latency-batches", "4",
        "--latency-iterations", "2", "--json",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert result["baseline_accuracy"] == 1.0
    assert result["backend"]["fixed_batch"] == 1
    assert result["model"]["data_input"]["fixed_batch"] == 1
    assert result["points"][0]["latency"]["4"]["iterations"] == 2


def test_naming_a_multibit_activation_is_refused(run_cli, cnv, tmp_path):
    path, _, _ = cnv
    quantized_input = next(q["output"] for q in inspect_graph(path).quantizers if not q["binary"])
    code, _, err = run_cli(
        "inject", str(path), "-o", str(tmp_path / "x.onnx"), "--ber", "0.1",
        "--layers", quantized_input,
    )  # fmt: skip
    assert code == 2 and err.count("\n") == 1
    assert f"--layers {quantized_input}: a 8-bit Quant activation, not binary" in err
    assert not (tmp_path / "x.onnx").exists()


# --- torch.sign graphs ---------------------------------------------------------------------------


class SignNet(torch.nn.Module):
    """Conv → batch norm → torch.sign → linear: a binarized activation as torch writes it."""

    def __init__(self, channels_last: bool = False):
        super().__init__()
        self.channels_last = channels_last
        self.conv = torch.nn.Conv2d(1, 8, 3)
        self.norm = torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8 * 6 * 6, 10)

    def forward(self, x):
        if self.channels_last:
            x = x.permute(0, 3, 1, 2)
        return self.fc(torch.flatten(torch.sign(self.norm(self.conv(x))), 1))


def export_sign_net(path, batch: int, dynamic: bool, channels_last: bool = False):
    torch.manual_seed(5)
    network = SignNet(channels_last).eval()
    network.norm.running_mean.uniform_(-0.2, 0.2)
    images = torch.rand(batch, 1, 8, 8, generator=torch.Generator().manual_seed(6))
    example = images.permute(0, 2, 3, 1) if channels_last else images
    dynamic_shapes = {"x": {0: torch.export.Dim("batch")}} if dynamic else None
    torch.onnx.export(
        network, (example,), str(path), input_names=["images"], output_names=["logits"],
        dynamic_shapes=dynamic_shapes,
    )  # fmt: skip
    return network


@pytest.mark.parametrize("dynamic", [False, True])
def test_torch_sign_export(run_cli, capsys, tmp_path, dynamic):
    path = tmp_path / "sign.onnx"
    network = export_sign_net(path, batch=4, dynamic=dynamic)
    capsys.readouterr()  # the exporter's own progress lines
    report = inspect_model(path)
    assert [(s.pattern, s.elements_per_image) for s in report.sites] == [("Sign", 8 * 6 * 6)]
    assert report.data_input["fixed_batch"] == (None if dynamic else 4)
    images = torch.rand(10, 1, 8, 8, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        labels = network(images).argmax(axis=1).numpy()
    test_set = tmp_path / "test.npz"  # 10 images: batches of 4 leave a padded last one
    np.savez(test_set, x=images.numpy(), y=labels)
    code, out, err = run_cli(
        "evaluate", str(path), "--data", str(test_set), "--ber", "0,0.5", "--repeats", "3",
        "--batch-size", "3", "--json",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert result["baseline_accuracy"] == 1.0 and result["test_images"] == 10
    assert result["points"][1]["accuracy_mean"] < 1.0  # half the signs flipped


def test_channels_last_input_is_detected_and_fed(run_cli, capsys, tmp_path):
    path = tmp_path / "nhwc.onnx"
    network = export_sign_net(path, batch=2, dynamic=True, channels_last=True)
    capsys.readouterr()
    images = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        labels = network(images.permute(0, 2, 3, 1)).argmax(axis=1).numpy()
    test_set = tmp_path / "test.npz"  # xnorfault's (C, H, W) order: transposed to NHWC
    np.savez(test_set, x=images.numpy(), y=labels)
    report = inspect_model(path)
    assert report.data_input["layout"] == "NHWC"
    code, out, err = run_cli("evaluate", str(path), "--data", str(test_set), "--json")
    assert code == 0, err
    assert json.loads(out)["baseline_accuracy"] == 1.0


# --- real-model shapes built with onnx.helper ----------------------------------------------------


def small_graph(
    input_type=TensorProto.FLOAT,
    batch=None,
    outputs=("logits",),
    opset=18,
):
    """x (N, 1, 4, 4) → [Cast] → Sign(x − 0.5) → flatten → MatMul W: logits; optionally a second
    output (the signs)."""
    rng = np.random.default_rng(0)
    nodes = []
    source = "x"
    if input_type != TensorProto.FLOAT:
        nodes += [
            helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT),
            helper.make_node("Div", ["xf", "max"], ["xs"]),
        ]
        source = "xs"
    nodes += [
        helper.make_node("Sub", [source, "half"], ["centred"]),
        helper.make_node("Sign", ["centred"], ["signs"]),
        helper.make_node("Flatten", ["signs"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], ["logits"]),
    ]
    initializers = [
        numpy_helper.from_array(np.float32(0.5), "half"),
        numpy_helper.from_array(np.float32(255.0), "max"),
        numpy_helper.from_array(rng.normal(size=(16, 3)).astype(np.float32), "w"),
    ]
    graph_outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 3])]
    if "signs" in outputs:
        graph_outputs.append(
            helper.make_tensor_value_info("signs", TensorProto.FLOAT, [batch, 1, 4, 4])
        )
    graph = helper.make_graph(
        nodes,
        "small",
        [helper.make_tensor_value_info("x", input_type, [batch or "N", 1, 4, 4])],
        graph_outputs,
        initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def small_reference(x: np.ndarray, model: onnx.ModelProto) -> np.ndarray:
    weight = numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "w"))
    scaled = x.astype(np.float32) / (255.0 if x.dtype == np.uint8 else 1.0)
    return np.sign(scaled - 0.5).reshape(len(x), -1) @ weight


def test_uint8_input_takes_raw_pixels(run_cli, tmp_path):
    model = small_graph(input_type=TensorProto.UINT8)
    path = tmp_path / "uint8.onnx"
    onnx.save(model, path)
    pixels = np.random.default_rng(1).integers(0, 256, (20, 1, 4, 4)).astype(np.uint8)
    labels = small_reference(pixels, model).argmax(axis=1)
    raw = tmp_path / "raw.npz"
    np.savez(raw, x=pixels, y=labels)
    code, out, err = run_cli("evaluate", str(path), "--data", str(raw), "--json")
    assert code == 0, err
    assert json.loads(out)["baseline_accuracy"] == 1.0
    scaled = tmp_path / "scaled.npz"  # preprocessed floats are not what the model takes
    np.savez(scaled, x=pixels.astype(np.float32) / 255, y=labels)
    code, _, err = run_cli("evaluate", str(path), "--data", str(scaled))
    assert code == 2 and err.count("\n") == 1
    assert "the model takes uint8 images (raw pixel values 0–255)" in err


def test_several_outputs_need_a_choice(run_cli, tmp_path):
    model = small_graph(outputs=("logits", "signs"))
    path = tmp_path / "two.onnx"
    onnx.save(model, path)
    images = np.random.default_rng(2).random((12, 1, 4, 4)).astype(np.float32)
    test_set = tmp_path / "test.npz"
    np.savez(test_set, x=images, y=small_reference(images, model).argmax(axis=1))
    code, _, err = run_cli("evaluate", str(path), "--data", str(test_set))
    assert code == 2 and "choose the logits with --output-name NAME" in err
    code, _, err = run_cli("evaluate", str(path), "--data", str(test_set), "--output-name", "nope")
    assert code == 2 and "--output-name nope: the model's outputs are logits, signs" in err
    code, out, err = run_cli(
        "evaluate", str(path), "--data", str(test_set), "--output-name", "logits", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["baseline_accuracy"] == 1.0


def test_an_old_opset_is_converted(tmp_path):
    model = small_graph(opset=13)
    report = inspect_model(model)
    assert report.opset_converted_from == 13 and report.opset == 18
    images = np.random.default_rng(3).random((5, 1, 4, 4)).astype(np.float32)
    with OnnxRuntimeBackend(model) as backend:
        np.testing.assert_allclose(
            backend.run(images, {}, 0), small_reference(images, model), rtol=1e-5
        )


def test_external_data_is_read_and_written(run_cli, tmp_path):
    model = small_graph()
    source = tmp_path / "external.onnx"
    onnx.save(model, source, save_as_external_data=True, location="weights.bin", size_threshold=0)
    assert inspect_model(source).external_data
    faulty = tmp_path / "faulty.onnx"
    code, _, err = run_cli("inject", str(source), "-o", str(faulty), "--ber", "0.1")
    assert code == 0, err
    assert faulty.is_file() and not (tmp_path / "faulty.onnx.data").exists()  # one file
    (tmp_path / "weights.bin").rename(tmp_path / "moved.bin")
    code, _, err = run_cli("inspect", str(source))
    assert code == 2 and "keeps its weights in weights.bin, which is missing" in err


def test_large_models_are_written_with_external_data(tmp_path):
    """Above the protobuf limit (here lowered to 1 kB) the tensors go to PATH.data, and the
    model reads back with them."""
    model = inject_flips(small_graph(), FlipRates.symmetric(0.1))
    written = save_model(model, tmp_path / "big.onnx", limit=1024)
    assert [p.name for p in written] == ["big.onnx.data", "big.onnx"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.onnx", "big.onnx.data"]  # no staging
    again = load_model(tmp_path / "big.onnx")
    images = np.random.default_rng(4).random((3, 1, 4, 4)).astype(np.float32)
    with OnnxRuntimeBackend(again) as reread, OnnxRuntimeBackend(model) as original:
        assert np.array_equal(reread.run(images, {}, 1), original.run(images, {}, 1))


def test_injected_files_follow_the_umask(run_cli, tmp_path):
    onnx.save(small_graph(), tmp_path / "model.onnx")
    previous = os.umask(0o027)
    try:
        code, _, err = run_cli(
            "inject", str(tmp_path / "model.onnx"), "-o", str(tmp_path / "f.onnx"), "--ber", "0.1"
        )
    finally:
        os.umask(previous)
    assert code == 0, err
    assert stat.S_IMODE((tmp_path / "f.onnx").stat().st_mode) == 0o640


# --- failures: one line naming the node and what to do ------------------------------------------


def test_a_qonnx_node_that_cannot_be_lowered_is_named(run_cli, tmp_path):
    nodes = [
        helper.make_node("ReduceMax", ["x"], ["bits"], keepdims=0),
        helper.make_node(
            "Quant", ["x", "one", "zero", "bits"], ["q"], domain="qonnx.custom_op.general",
            name="odd_quant",
        ),
        helper.make_node("Sign", ["q"], ["y"]),
    ]  # fmt: skip
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [numpy_helper.from_array(np.float32(v), n) for n, v in (("one", 1.0), ("zero", 0.0))],
    )
    model = helper.make_model(
        graph,
        opset_imports=[
            helper.make_opsetid("", 18),
            helper.make_opsetid("qonnx.custom_op.general", 1),
        ],
    )
    path = tmp_path / "odd.onnx"
    onnx.save(model, path)
    test_set = tmp_path / "t.npz"
    np.savez(test_set, x=np.ones((2, 4), np.float32), y=np.zeros(2, np.int64))
    code, _, err = run_cli("evaluate", str(path), "--data", str(test_set))
    assert code == 2 and err.count("\n") == 1
    assert (
        "node 'odd_quant' (qonnx.custom_op.general.Quant) is not an operator onnxruntime runs"
        in err
    )
    report = inspect_model(path)
    assert [q["result"] for q in report.quantizers] == ["left in the graph"]
    assert report.unsupported[0]["node"] == "odd_quant"


def test_a_runtime_failure_is_one_line_naming_the_node(run_cli, tmp_path):
    """A graph that reshapes to a fixed batch of 2 fails when fed 3 images: one line that
    names the Reshape node, not onnxruntime's traceback."""
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["r"], name="fixed_reshape"),
        helper.make_node("Sign", ["r"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
        [numpy_helper.from_array(np.array([2, 4], np.int64), "shape")],
    )
    path = tmp_path / "fixed.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    test_set = tmp_path / "t.npz"
    np.savez(test_set, x=np.ones((3, 1, 2, 2), np.float32), y=np.zeros(3, np.int64))
    code, _, err = run_cli("evaluate", str(path), "--data", str(test_set))
    assert code == 2 and err.count("\n") == 1, err
    assert "onnxruntime could not run the model: node 'fixed_reshape' (Reshape)" in err
    assert "Traceback" not in err


def test_deploy_bundles_a_qonnx_model_with_its_test_set(run_cli, tfc, tmp_path):
    """deploy takes an ONNX model and its test set: the bundle's model, evaluated on the bundled
    test set, gives the error-free accuracy the manifest records (1: the labels are Brevitas'
    predictions); a model without --data, or with --lce, is refused in one line."""
    path, images, logits = tfc
    test_set = tmp_path / "test.npz"
    np.savez(test_set, x=images[:12], y=logits[:12].argmax(axis=1))
    wheel = tmp_path / "xnorfault-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"a wheel stands in here")
    bundle = tmp_path / "bundle"
    common = ["--target", "raspberry-pi-4", "--wheel", str(wheel)]
    code, _, err = run_cli("deploy", str(path), "-o", str(bundle), *common)
    assert code == 2 and "needs its test set: give --data TEST.npz" in err
    code, _, err = run_cli(
        "deploy", str(path), "-o", str(bundle), "--data", str(test_set), "--lce", *common
    )
    assert code == 2 and "--point and --lce apply to runs" in err
    assert not bundle.exists()
    code, out, err = run_cli(
        "deploy", str(path), "-o", str(bundle), "--data", str(test_set), "--json", *common
    )
    assert code == 0, err
    manifest = json.loads(out)
    assert manifest["baseline_accuracy"] == 1.0 and len(manifest["binary_sites"]) == 4
    assert "model.onnx" in manifest["files"] and "test.npz" in manifest["files"]
    code, out, err = run_cli(
        "evaluate", str(bundle / "model.onnx"), "--data", str(bundle / "test.npz"), "--json"
    )
    assert code == 0, err
    assert json.loads(out)["baseline_accuracy"] == 1.0


def test_a_float16_model_flips_its_float16_sites(run_cli, tmp_path):
    """A float16 network: float32 test images are cast to its input, and its float16 site
    flips at the injected rate (within binomial bounds) through BitFlip's float32 inside."""
    rng = np.random.default_rng(9)
    weight = rng.normal(size=(64, 3)).astype(np.float16)
    graph = helper.make_graph(
        [
            helper.make_node("Sign", ["x"], ["signs"]),
            helper.make_node("Flatten", ["signs"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], ["logits"]),
        ],
        "half",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT16, ["N", 3])],
        [numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    images = rng.normal(size=(400, 1, 8, 8)).astype(np.float32)
    injected = inject_flips(model, FlipRates.symmetric(0.05), expose=True)
    import onnxruntime as ort

    session = ort.InferenceSession(injected.SerializeToString())
    clean, flipped = session.run(
        ["signs", "signs.flipped"],
        {"x": images.astype(np.float16), "flip_seed": np.array(11, np.int64)},
    )
    assert flipped.dtype == np.float16
    assert set(np.unique(flipped)) <= {-1.0, 1.0}
    assert_rate(int((clean != flipped).sum()), clean.size, 0.05)
    path = tmp_path / "half.onnx"
    onnx.save(model, path)
    test_set = tmp_path / "test.npz"
    labels = (np.sign(images).reshape(400, -1) @ weight.astype(np.float32)).argmax(axis=1)
    np.savez(test_set, x=images[:50], y=labels[:50])
    code, out, err = run_cli("evaluate", str(path), "--data", str(test_set), "--json")
    assert code == 0, err
    assert json.loads(out)["baseline_accuracy"] >= 0.96  # float16 logits may tie-break apart
    assert json.loads(out)["model"]["data_input"]["dtype"] == "float16"
