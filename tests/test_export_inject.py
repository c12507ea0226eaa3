"""ONNX export (parity with the trained model) and the bit-flip graph rewrite."""

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from binomial_bounds import assert_rate
from helpers import TINY_LENET4
from onnx import TensorProto, helper, numpy_helper

from xnorfault.errors import XnorfaultError
from xnorfault.faults import FlipRates
from xnorfault.graph.contract import rate_input_names
from xnorfault.graph.generator import flip_mask, run_seed, stream_keys, uniforms
from xnorfault.graph.rewrite import inject_flips, load_model, metadata

DATA = Path(__file__).parent / "data"


def session(model):
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


@pytest.fixture(scope="module")
def exported(tiny_model):
    """A tiny trained LeNet-4 exported to ONNX with its test set."""
    return tiny_model(*TINY_LENET4)


def test_an_export_below_the_parity_minimum_is_not_written(exported, run_cli, monkeypatch):
    """Parity is measured before the model is written: with the reference logits reversed (so
    the export disagrees with "the trained network" on most images) nothing is written and the
    command says why in one line; --accept-low-parity writes it and records the shortfall."""
    import xnorfault.exporters.onnx as onnx_exporter

    props = metadata(onnx.load(str(exported / "model.onnx")))
    kept = json.loads(props["xnorfault.parity"])
    assert kept["min_agreement"] == 0.99 and not kept["accepted_below_minimum"]
    assert kept["argmax_agreement"] >= 0.99 and kept["test_images"] == 150
    real_split = onnx_exporter.test_split

    def reversed_reference(*args):
        images, labels, logits = real_split(*args)
        return images, labels, -logits

    monkeypatch.setattr(onnx_exporter, "test_split", reversed_reference)
    target = exported / "low.onnx"
    code, _, err = run_cli("export", str(exported / "run"), "-o", str(target))
    assert code == 2 and "below --min-agreement 0.99: nothing was written" in err, err
    assert err.count("\n") == 1 and not target.exists()
    code, out, err = run_cli(
        "export", str(exported / "run"), "-o", str(target), "--accept-low-parity", "--json"
    )
    assert code == 0, err
    summary = json.loads(out)
    recorded = json.loads(metadata(onnx.load(str(target)))["xnorfault.parity"])
    assert recorded == summary["parity"] and recorded["accepted_below_minimum"]
    assert recorded["argmax_agreement"] == summary["argmax_agreement"] < 0.99
    code, _, err = run_cli(
        "export", str(exported / "run"), "-o", str(exported / "x.onnx"), "--min-agreement", "1.5"
    )
    assert code == 2 and "--min-agreement 1.5" in err and not (exported / "x.onnx").exists()


def test_export_is_standard_onnx_with_parity(exported):
    import torch

    from xnorfault.models import create_model

    model = onnx.load(str(exported / "model.onnx"))
    onnx.checker.check_model(model, full_check=True)
    assert {o.domain for o in model.opset_import} <= {"", "ai.onnx"}
    assert not any(n.op_type in ("Sign", "BipolarQuant") for n in model.graph.node)
    props = metadata(model)
    assert json.loads(props["xnorfault.binary_sites"]) == ["act1", "act2"]
    assert json.loads(props["xnorfault.training_fault_spec"])["activations"]["pos_to_neg"] == 0.04
    assert len(json.loads(props["xnorfault.classes"])) == 10
    assert json.loads(props["xnorfault.preprocessing"])["mean"]
    data = np.load(exported / "test.npz")
    assert data["x"].shape == (150, 1, 28, 28) and data["y"].shape == (150,)
    # parity with the trained torch model, checkpoint loaded independently here
    state = torch.load(exported / "run" / "jobs" / "ber=0.04" / "repeat-0.pt", weights_only=False)
    config = dict(state["model_config"])
    net = create_model(config.pop("name"), **config)
    net.load_state_dict(state["model"])
    net.eval()
    with torch.no_grad():
        reference = net(torch.from_numpy(data["x"])).numpy()
    logits = session(model).run(None, {"input": data["x"]})[0]
    assert np.mean(logits.argmax(1) == reference.argmax(1)) == 1.0
    assert np.max(np.abs(logits - reference)) <= 1e-4
    recorded = json.loads((exported / "run" / "record.json").read_text())["points"][0]["repeats"][
        0
    ]["epochs"][-1]
    assert np.mean(logits.argmax(1) == data["y"]) == pytest.approx(
        recorded["test_accuracy"], abs=1e-9
    )
    # dynamic batch
    assert session(model).run(None, {"input": data["x"][:1]})[0].shape == (1, 10)


@pytest.fixture(scope="module")
def clean(exported):
    return onnx.load(str(exported / "model.onnx"))


@pytest.fixture(scope="module")
def images(exported):
    return np.load(exported / "test.npz")["x"]


def flip_counts(model, rates, images, runs=3):
    injected = inject_flips(model, rates, expose=True)
    runner = session(injected)
    names = [o.name for o in runner.get_outputs()]
    totals = {}
    for run in range(runs):
        outputs = dict(
            zip(
                names,
                runner.run(None, {"input": images, "flip_seed": np.array(run_seed(7, run))}),
                strict=True,
            )
        )
        for site in json.loads(metadata(injected)["xnorfault.injected"])["sites"]:
            before, after = outputs[site], outputs[site + ".flipped"]
            flipped = before != after
            assert np.array_equal(after[flipped], -before[flipped])
            counts = totals.setdefault(site, np.zeros(4, np.int64))
            counts += [
                (flipped & (before > 0)).sum(),
                (before > 0).sum(),
                (flipped & (before < 0)).sum(),
                (before < 0).sum(),
            ]
    return totals


@pytest.mark.parametrize(
    "rates", [FlipRates(0.01, 0.01), FlipRates(0.1, 0.02), FlipRates(0.0, 0.3)]
)
def test_injected_flip_rates_per_site_and_polarity(clean, images, rates):
    for site, (pos_flips, pos, neg_flips, neg) in flip_counts(clean, rates, images).items():
        assert_rate(int(pos_flips), int(pos), rates.pos_to_neg)
        assert_rate(int(neg_flips), int(neg), rates.neg_to_pos)
        assert site in ("act1", "act2")


def test_graph_draws_match_the_reference_generator(clean, images):
    injected = inject_flips(clean, FlipRates(0.05, 0.05), expose=True)
    runner = session(injected)
    names = [o.name for o in runner.get_outputs()]
    outputs = dict(
        zip(names, runner.run(None, {"input": images, "flip_seed": np.array(123)}), strict=True)
    )
    site = outputs["act1"].ravel()
    count, p = site.size, 0.05
    draws = int(np.ceil(count * p + 10 * np.sqrt(count * p) + 16))
    u = uniforms(stream_keys(123, 0)[0], draws)
    positions = np.cumsum(np.minimum(np.floor(np.log(u) / np.log1p(-p)), count) + 1) - 1
    expected = np.zeros(count, bool)
    expected[positions[positions < count].astype(np.int64)] = True
    assert np.array_equal(expected, outputs["act1"].ravel() != outputs["act1.flipped"].ravel())


@pytest.mark.parametrize("rates", [FlipRates(0.02, 0.02), FlipRates(0.08, 0.01), FlipRates(0, 0.3)])
def test_every_site_flips_exactly_as_the_numpy_reference(clean, images, rates):
    injected = inject_flips(clean, rates, expose=True)
    runner = session(injected)
    names = [o.name for o in runner.get_outputs()]
    sites = json.loads(metadata(injected)["xnorfault.binary_sites"])
    for seed in (0, 5, run_seed(3, 17)):
        feeds = {"input": images, "flip_seed": np.array(seed)}
        outputs = dict(zip(names, runner.run(None, feeds), strict=True))
        for index, site in enumerate(sites):
            expected = flip_mask(outputs[site], rates.pos_to_neg, rates.neg_to_pos, seed, index)
            assert np.array_equal(expected, outputs[site] != outputs[site + ".flipped"])


def test_one_bitflip_node_per_site_and_one_function(clean):
    injected = inject_flips(clean, FlipRates(0.01, 0.02))
    sites = json.loads(metadata(injected)["xnorfault.injected"])["sites"]
    flips = [n for n in injected.graph.node if (n.domain, n.op_type) == ("xnorfault", "BitFlip")]
    assert [n.input[0] for n in flips] == sites
    assert [n.output[0] for n in flips] == [site + ".flipped" for site in sites]
    assert [list(n.input[1:]) for n in flips] == [
        [*rate_input_names(site), "flip_seed"] for site in sites
    ]
    assert [(f.domain, f.name) for f in injected.functions] == [("xnorfault", "BitFlip")]
    assert len(injected.graph.node) == len(clean.graph.node) + len(sites)  # nothing else added
    again = inject_flips(injected, FlipRates(0.1, 0.1))  # re-injection replaces the nodes
    assert len(again.graph.node) == len(injected.graph.node) and len(again.functions) == 1


def test_flips_injected_as_loose_nodes_by_earlier_versions_are_replaced():
    legacy = onnx.load(str(DATA / "legacy_injected_where.onnx"))
    assert len(legacy.graph.node) > 60 and not legacy.functions
    injected = inject_flips(legacy, FlipRates.symmetric(0.1), expose=True)
    assert [n.op_type for n in injected.graph.node] == [
        "GreaterOrEqual",
        "Where",
        "BitFlip",
        "ReduceSum",
    ]
    assert not [i for i in injected.graph.initializer if i.name.startswith("xnorfault_flip.")]
    x = np.random.default_rng(6).standard_normal((50, 64)).astype(np.float32)
    act, flipped = session(injected).run(["act", "act.flipped"], {"x": x, "flip_seed": np.array(1)})
    assert np.array_equal(flipped != act, flip_mask(act, 0.1, 0.1, 1, 0))


def test_zero_rate_is_bit_identical_to_the_clean_model(clean, images):
    faulty = session(inject_flips(clean, FlipRates(0.0, 0.0))).run(None, {"input": images})[0]
    assert np.array_equal(faulty, session(clean).run(None, {"input": images})[0])


def test_rates_are_inputs_with_defaults(clean, images):
    runner = session(inject_flips(clean, FlipRates(0.0, 0.0), expose=True))
    names = [o.name for o in runner.get_outputs()]
    pos, neg = rate_input_names("act2")
    feeds = {
        "input": images,
        "flip_seed": np.array(3),
        pos: np.array(0.2, np.float32),
        neg: np.array(0.2, np.float32),
    }
    outputs = dict(zip(names, runner.run(None, feeds), strict=True))
    assert np.array_equal(outputs["act1"], outputs["act1.flipped"])  # default 0 kept
    assert 0.15 < np.mean(outputs["act2"] != outputs["act2.flipped"]) < 0.25


def test_seeds_reproduce_and_never_repeat(clean, images):
    runner = session(inject_flips(clean, FlipRates.symmetric(0.05)))
    batch = images[:4]
    first = runner.run(None, {"input": batch, "flip_seed": np.array(run_seed(1, 0))})[0]
    again = session(inject_flips(clean, FlipRates.symmetric(0.05))).run(
        None, {"input": batch, "flip_seed": np.array(run_seed(1, 0))}
    )[0]
    assert np.array_equal(first, again)  # equal seeds, other session: identical
    other = runner.run(None, {"input": batch, "flip_seed": np.array(run_seed(2, 0))})[0]
    assert not np.array_equal(first, other)  # another campaign: different
    unfed = [runner.run(None, {"input": batch})[0] for _ in range(2)]
    assert not np.array_equal(*unfed)  # default seed: fresh each run


def test_masks_stay_distinct_over_a_long_campaign():
    # 10^5 runs of one 512-element site: onnxruntime's own generator would need care here;
    # every mask of the counter-based draw is new.
    model = where_graph(512)
    runner = session(inject_flips(model, FlipRates.symmetric(0.05), expose=True))
    x = np.random.default_rng(0).standard_normal((1, 512)).astype(np.float32)
    seen = set()
    for run in range(100_000):
        clean_out, flipped = runner.run(
            ["act", "act.flipped"], {"x": x, "flip_seed": np.array(run_seed(5, run))}
        )
        seen.add(np.packbits(clean_out != flipped).tobytes())
    assert len(seen) == 100_000


def test_mram_mode_matches_the_device_model(run_cli, exported, tmp_path):
    from xnorfault.mram import load_device

    code, out, err = run_cli(
        "inject",
        str(exported / "model.onnx"),
        "-o",
        str(tmp_path / "f.onnx"),
        "--voltage",
        "0.5",
        "--pulse",
        "10ns",
        "--mram-device",
        "asymmetric",
        "--json",
    )
    assert code == 0, err
    summary = json.loads(out)
    device = load_device("asymmetric")
    assert summary["rates"]["act1"]["pos_to_neg"] == pytest.approx(
        device.wer(0.5, 1e-8, "ap_to_p"), rel=1e-6
    )
    assert summary["rates"]["act1"]["neg_to_pos"] == pytest.approx(
        device.wer(0.5, 1e-8, "p_to_ap"), rel=1e-6
    )
    info = json.loads(metadata(onnx.load(str(tmp_path / "f.onnx")))["xnorfault.injected"])
    assert info["source"]["voltage"] == 0.5 and info["source"]["device"]["name"] == "asymmetric"


def test_reinjection_replaces_rates(clean):
    once = inject_flips(clean, FlipRates.symmetric(0.01))
    twice = inject_flips(once, FlipRates.symmetric(0.2))
    assert len(twice.graph.node) == len(once.graph.node)
    defaults = {
        t.name: float(numpy_helper.to_array(t))
        for t in twice.graph.initializer
        if t.name.startswith("p_flip")
    }
    assert len(defaults) == 4 and all(v == pytest.approx(0.2) for v in defaults.values())
    assert [i.name for i in twice.graph.input] == [i.name for i in once.graph.input]


def test_layers_restrict_the_sites(clean):
    injected = inject_flips(clean, FlipRates.symmetric(0.1), sites=["act2"])
    assert json.loads(metadata(injected)["xnorfault.injected"])["sites"] == ["act2"]
    with pytest.raises(XnorfaultError, match="unknown site.*act3.*act1, act2"):
        inject_flips(clean, FlipRates.symmetric(0.1), sites=["act3"])


# --- foreign graphs -----------------------------------------------------------------------------


def where_graph(width, comparison="GreaterOrEqual", scale=1.0):
    plus, minus = (
        (scale, -scale) if comparison in ("GreaterOrEqual", "Greater") else (-scale, scale)
    )
    nodes = [
        helper.make_node(comparison, ["x", "zero"], ["cond"]),
        helper.make_node("Where", ["cond", "plus", "minus"], ["act"]),
        helper.make_node("ReduceSum", ["act"], ["y"], keepdims=0),
    ]
    inits = [
        numpy_helper.from_array(np.array(v, np.float32), n)
        for n, v in (("zero", 0.0), ("plus", plus), ("minus", minus))
    ]
    graph = helper.make_graph(
        nodes,
        "where",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


@pytest.mark.parametrize("comparison", ["GreaterOrEqual", "Greater", "Less"])
def test_foreign_where_pattern(comparison):
    model = where_graph(4000, comparison, scale=0.5)
    injected = inject_flips(model, FlipRates.symmetric(0.1), expose=True)
    x = np.random.default_rng(1).standard_normal((2, 4000)).astype(np.float32)
    clean_out, flipped = session(injected).run(
        ["act", "act.flipped"], {"x": x, "flip_seed": np.array(9)}
    )
    assert set(np.unique(np.abs(clean_out)).tolist()) == {0.5}
    assert_rate(int((clean_out != flipped).sum()), clean_out.size, 0.1)


def test_foreign_sign_pattern():
    nodes = [helper.make_node("Sign", ["x"], ["s"]), helper.make_node("MatMul", ["s", "w"], ["y"])]
    weight = numpy_helper.from_array(np.ones((3000, 2), np.float32), "w")
    graph = helper.make_graph(
        nodes,
        "sign",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3000])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    injected = inject_flips(model, FlipRates.symmetric(0.2), expose=True)
    x = np.random.default_rng(2).standard_normal((1, 3000)).astype(np.float32)
    s, flipped, y = session(injected).run(
        ["s", "s.flipped", "y"], {"x": x, "flip_seed": np.array(1)}
    )
    assert_rate(int((s != flipped).sum()), s.size, 0.2)
    assert np.allclose(y, flipped.sum())


def test_foreign_qonnx_bipolar_quant_is_lowered_and_injected():
    weight = np.random.default_rng(3).standard_normal((50, 6)).astype(np.float32)
    nodes = [
        helper.make_node("BipolarQuant", ["x", "scale"], ["act"], domain="qonnx.custom_op.general"),
        helper.make_node("BipolarQuant", ["w", "wscale"], ["wq"], domain="qonnx.custom_op.general"),
        helper.make_node("MatMul", ["act", "wq"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(1.0, np.float32), "scale"),
        numpy_helper.from_array(np.array(0.5, np.float32), "wscale"),
        numpy_helper.from_array(weight, "w"),
    ]
    graph = helper.make_graph(
        nodes,
        "qonnx",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 50])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 6])],
        inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[
            helper.make_opsetid("", 18),
            helper.make_opsetid("qonnx.custom_op.general", 1),
        ],
    )
    zero = inject_flips(model, FlipRates.symmetric(0.0))
    assert {o.domain for o in zero.opset_import} == {"", "xnorfault"}  # QONNX lowered away
    x = np.random.default_rng(4).standard_normal((4, 50)).astype(np.float32)
    x[0, :5] = 0.0  # BipolarQuant maps 0 to +1
    y = session(zero).run(None, {"x": x})[0]
    expected = np.where(x >= 0, 1.0, -1.0) @ (np.where(weight >= 0, 1.0, -1.0) * 0.5)
    assert np.allclose(y, expected, atol=1e-5)
    faulty = inject_flips(model, FlipRates.symmetric(0.5), expose=True)
    act, flipped = session(faulty).run(["act", "act.flipped"], {"x": x, "flip_seed": np.array(2)})
    assert 0.3 < np.mean(act != flipped) < 0.7


def test_graph_without_binary_sites(tmp_path, run_cli):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    path = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    code, _, err = run_cli("inject", str(path), "-o", str(tmp_path / "out.onnx"), "--ber", "0.1")
    assert (
        code == 2 and err.startswith("error: no binary activation found") and err.count("\n") == 1
    )
    assert not (tmp_path / "out.onnx").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--ber", "0.1", "--voltage", "0.5"],
            "one source of fault rates, not --ber and --voltage",
        ),
        ([], "give one of --ber"),
        (["--ber", "0.1,0.2"], "--ber takes one value here"),
        (["--ber", "1.5"], "between 0 and 1"),
        (["--voltage", "0.5"], "needs --pulse"),
        (["--ber", "0.1", "--layers", "act7"], "unknown site"),
    ],
)
def test_inject_bad_options(run_cli, exported, tmp_path, args, message):
    code, _, err = run_cli(
        "inject", str(exported / "model.onnx"), "-o", str(tmp_path / "f.onnx"), *args
    )
    assert code == 2 and message in err and err.count("\n") == 1


def test_malformed_and_missing_model_files(tmp_path, run_cli):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage that is not a protobuf")
    with pytest.raises(XnorfaultError, match="not a valid ONNX model"):
        load_model(bad)
    code, _, err = run_cli(
        "inject", str(tmp_path / "absent.onnx"), "-o", str(tmp_path / "o.onnx"), "--ber", "0.1"
    )
    assert code == 2 and "not found" in err


def test_export_counts_the_images_whose_logits_differ(run_cli, exported, tmp_path):
    """The parity summary counts the test images whose logits differ beyond its tolerance: none
    exactly when the largest difference is within it."""
    code, out, err = run_cli(
        "export", str(exported / "run"), "-o", str(tmp_path / "m.onnx"), "--json"
    )
    assert code in (0, None), err
    summary = json.loads(out)
    assert summary["parity_tolerance"] == 1e-3
    assert 0 <= summary["images_differing"] <= summary["test_images"]
    assert (summary["images_differing"] > 0) == (summary["max_abs_logit_difference"] > 1e-3)


def test_export_errors(run_cli, exported, tmp_path):
    code, _, err = run_cli(
        "export", str(exported / "run"), "-o", str(tmp_path / "m.onnx"), "--point", "ber=0.3"
    )
    assert code == 2 and "no fault point 'ber=0.3'" in err
    code, _, err = run_cli("export", str(tmp_path), "-o", str(tmp_path / "m.onnx"))
    assert code == 2 and "not a run directory" in err
    code, _, err = run_cli(
        "export", str(exported / "run"), "-o", str(tmp_path / "m.onnx"), "--repeat", "3"
    )
    assert code == 2 and "no trained repeat 3" in err


def test_older_opset_models_are_converted():
    model = where_graph(1000)
    model.opset_import[0].version = 13
    injected = inject_flips(model, FlipRates.symmetric(0.1), expose=True)
    assert next(o.version for o in injected.opset_import if o.domain in ("", "ai.onnx")) >= 18
    x = np.random.default_rng(5).standard_normal((3, 1000)).astype(np.float32)
    clean_out, flipped = session(injected).run(
        ["act", "act.flipped"], {"x": x, "flip_seed": np.array(4)}
    )
    assert_rate(int((clean_out != flipped).sum()), clean_out.size, 0.1)


def test_flips_of_an_injected_model_can_be_exposed(clean, images):
    """Re-injecting with ``expose`` (as a deployed bundle's check does) keeps shapes and rates."""
    injected = inject_flips(clean, FlipRates(0.0, 0.0))
    counts = flip_counts(injected, FlipRates(0.03, 0.1), images, runs=2)
    for pos_flips, pos, neg_flips, neg in counts.values():
        assert_rate(int(pos_flips), int(pos), 0.03)
        assert_rate(int(neg_flips), int(neg), 0.1)
