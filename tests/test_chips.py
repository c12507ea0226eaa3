"""Chips: per-address rate maps in the ONNX flips (against the numpy reference, draw for draw),
the WER table against exact solves, chips drawn reproducibly, the across-chip mean flip rate
against the population's exact mean (binomial bounds, fixed seeds), and ``evaluate --chips``."""

import json
from dataclasses import replace

import numpy as np
import onnxruntime as ort
import pytest
from binomial_bounds import assert_rate, clopper_pearson
from onnx import TensorProto, helper

from xnorfault.errors import XnorfaultError
from xnorfault.faults import AddressRates, FlipRates, WriteModel
from xnorfault.graph.generator import write_mask
from xnorfault.graph.rewrite import inject_flips
from xnorfault.mram import MTJ, load_device
from xnorfault.mram.chips import (
    CellWERTable,
    ChipPopulation,
    cell_wer_table,
    chip_rates,
    draw_chip,
)
from xnorfault.runtimes import open_backend
from xnorfault.runtimes.onnxruntime import OnnxRuntimeBackend

PER_IMAGE = (4, 25, 25)
ADDRESSES = int(np.prod(PER_IMAGE))
PULSE = 10e-9


def sign_model(per_image=PER_IMAGE):
    graph = helper.make_graph(
        [helper.make_node("Sign", ["x"], ["s"]), helper.make_node("Identity", ["s"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *per_image])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", *per_image])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def session(write: WriteModel):
    options = ort.SessionOptions()
    options.log_severity_level = 3
    injected = inject_flips(sign_model(), FlipRates(), write=write, rate_maps=True)
    return ort.InferenceSession(injected.SerializeToString(), options)


def read_wrong(runner, images, p_pos, p_neg, seed):
    feeds = {
        "x": images,
        "flip_seed": np.array(seed, np.int64),
        "p_flip_pos.s": np.asarray(p_pos, np.float32).reshape(-1),
        "p_flip_neg.s": np.asarray(p_neg, np.float32).reshape(-1),
    }
    return runner.run(None, feeds)[0] != np.where(images >= 0, 1.0, -1.0)


@pytest.mark.parametrize(
    "write",
    [WriteModel("iid"), WriteModel("reset", "neg"), WriteModel("previous", "random")],
    ids=lambda w: w.model,
)
def test_rate_maps_flip_exactly_as_the_numpy_reference(write):
    """Per-address maps (one or both directions) and a constant map: the ONNX function and the
    sequential numpy reference fail the same writes; a constant map draws exactly what the
    scalar draws."""
    rng = np.random.default_rng(5)
    runner = session(write)
    images = rng.standard_normal((6, *PER_IMAGE)).astype(np.float32)
    map_pos = rng.uniform(0, 0.3, ADDRESSES).astype(np.float32)
    map_neg = rng.uniform(0, 0.1, ADDRESSES).astype(np.float32)
    for p_pos, p_neg in [(map_pos, map_neg), (map_pos, np.float32(0.05)), (0.07, 0.07)]:
        got = read_wrong(runner, images, p_pos, p_neg, 11)
        expected = write_mask(images, p_pos, p_neg, 11, 0, write.model, write.initial_state)
        assert np.array_equal(got, expected) and got.any()
    constant = np.full(ADDRESSES, 0.07, np.float32)
    assert np.array_equal(
        read_wrong(runner, images, constant, constant, 11),
        read_wrong(runner, images, 0.07, 0.07, 11),
    )


def test_each_address_fails_at_its_own_rate():
    """Addresses at rate 0 never flip; the others flip at their own rate (99.9 % bounds) over
    a batch of 400 images."""
    runner = session(WriteModel("iid"))
    rng = np.random.default_rng(6)
    rates = np.where(
        np.arange(ADDRESSES) % 3 == 0, 0.0, np.where(np.arange(ADDRESSES) % 3 == 1, 0.02, 0.2)
    )
    images = rng.standard_normal((400, *PER_IMAGE)).astype(np.float32)
    wrong = read_wrong(runner, images, rates, rates, 3).reshape(400, -1)
    assert not wrong[:, rates == 0].any()
    for rate in (0.02, 0.2):
        chosen = wrong[:, rates == rate]
        assert_rate(int(chosen.sum()), chosen.size, rate)


def test_wer_table_matches_exact_solves():
    """The interpolated WER of drawn cells equals the exact solve of each cell to 1e-4
    (relative), both directions of an asymmetric, correlated device."""
    device = replace(
        load_device("asymmetric"),
        sigma_delta=0.08,
        sigma_vc0=0.04,
        variation="lognormal",
        variation_correlation=0.5,
    )
    table = CellWERTable(device, PULSE, (0.45, 0.6))
    delta, vc0 = device.sample_cells(40, np.random.default_rng(2), limit=6.0)
    for voltage in (0.45, 0.52, 0.6):
        for direction in ("p_to_ap", "ap_to_p"):
            exact = device.cell_wer(voltage, PULSE, delta, vc0, direction)
            interpolated = table.wer(voltage, delta, vc0, direction)
            assert np.allclose(interpolated, exact, rtol=1e-4, atol=0), (voltage, direction)
    with pytest.raises(XnorfaultError, match="outside the voltages"):
        table.wer(1.1, delta, vc0, "p_to_ap")
    measured_free = MTJ()
    with pytest.raises(XnorfaultError, match="no cell-to-cell variation"):
        draw_chip(measured_free, {"s": 3}, 0, 0)


def test_two_chips_differ_and_one_chip_is_reproducible_from_its_seed():
    device = load_device("paper-varied")
    addresses = {"a": 500, "b": 300}
    first, second = draw_chip(device, addresses, 7, 0), draw_chip(device, addresses, 7, 1)
    again = draw_chip(device, addresses, 7, 0)
    other_seed = draw_chip(device, addresses, 8, 0)
    for site in addresses:
        assert first.delta_factor[site].shape == (addresses[site],)
        assert not np.array_equal(first.delta_factor[site], second.delta_factor[site])
        assert not np.array_equal(first.vc0_factor[site], other_seed.vc0_factor[site])
        assert np.array_equal(first.delta_factor[site], again.delta_factor[site])
        assert np.array_equal(first.vc0_factor[site], again.vc0_factor[site])
    # chip 1 of a population is chip 1 drawn alone
    population = ChipPopulation.build(device, addresses, 3, 7, PULSE, (0.5,))
    drawn = list(population.chips())
    assert np.array_equal(drawn[1].delta_factor["a"], second.delta_factor["a"])
    table = population.table
    rates_first = chip_rates(first, table, 0.5)["a"]
    rates_second = chip_rates(second, table, 0.5)["a"]
    assert not np.allclose(rates_first.pos_to_neg, rates_second.pos_to_neg)


def test_across_chip_mean_flip_rate_is_the_population_mean():
    """One image through each of 60 chips: every write is Bernoulli with the population's mean
    WER (cells are independent draws), so the flips of each direction over 60 × 2,500 writes
    lie within 99.9 % Clopper–Pearson bounds of :meth:`MTJ.population_wer` — and exclude the
    nominal WER, which the weak cells of a varied population exceed."""
    device = replace(load_device("paper-varied"), sigma_delta=0.1)
    voltage = 0.5
    backend = OnnxRuntimeBackend(sign_model(), threads=1, rate_maps=True)
    assert backend.site_addresses == {"s": ADDRESSES}
    population = ChipPopulation.build(device, backend.site_addresses, 60, 1, PULSE, (voltage,))
    image = np.random.default_rng(4).standard_normal((1, *PER_IMAGE)).astype(np.float32)
    positive = image.reshape(-1) >= 0
    flips = {"pos": 0, "neg": 0}
    for index, chip in enumerate(population.chips()):
        rates = chip_rates(chip, population.table, voltage)
        read = backend.run(image, rates, 100 + index).reshape(-1)
        wrong = read != np.where(positive, 1.0, -1.0)
        flips["pos"] += int(wrong[positive].sum())
        flips["neg"] += int(wrong[~positive].sum())
    writes = {"pos": 60 * int(positive.sum()), "neg": 60 * int((~positive).sum())}
    mean = device.population_wer(voltage, PULSE)  # symmetric: both directions alike
    nominal = device.wer(voltage, PULSE)
    for direction in ("pos", "neg"):
        assert_rate(flips[direction], writes[direction], mean)
    low, high = clopper_pearson(flips["pos"] + flips["neg"], writes["pos"] + writes["neg"])
    assert low <= mean <= high and not low <= nominal <= high


def test_backend_checks_per_address_rates():
    backend = OnnxRuntimeBackend(sign_model(), threads=1, rate_maps=True)
    images = np.ones((2, *PER_IMAGE), np.float32)
    short = AddressRates(np.zeros(10), np.zeros(10))
    with pytest.raises(XnorfaultError, match="10 per-address rates"):
        backend.run(images, {"s": short}, 0)
    scalar_only = OnnxRuntimeBackend(sign_model(), threads=1)
    full = AddressRates(np.zeros(ADDRESSES), np.zeros(ADDRESSES))
    with pytest.raises(XnorfaultError, match="rate maps"):
        scalar_only.run(images, {"s": full}, 0)
    # scalar rates still run on a backend with rate maps
    assert np.array_equal(backend.run(images, {"s": FlipRates()}, 0), images)
    with pytest.raises(XnorfaultError, match=r"lie in \[0, 1\]"):
        AddressRates(np.full(3, 1.5), np.zeros(3))
    with pytest.raises(XnorfaultError, match="3 addresses"):
        AddressRates(np.zeros(3), np.zeros(4))
    with pytest.raises(XnorfaultError, match="not fixed"):
        ChipPopulation.build(load_device("paper-varied"), {"s": None}, 2, 0, PULSE, (0.5,))
    with pytest.raises(XnorfaultError, match="onnxruntime backend"):
        open_backend("model.tflite", rate_maps=True)


def test_a_measured_table_takes_no_variation(tmp_path):
    table = tmp_path / "wer.csv"
    table.write_text(
        "voltage,pulse,wer_p_to_ap,wer_ap_to_p\n"
        + "".join(
            f"{v},{t},{0.1 / (1 + i + j)},{0.1 / (1 + i + j)}\n"
            for i, v in enumerate((0.4, 0.5, 0.6))
            for j, t in enumerate(("5ns", "10ns"))
        )
    )
    device_file = tmp_path / "chip.toml"
    device_file.write_text(
        '[switching]\ndelta = 40.0\ntau_d = "2ns"\nvc0_p_to_ap = "0.3V"\n'
        '[measured]\ntable = "wer.csv"\n[variation]\nsigma_delta = 0.05\n'
    )
    with pytest.raises(XnorfaultError, match="either \\[measured\\] or \\[variation\\]"):
        load_device(device_file)


# --- evaluate --chips ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tiny_model):
    from helpers import TINY_LENET4

    return tiny_model(*TINY_LENET4)


def evaluate_chips(run_cli, trained, *extra):
    code, out, err = run_cli(
        "evaluate",
        str(trained / "model.onnx"),
        "--data",
        str(trained / "test.npz"),
        "--voltage",
        "0.45,0.6",
        "--pulse",
        "10ns",
        "--mram-device",
        "paper-varied",
        "--repeats",
        "1",
        "--threads",
        "1",
        *extra,
        "--json",
    )
    assert code == 0, err
    return json.loads(out)


def test_evaluate_reports_every_chip_and_the_yield(run_cli, trained):
    result = evaluate_chips(
        run_cli, trained, "--chips", "4", "--chip-seed", "3", "--max-drop", "0.05"
    )
    baseline = result["baseline_accuracy"]
    device = load_device("paper-varied")
    assert result["chip_draw"]["count"] == 4 and result["chip_draw"]["seed"] == 3
    for point in result["points"]:
        chips = np.array(point["chips"])
        assert chips.shape == (4,)
        assert point["accuracy_mean"] == pytest.approx(chips.mean())
        assert point["chip_accuracy"]["worst"] == pytest.approx(chips.min())
        assert chips.min() <= point["chip_accuracy"]["p5"] <= chips.mean()
        assert point["yield"] == pytest.approx(np.mean(chips >= baseline - 0.05))
        low, high = point["yield_ci95"]
        assert low <= point["yield"] <= high
        assert point["population_p_flip_neg_to_pos"] == pytest.approx(
            device.population_wer(point["voltage"], PULSE), rel=1e-9
        )
        # the drawn cells' mean rate is near the population's (4 × 1,000s of cells)
        assert point["chip_mean_p_flip_neg_to_pos"] == pytest.approx(
            point["population_p_flip_neg_to_pos"], rel=0.05
        )
    low_voltage = next(p for p in result["points"] if p["voltage"] == pytest.approx(0.45))
    high_voltage = next(p for p in result["points"] if p["voltage"] == pytest.approx(0.6))
    assert low_voltage["accuracy_mean"] < high_voltage["accuracy_mean"]
    again = evaluate_chips(
        run_cli, trained, "--chips", "4", "--chip-seed", "3", "--max-drop", "0.05"
    )
    assert [p["chips"] for p in again["points"]] == [p["chips"] for p in result["points"]]
    other = evaluate_chips(run_cli, trained, "--chips", "4", "--chip-seed", "4")
    assert [p["chips"] for p in other["points"]] != [p["chips"] for p in result["points"]]
    assert all(p["yield"] is None for p in other["points"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--voltage", "0.5", "--pulse", "10ns", "--chips", "2"], "no cell-to-cell variation"),
        (["--ber", "0.01", "--chips", "2"], "write-voltage sweep"),
        (
            [
                "--voltage",
                "0.5",
                "--pulse",
                "10ns",
                "--mram-device",
                "paper-varied",
                "--chips",
                "2",
                "--per-layer",
            ],
            "--per-layer and --chips",
        ),
    ],
)
def test_bad_chip_requests_are_one_line_errors(run_cli, trained, args, message):
    code, _, err = run_cli(
        "evaluate", str(trained / "model.onnx"), "--data", str(trained / "test.npz"), *args
    )
    assert code == 2 and message in err and "Traceback" not in err


def test_wer_table_is_built_once_per_operating_range():
    device = load_device("paper-varied")
    first = cell_wer_table(device, PULSE, (0.5, 0.55))
    assert cell_wer_table(device, PULSE, (0.5, 0.55)) is first
    assert first.solves >= 36
