"""Write models (iid, previous, reset): the ONNX functions against the sequential numpy
reference draw for draw, the statistics a write model promises (binomial bounds, fixed seeds),
and the same models in training's torch flips."""

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from binomial_bounds import assert_rate
from onnx import TensorProto, helper

from xnorfault.faults import FaultSpec, FlipRates, WriteModel
from xnorfault.graph.generator import initial_values, write_mask
from xnorfault.graph.rewrite import inject_flips
from xnorfault.models.flips import BitFlip, flip_indices, previous_flips

PER_IMAGE = (7, 5)


def sign_model():
    graph = helper.make_graph(
        [helper.make_node("Sign", ["x"], ["s"]), helper.make_node("Identity", ["s"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *PER_IMAGE])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", *PER_IMAGE])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def session(rates: FlipRates, write: WriteModel):
    options = ort.SessionOptions()
    options.log_severity_level = 3
    injected = inject_flips(sign_model(), rates, write=write)
    return ort.InferenceSession(injected.SerializeToString(), options)


def wrong(runner, images, seed):
    """Which elements the injected model reads back wrong."""
    read = runner.run(None, {"x": images, "flip_seed": np.array(seed, np.int64)})[0]
    return read != np.where(images >= 0, 1.0, -1.0)


def stream(rng, images, constant_share=0.5):
    """Activations of ``images`` images; at a share of the addresses the value never changes
    along the stream (long runs of the same value, where failures chain)."""
    values = rng.standard_normal((images, *PER_IMAGE)).astype(np.float32)
    fixed = rng.random(PER_IMAGE) < constant_share
    signs = np.where(rng.random(PER_IMAGE) < 0.5, 1.0, -1.0)
    return np.where(fixed, np.abs(values) * signs, values).astype(np.float32)


WRITE_MODELS = [
    WriteModel("iid"),
    WriteModel("reset", "neg"),
    WriteModel("reset", "pos"),
    WriteModel("previous", "neg"),
    WriteModel("previous", "pos"),
    WriteModel("previous", "random"),
]


@pytest.mark.parametrize("write", WRITE_MODELS, ids=lambda w: w.label)
@pytest.mark.parametrize("rates", [(0.3, 0.3), (0.5, 0.1), (0.0, 0.4), (0.9, 0.8), (1.0, 1.0)])
def test_onnx_equals_the_sequential_reference(write, rates):
    """The sparse resolution of BitFlipPrevious (walking back over runs of failures) flips
    exactly what the write-by-write recursion of generator.write_mask flips, up to p = 1 where
    every address fails all along its stream."""
    runner = session(FlipRates(*rates), write)
    rng = np.random.default_rng(5)
    for seed in range(12):
        images = stream(rng, 16)
        expected = write_mask(images, *rates, seed, 0, write.model, write.initial_state)
        assert np.array_equal(wrong(runner, images, seed), expected)


def test_previous_fails_only_where_a_write_must_switch():
    """Under previous, the read value of image i − 1 is what the cell holds when image i
    writes: among writes that must switch, each direction fails at its own rate (binomial
    bounds); writes that need not switch never read wrong."""
    p_pos, p_neg = 0.08, 0.03
    runner = session(FlipRates(p_pos, p_neg), WriteModel("previous", "neg"))
    rng = np.random.default_rng(11)
    counts = np.zeros((2, 2), np.int64)  # [written +1, written −1] × [switching writes, failures]
    unswitched_failures = 0
    for seed in range(40):
        images = stream(rng, 64, constant_share=0.3)
        targets = np.where(images >= 0, 1.0, -1.0)
        read = np.where(wrong(runner, images, seed), -targets, targets)
        held = np.concatenate([-np.ones((1, *PER_IMAGE)), read[:-1]])
        switching = held != targets
        failed = read != targets
        for row, value in enumerate((1.0, -1.0)):
            written = targets == value
            counts[row] += [(switching & written).sum(), (failed & written).sum()]
        unswitched_failures += int((failed & ~switching).sum())
    assert unswitched_failures == 0
    assert_rate(int(counts[0, 1]), int(counts[0, 0]), p_pos)
    assert_rate(int(counts[1, 1]), int(counts[1, 0]), p_neg)


def test_a_failed_write_persists_into_the_next_comparison():
    """Initial state +1, both rates 1: image 0 writes −1 and fails (reads +1); image 1 writes
    +1 against that +1 and cannot fail. Under iid image 1 would flip too."""
    images = np.stack([-np.ones(PER_IMAGE), np.ones(PER_IMAGE)]).astype(np.float32)
    previous = wrong(session(FlipRates(1.0, 1.0), WriteModel("previous", "pos")), images, 3)
    assert previous[0].all() and not previous[1].any()
    assert wrong(session(FlipRates(1.0, 1.0), WriteModel("iid")), images, 3).all()


@pytest.mark.parametrize("state", ["neg", "pos"])
def test_reset_never_flips_the_reset_value(state):
    runner = session(FlipRates(0.2, 0.2), WriteModel("reset", state))
    rng = np.random.default_rng(2)
    images = stream(rng, 400)
    flipped = wrong(runner, images, 7)
    reset_value = images < 0 if state == "neg" else images >= 0
    assert not flipped[reset_value].any()
    assert_rate(int(flipped[~reset_value].sum()), int((~reset_value).sum()), 0.2)


def test_random_initial_states_are_fair_and_reproducible():
    first = initial_values(4, 1, 20000, "random")
    assert np.array_equal(first, initial_values(4, 1, 20000, "random"))
    assert not np.array_equal(first, initial_values(5, 1, 20000, "random"))
    assert_rate(int((first > 0).sum()), first.size, 0.5)


def test_injected_metadata_and_reinjection_under_another_write_model():
    from xnorfault.runtimes.onnxruntime import OnnxRuntimeBackend

    injected = inject_flips(sign_model(), FaultSpec.from_ber(0.3, write=WriteModel("previous")))
    info = json.loads({p.key: p.value for p in injected.metadata_props}["xnorfault.injected"])
    assert info["write"] == {"model": "previous", "initial_state": "neg"}
    assert [f.name for f in injected.functions] == ["BitFlipPrevious"]
    images = stream(np.random.default_rng(3), 32)
    with (
        OnnxRuntimeBackend(injected) as own,
        OnnxRuntimeBackend(injected, write=WriteModel()) as iid,
    ):
        assert own.write == WriteModel("previous") and iid.write == WriteModel()
        site = own.sites[0]
        rates = {site: FlipRates.symmetric(0.3)}
        targets = np.where(images >= 0, 1.0, -1.0)
        shown_previous = (own.run(images, rates, 9) != targets).sum()
        shown_iid = (iid.run(images, rates, 9) != targets).sum()
    assert shown_previous < shown_iid  # only writes that switch can fail


def test_write_model_options(run_cli, tmp_path):
    import onnx

    onnx.save(sign_model(), tmp_path / "m.onnx")
    out = tmp_path / "f.onnx"
    code, stdout, err = run_cli(
        "inject", str(tmp_path / "m.onnx"), "-o", str(out), "--ber", "0.1",
        "--write-model", "previous", "--initial-state", "random", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(stdout)["write_model"] == {"model": "previous", "initial_state": "random"}
    for args, message in (
        (
            ["--write-model", "reset", "--initial-state", "random"],
            "give --initial-state neg or pos",
        ),
        (["--initial-state", "pos"], "--initial-state goes with --write-model previous or reset"),
        (["--write-model", "sometimes"], "sometimes"),
    ):
        code, _, err = run_cli(
            "inject", str(tmp_path / "m.onnx"), "-o", str(out), "--ber", "0.1", *args
        )
        assert code == 2 and message in err and err.count("\n") == 1


# --- training ------------------------------------------------------------------------------------


def test_torch_previous_equals_the_sequential_reference():
    generator = torch.Generator().manual_seed(0)
    for trial in range(30):
        values = torch.from_numpy(stream(np.random.default_rng(trial), 16))
        failures = flip_indices(values, 0.7, 0.5, generator)
        shown = previous_flips(values, failures, "pos", generator)
        targets = np.where(values.numpy() >= 0, 1.0, -1.0).reshape(16, -1)
        failed = np.zeros(targets.size, bool)
        failed[failures.numpy()] = True
        failed = failed.reshape(16, -1)
        held, expected = np.ones(targets.shape[1]), np.zeros_like(failed)
        for image in range(16):
            expected[image] = failed[image] & (held != targets[image])
            held = np.where(expected[image], held, targets[image])
        got = np.zeros(targets.size, bool)
        got[shown.numpy()] = True
        assert np.array_equal(got, expected.ravel())


@pytest.mark.parametrize("write", WRITE_MODELS[1:], ids=lambda w: w.label)
def test_training_flips_follow_the_write_model(write):
    module = BitFlip("act")
    module.pos_to_neg = module.neg_to_pos = 0.1
    module.write_model, module.initial_state = write.model, write.initial_state
    module.generator = torch.Generator().manual_seed(1)
    values = torch.from_numpy(stream(np.random.default_rng(8), 256, constant_share=0.8))
    flipped = module(values) != values
    iid = BitFlip("act")
    iid.pos_to_neg = iid.neg_to_pos = 0.1
    iid.generator = torch.Generator().manual_seed(1)
    assert flipped.sum() < (iid(values) != values).sum()  # fewer writes can fail
    if write.model == "reset":
        reset_value = values < 0 if write.initial_state == "neg" else values >= 0
        assert not flipped[reset_value].any()


def test_the_functions_run_at_every_opset_onnxruntime_knows():
    """BitFlip and BitFlipPrevious are built at the model's opset: from 18 up to the newest
    onnxruntime implements every operator of (onnxruntime 1.32 has no RandomUniform kernel of
    opset 22), they flip exactly what the reference flips."""
    import onnx

    rng = np.random.default_rng(12)
    images = stream(rng, 8)
    ran = []
    for version in range(18, onnx.defs.onnx_opset_version() + 1):
        model = sign_model()
        model.opset_import[0].version = version
        for write in (WriteModel(), WriteModel("previous", "pos")):
            injected = inject_flips(model, FlipRates(0.3, 0.1), write=write)
            try:
                runner = ort.InferenceSession(injected.SerializeToString())
            except Exception as error:  # noqa: BLE001 - an opset newer than this onnxruntime
                assert version >= 22 and "Could not find an implementation" in str(error), error
                continue
            expected = write_mask(images, 0.3, 0.1, 4, 0, write.model, write.initial_state)
            assert np.array_equal(wrong(runner, images, 4), expected), (version, write)
            ran.append(version)
    assert set(range(18, 22)) <= set(ran)
