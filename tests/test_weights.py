"""Binary weights in MRAM: the read-disturb solver against the Legendre solution, the exact
composition of write, retention and read-disturb events against an event-by-event simulation,
chips' fixed weight faults (reproducible, distinct, at the composed rate within binomial
bounds), temperature, and ``evaluate --age`` / ``mram retention`` / ``mram wer --read``."""

import json

import numpy as np
import onnx
import pytest
from binomial_bounds import assert_rate
from onnx import TensorProto, helper

from xnorfault.errors import XnorfaultError
from xnorfault.graph.weights import binary_weight_tensors, flipped
from xnorfault.mram import MTJ, load_device, switching
from xnorfault.mram.disturb import switch_probability
from xnorfault.mram.weights import (
    WeightMemory,
    compose,
    draw_weight_chip,
    weight_error,
    weight_faults,
    weight_memory_options,
)
from xnorfault.runtimes.onnxruntime import OnnxRuntimeBackend

YEAR = 365.25 * 86400


# --- read disturb: the finite-volume solver ---------------------------------------------


@pytest.mark.parametrize(
    ("v", "t", "delta"),
    [(0.6, 5.0, 40.0), (0.8, 5.0, 20.0), (0.0, 5.0, 10.0), (0.33, 5.0, 33.3), (1.5, 2.0, 40.0)],
)
def test_switch_probability_matches_legendre_where_that_resolves_it(v, t, delta):
    legendre = 1 - float(switching.wer_exact(v, t, delta))
    assert legendre > 1e-7
    assert switch_probability(v, t, delta) == pytest.approx(legendre, rel=1e-3)


def test_switch_probability_resolves_reads_far_below_the_legendre_floor():
    # the Legendre series cannot tell these apart from 0 (or from its ~1e-8 floor)
    voltages = [0.0, 0.1, 0.2, 0.3]
    values = [switch_probability(v, 2.5, 40.0) for v in voltages]
    assert all(0 < value < 1e-9 for value in values)
    assert all(a < b for a, b in zip(values, values[1:], strict=False))
    # longer pulses switch more, and the two halves of a pulse add up to about the whole
    assert switch_probability(0.3, 5.0, 40.0) > switch_probability(0.3, 2.5, 40.0)
    # the thermal leak at v = 0 has the order of the Néel–Brown estimate t τ_D e^{-Δ}/τ_0
    leak = switch_probability(0.0, 2.5, 40.0)
    neel_brown = 5e-9 * np.exp(-40.0) / 1e-9
    assert 0.1 < leak / neel_brown < 10


def test_read_disturb_is_one_direction_of_the_device():
    device = MTJ(vc0_ap_to_p=0.25)
    pushing_out_of_p = device.read_disturb(0.1, 5e-9, "p_to_ap")
    pushing_out_of_ap = device.read_disturb(0.1, 5e-9, "ap_to_p")
    # the lower critical voltage (AP→P) is disturbed more by the same read
    assert pushing_out_of_ap > pushing_out_of_p > 0


# --- the exact composition against an event-by-event simulation --------------------------


def simulate(p0, rate, age, reads, q_right, q_wrong, cells, rng):
    """Every event drawn for every cell: the write, then per interval a retention flip with
    ρ and a read that switches a right cell with q_right and a wrong one with q_wrong."""
    wrong = rng.random(cells) < p0
    steps = max(reads, 1)
    rho = 0.5 * (1 - np.exp(-2 * rate * age / steps))
    for _ in range(steps):
        wrong ^= rng.random(cells) < rho
        if reads:
            draw = rng.random(cells)
            turned = ~wrong & (draw < q_right)
            restored = wrong & (draw < q_wrong)
            wrong = (wrong | turned) & ~restored
    return int(wrong.sum())


@pytest.mark.parametrize(
    ("case", "p0", "rate", "age", "reads", "q_right", "q_wrong"),
    [
        ("write only", 0.08, 0.0, 0.0, 0, 0.0, 0.0),
        ("retention only", 0.0, 1e-3, 60.0, 0, 0.0, 0.0),
        ("read only", 0.0, 0.0, 1.0, 40, 0.004, 0.0),
        ("write, retention, disturbing reads", 0.05, 1e-3, 40.0, 40, 0.003, 0.0),
        ("write, retention, restoring reads", 0.2, 2e-3, 40.0, 40, 0.0, 0.01),
    ],
)
def test_composition_equals_the_simulated_events(case, p0, rate, age, reads, q_right, q_wrong):
    cells = 60_000
    wrong = simulate(p0, rate, age, reads, q_right, q_wrong, cells, np.random.default_rng(7))
    exact = float(compose(p0, rate, age, reads, q_right, q_wrong))
    assert 0.01 < exact < 0.5, case
    assert_rate(wrong, cells, exact)


def test_composition_keeps_tiny_probabilities():
    # 1e9 reads of 1e-20 each and a retention rate of 1e-25/s over a year: first order holds
    value = float(compose(0.0, 1e-25, YEAR, 1e9, 1e-20, 0.0))
    assert value == pytest.approx(1e9 * 1e-20 + 1e-25 * YEAR, rel=1e-6)


# --- chips ---------------------------------------------------------------------------------


SIGNS = {"conv": np.arange(3000) % 2 == 0, "fc": np.arange(5000) % 3 == 0}
SIZES = {name: signs.size for name, signs in SIGNS.items()}

SETTINGS = {
    "write only": dict(write_voltage=0.5, write_pulse=10e-9),
    "retention only": dict(age=0.3 * YEAR),
    "read only": dict(age=1.0, read_voltage=0.15, read_pulse=5e-9, inferences=4e6),
    "combined": dict(
        write_voltage=0.52,
        write_pulse=10e-9,
        erased="pos",
        age=0.2 * YEAR,
        read_voltage=0.15,
        inferences=3e6,
    ),
}


@pytest.mark.parametrize("case", list(SETTINGS))
def test_share_of_wrong_weights_over_chips_is_the_composed_probability(case):
    device = MTJ()
    memory = WeightMemory(**SETTINGS[case])
    wrong_pos, wrong_neg = weight_error(device, memory)
    assert max(wrong_pos, wrong_neg) > 0.01, case
    counts = {True: 0, False: 0}
    trials = {True: 0, False: 0}
    for index in range(40):
        chip = draw_weight_chip(device, SIZES, seed=11, index=index)
        masks, _ = weight_faults(chip, SIGNS, device, memory)
        for name, signs in SIGNS.items():
            for value in (True, False):
                counts[value] += int(masks[name][signs == value].sum())
                trials[value] += int((signs == value).sum())
    assert_rate(counts[True], trials[True], wrong_pos)
    assert_rate(counts[False], trials[False], wrong_neg)


def test_a_chip_is_fixed_and_chips_differ():
    device, memory = MTJ(), WeightMemory(write_voltage=0.5)
    first = weight_faults(draw_weight_chip(device, SIZES, 5, 2), SIGNS, device, memory)[0]
    again = weight_faults(draw_weight_chip(device, SIZES, 5, 2), SIGNS, device, memory)[0]
    other = weight_faults(draw_weight_chip(device, SIZES, 5, 3), SIGNS, device, memory)[0]
    assert all(np.array_equal(first[n], again[n]) for n in SIZES)
    assert any(not np.array_equal(first[n], other[n]) for n in SIZES)
    # a chip's faults at a later age contain those of an earlier one while P grows
    young = weight_faults(draw_weight_chip(device, SIZES, 5, 2), SIGNS, device, memory.at_age(1e5))[
        0
    ]
    old = weight_faults(draw_weight_chip(device, SIZES, 5, 2), SIGNS, device, memory.at_age(1e7))[0]
    assert all(np.all(old[n][young[n]]) for n in SIZES)


def test_varied_cells_make_the_mean_wrong_share_exceed_the_nominal():
    device = load_device("paper-varied")
    memory = WeightMemory(age=86400.0)
    from xnorfault.mram.weights import WeightTables

    tables = WeightTables.build(device, memory)
    chip = draw_weight_chip(device, SIZES, 0, 0)
    masks, expected = weight_faults(chip, SIGNS, device, memory, tables)
    nominal = weight_error(device, memory)[0]
    # weak cells (low Δ) forget exponentially faster than strong ones keep: Jensen
    assert min(expected.values()) > 2 * nominal


def test_age_zero_at_the_conventional_point_leaves_at_most_its_write_errors():
    device = MTJ()
    wrong_pos, wrong_neg = weight_error(device, WeightMemory())
    assert wrong_pos <= 1.0001e-6 and wrong_neg <= 1.0001e-6
    # erased to +1: the +1 weights are never written, so never wrong at age 0
    assert weight_error(device, WeightMemory(erased="pos"))[0] == 0.0


def test_temperature_raises_retention_errors_monotonically():
    device = MTJ()
    kelvins = [273.15, 298.15, 323.15, 358.15, 398.15]
    flips = [float(device.at_temperature(k).retention_flip(86400.0)) for k in kelvins]
    assert all(a < b for a, b in zip(flips, flips[1:], strict=False))
    errors = [weight_error(device, WeightMemory(age=86400.0, temperature=k))[0] for k in kelvins]
    assert all(a < b for a, b in zip(errors, errors[1:], strict=False))
    assert device.at_temperature(358.15).delta == pytest.approx(40 * 298.15 / 358.15)


def test_weight_memory_options_are_checked():
    device = MTJ()
    memory, ages = weight_memory_options(device, "10y,1d", inferences="10/s", temperature="85C")
    assert ages == [86400.0, 10 * YEAR]
    assert memory.inference_rate == 10 and memory.temperature == pytest.approx(358.15)
    assert memory.at_age(86400.0).reads == pytest.approx(864000)
    with pytest.raises(XnorfaultError, match="give --age too"):
        weight_memory_options(device, None, temperature="85C")
    with pytest.raises(XnorfaultError, match="temperature"):
        weight_memory_options(device, "1d", temperature="85")
    with pytest.raises(XnorfaultError, match="breakdown"):
        weight_memory_options(device, "1d", weight_voltage="1.5V")


def test_device_file_weight_memory_table(tmp_path):
    text = (load_device("paper").name, None)
    assert text
    path = tmp_path / "hot.toml"
    path.write_text(
        '[switching]\ndelta = 40.0\ntau_d = "2ns"\nvc0_p_to_ap = "0.3V"\n'
        '[breakdown]\nvbd = "1.2V"\ngamma = 83.0\ntime_at_vbd = "1ns"\n'
        "[resistance]\nr_p = 3000.0\nr_ap = 6000.0\n"
        '[retention]\nattempt_time = "1ns"\nreference_temperature = "25C"\n'
        '[weight_memory]\ntemperature = "85C"\nwrite_voltage = "0.6V"\nreads_per_inference = 3\n'
    )
    device = load_device(str(path))
    memory = WeightMemory.from_device(device, write_voltage=0.55)
    assert memory.temperature == pytest.approx(358.15)
    assert memory.write_voltage == 0.55  # the command line wins
    assert memory.reads_per_inference == 3
    path.write_text(path.read_text() + "colour = 1\n")
    with pytest.raises(XnorfaultError, match="weight_memory.colour"):
        WeightMemory.from_device(load_device(str(path)))


# --- the graph side -----------------------------------------------------------------------


def constant_weight_model():
    """x (N, 8) → MatMul with a ±0.5 weight held in a Constant node (as lowered QONNX)."""
    weight = np.where(np.arange(32).reshape(8, 4) % 3 == 0, 0.5, -0.5).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node(
                "Constant", [], ["w"], value=onnx.numpy_helper.from_array(weight, "w")
            ),
            helper.make_node("Sign", ["x"], ["s"]),
            helper.make_node("MatMul", ["s", "w"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), weight


def test_constant_weights_are_lifted_and_flipped_in_the_runtime():
    model, weight = constant_weight_model()
    lifted, tensors = binary_weight_tensors(model)
    assert list(tensors) == ["w"] and np.array_equal(tensors["w"], weight)
    assert "w" in {t.name for t in lifted.graph.initializer}
    backend = OnnxRuntimeBackend(model, threads=1)
    assert set(backend.binary_weights()) == {"w"}
    x = np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32)
    signs = np.where(x >= 0, 1.0, -1.0)
    clean = backend.run(x, {}, 0)
    assert np.allclose(clean, signs @ weight)
    mask = np.zeros(weight.size, bool)
    mask[[0, 5, 17]] = True
    backend.set_weight_faults(flipped(backend.binary_weights(), {"w": mask}))
    wrong = weight.copy().reshape(-1)
    wrong[mask] *= -1
    # the same wrong weights in every run, whatever the flip seed
    for seed in (0, 1, 2):
        assert np.allclose(backend.run(x, {}, seed), signs @ wrong.reshape(8, 4))
    backend.set_weight_faults(None)
    assert np.allclose(backend.run(x, {}, 3), clean)


# --- evaluate --age -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tiny_model):
    from helpers import TINY_LENET4

    return tiny_model(*TINY_LENET4)


def evaluate_ages(run_cli, trained, *extra):
    code, out, err = run_cli(
        "evaluate",
        str(trained / "model.onnx"),
        *["--data", str(trained / "test.npz"), "--repeats", "1", "--threads", "1"],
        *extra,
        "--json",
    )
    assert code == 0, err
    return json.loads(out)


def test_evaluate_age_sweep_on_chips(run_cli, trained):
    result = evaluate_ages(
        run_cli,
        trained,
        *["--age", "10y,0,1y", "--chips", "3", "--inferences", "10/s"],
        *["--max-drop", "0.05", "--chip-seed", "4"],
    )
    baseline = result["baseline_accuracy"]
    points = result["points"]
    assert [p["age"] for p in points] == [0.0, YEAR, 10 * YEAR]
    first, _, last = points
    # age 0 at the conventional point: only the write errors, 1e-6 of the 425,000 weights
    # (0.43 per chip; 6 is the 99.9 % Poisson bound of three chips), and none of them moves
    # an image's class
    assert first["weight_error"]["pos"] <= 1.0001e-6
    assert first["binary_weights"] * first["expected_wrong_share"] < 0.5
    assert sum(first["wrong_weights"]) <= 6
    assert first["chips"] == [baseline] * 3
    # ten years at 25 °C randomise the weights: every chip loses
    assert last["wrong_share"] > 0.3
    assert all(a < baseline - 0.2 for a in last["chips"])
    assert len(last["chips"]) == 3 and last["yield"] == 0.0
    for point in points:
        expected = point["expected_wrong_share"] * point["binary_weights"]
        assert abs(np.mean(point["wrong_weights"]) - expected) < 5 * np.sqrt(expected + 1)
    assert result["max_drop"]["age"] in (0.0, YEAR)
    assert result["weight_memory"]["inference_rate"] == 10
    # the same chips again: the same wrong weights and accuracies
    again = evaluate_ages(
        run_cli,
        trained,
        *["--age", "1y", "--chips", "2", "--inferences", "10/s"],
        *["--chip-seed", "4"],
    )
    assert again["points"][0]["wrong_weights"] == points[1]["wrong_weights"][:2]
    assert again["points"][0]["chips"] == points[1]["chips"][:2]


def test_every_binary_weight_tensor_of_a_trained_model_takes_its_faults(trained, tmp_path):
    """Conv weights too (onnxruntime reorders them when it loads a model): a chip's faults
    give the logits of the same model file with those weights negated on disk."""
    from onnx import numpy_helper

    backend = OnnxRuntimeBackend(trained / "model.onnx", threads=1)
    images = np.load(trained / "test.npz")["x"][:40]
    clean = backend.run(images, {}, 0)
    weights = backend.binary_weights()
    assert len(weights) == 2
    rng = np.random.default_rng(1)
    for name, values in weights.items():
        mask = rng.random(values.size) < 0.2
        backend.set_weight_faults(flipped(weights, {name: mask}))
        faulty = backend.run(images, {}, 0)
        model = onnx.load(trained / "model.onnx")
        on_disk = {t.name: t for t in model.graph.initializer}
        if name in on_disk:
            wrong = values.copy().reshape(-1)
            wrong[mask] *= -1
            on_disk[name].CopyFrom(numpy_helper.from_array(wrong.reshape(values.shape), name))
            onnx.save(model, tmp_path / "wrong.onnx")
            reference = OnnxRuntimeBackend(tmp_path / "wrong.onnx", threads=1)
            assert np.allclose(faulty, reference.run(images, {}, 0), atol=1e-4)
        assert not np.allclose(faulty, clean), name
    backend.set_weight_faults(None)
    assert np.array_equal(backend.run(images, {}, 0), clean)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--temperature", "85C"], "give --age too"),
        (["--age", "1y", "--ber", "0,0.1"], "one activation operating point"),
        (["--age", "1y", "--per-layer"], "--per-layer and --age"),
        (["--age", "1y", "--temperature", "85"], "temperature"),
        (["--age", "1y", "--inferences", "10/fortnight"], "unknown time unit"),
        (["--age", "-1d"], "age"),
        (["--age", "1y", "--backend", "lce"], "bitpacked constants"),
    ],
)
def test_bad_weight_requests_are_one_line_errors(run_cli, trained, args, message):
    code, _, err = run_cli(
        "evaluate", str(trained / "model.onnx"), "--data", str(trained / "test.npz"), *args
    )
    assert code == 2
    assert message in err and "Traceback" not in err


def test_mram_retention_and_read_disturb_commands(run_cli):
    code, out, err = run_cli(
        "mram", "retention", "--age", "1d,1y", "--temperature", "25C,85C", "--json"
    )
    assert code == 0, err
    points = json.loads(out)["points"]
    assert len(points) == 4
    for point in points:
        hot = MTJ().at_temperature(point["temperature"])
        assert point["wrong_value"] == pytest.approx(float(hot.retention_flip(point["age"])))
    assert points[2]["wrong_value"] > points[0]["wrong_value"]  # 85 °C beats 25 °C at 1 d
    code, out, err = run_cli(
        "mram", "wer", "--read", "--voltage", "0.05,0.1", "--pulse", "5ns", "--json"
    )
    assert code == 0, err
    low, high = json.loads(out)["points"]
    assert 0 < low["disturb_p_to_ap"] < high["disturb_p_to_ap"] < 1e-8
    assert high["disturb_p_to_ap"] == pytest.approx(float(MTJ().read_disturb(0.1, 5e-9)))
