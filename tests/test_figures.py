"""Figures in one style: energies in joules, accuracy intervals clipped to [0, 100] %, titles
that wrap rather than run off, overlays of several results, and the figures of
``mram wer --plot``, ``evaluate --per-layer`` and ``--chips``."""

from __future__ import annotations

import json

import pytest
from helpers import TINY_LENET4

from xnorfault.mram import load_device
from xnorfault.plots import (
    DPI,
    FIGURE_SIZE,
    TALL_FIGURE_SIZE,
    TITLE_WIDTH,
    plot_evaluation,
    plot_overlay,
    plot_wer,
)


def _sweep(accuracies, high=None, name="model.onnx", write="iid") -> dict:
    """An evaluate result over two voltages (what the figures read of it)."""
    points = []
    for voltage, accuracy in zip((0.5, 0.6), accuracies, strict=True):
        points.append(
            {
                "label": f"V={voltage}",
                "voltage": voltage,
                "pulse": 1e-8,
                "ber": None,
                "accuracy_mean": accuracy,
                "ci95": [accuracy - 0.05, high if high is not None else accuracy + 0.05],
                "repeats": 3,
                "chips": None,
                "yield": None,
                "yield_ci95": None,
                "wer_p_to_ap": 1e-2 / voltage,
                "wer_ap_to_p": 1e-2 / voltage,
                "write_energy": 1e-12 * voltage**2,
            }
        )
    return {
        "baseline_accuracy": 0.9,
        "points": points,
        "backend": {"model": name, "write_model": {"model": write, "initial_state": "neg"}},
        "device": {"name": "paper"},
        "model": {"activation_bits_per_image": 3680},
        "max_drop": None,
        "weight_memory": None,
    }


def test_every_figure_has_the_one_size_and_resolution(tmp_path):
    sweep = plot_evaluation(_sweep([0.8, 0.88]), tmp_path / "sweep.png")
    wer = plot_wer(
        [{"voltage": 0.5, "pulse": 1e-8, "wer_p_to_ap": 0.02, "wer_ap_to_p": 0.02}],
        load_device("paper"),
        tmp_path / "wer.png",
    )
    assert tuple(sweep.get_size_inches()) == TALL_FIGURE_SIZE
    assert tuple(wer.get_size_inches()) == FIGURE_SIZE
    from PIL import Image

    with Image.open(tmp_path / "wer.png") as image:
        # constrained layout keeps the size: inches × dpi
        assert image.size == (round(FIGURE_SIZE[0] * DPI), round(FIGURE_SIZE[1] * DPI))


def test_energy_is_in_joules_per_bit_and_per_inference():
    from matplotlib.ticker import EngFormatter

    figure = plot_evaluation(_sweep([0.8, 0.88]))
    every = [*figure.axes, *(child for axes in figure.axes for child in axes.child_axes)]
    labels = {axes.get_ylabel(): axes for axes in every}
    assert "write energy per bit" in labels
    per_inference = [label for label in labels if label.startswith("per inference")]
    assert per_inference == ["per inference (3,680 activation bits)"]
    for label in ("write energy per bit", per_inference[0]):
        formatter = labels[label].yaxis.get_major_formatter()
        assert isinstance(formatter, EngFormatter) and formatter.unit == "J"
    assert not any("relative" in label for label in labels)


def test_an_interval_reaching_past_one_is_drawn_to_100_percent_at_most():
    figure = plot_evaluation(_sweep([0.95, 0.99], high=1.07))
    accuracy_axes = figure.axes[0]
    tops = [
        collection.get_paths()[0].vertices[:, 1].max() for collection in accuracy_axes.collections
    ]
    assert tops and max(tops) <= 100.0


def test_a_long_name_wraps_the_title_and_it_names_the_write_model():
    name = "a_very_long_model_file_name_from_a_sweep_over_write_models_" * 3 + ".onnx"
    figure = plot_evaluation(_sweep([0.8, 0.88], name=name, write="previous"))
    title = figure.axes[0].get_title()
    lines = title.split("\n")
    assert len(lines) > 1 and all(len(line) <= TITLE_WIDTH for line in lines)
    assert "write model previous" in title.replace("\n", " ")
    assert "device paper" in title and "pulse 10 ns" in title


def test_an_overlay_draws_each_result_in_its_colour_and_refuses_mixed_kinds():
    figure = plot_overlay([("BER 0", _sweep([0.8, 0.88])), ("BER 0.04", _sweep([0.85, 0.89]))])
    labels = [line.get_label() for line in figure.axes[0].get_lines()]
    assert "BER 0" in labels and "BER 0.04" in labels
    from xnorfault.errors import XnorfaultError

    optimize = {"pareto": {"per_site": [], "shared": []}}
    with pytest.raises(XnorfaultError, match="one kind"):
        plot_overlay([("a", _sweep([0.8, 0.88])), ("b", optimize)])


@pytest.fixture(scope="module")
def model(tiny_model):
    return tiny_model(*TINY_LENET4)


def test_plot_overlays_the_json_of_several_sweeps(run_cli, model, tmp_path):
    paths = []
    for write in ("iid", "previous"):
        code, out, err = run_cli(
            *("evaluate", str(model / "model.onnx"), "--data", str(model / "test.npz")),
            *("--voltage", "0.5,0.6", "--pulse", "10ns", "--repeats", "2"),
            *("--write-model", write, "--json"),
        )
        assert code == 0, err
        paths.append(tmp_path / f"{write}.json")
        paths[-1].write_text(out)
    code, out, err = run_cli(
        "plot",
        *map(str, paths),
        "-o",
        str(tmp_path / "overlay.png"),
        "--label",
        "iid",
        "--label",
        "previous",
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["results"] == [str(p) for p in paths]
    assert (tmp_path / "overlay.png").read_bytes()[:4] == b"\x89PNG"
    before = {p: p.read_bytes() for p in paths}
    code, _, err = run_cli("plot", *map(str, paths), "-o", str(tmp_path / "o.png"), "--label", "x")
    assert code == 2 and err.count("\n") == 1 and "--label" in err
    code, _, err = run_cli("plot", str(paths[0]), str(model / "run"), "-o", str(tmp_path / "m.png"))
    assert code == 2 and "not both" in err
    assert {p: p.read_bytes() for p in paths} == before


def test_evaluate_draws_the_per_site_figure_beside_the_sweep(run_cli, model, tmp_path):
    code, _, err = run_cli(
        *("evaluate", str(model / "model.onnx"), "--data", str(model / "test.npz")),
        *("--ber", "0,0.1", "--repeats", "2", "--per-layer", "--plot", str(tmp_path / "s.png")),
    )
    assert code == 0, err
    assert (tmp_path / "s.png").is_file() and (tmp_path / "s_per_layer.png").is_file()
    assert not (tmp_path / "s_yield.png").exists()


def test_mram_wer_plots_a_curve_per_pulse(run_cli, tmp_path):
    code, _, err = run_cli(
        "mram", "wer", "-V", "0.4:0.8:0.1", "-t", "5ns,10ns", "--plot", str(tmp_path / "w.png")
    )
    assert code == 0, err
    assert (tmp_path / "w.png").read_bytes()[:4] == b"\x89PNG"
    code, _, err = run_cli(
        "mram", "wer", "-V", "0.1", "-t", "5ns", "--read", "--plot", str(tmp_path / "r.png")
    )
    assert code == 2 and "--read" in err and not (tmp_path / "r.png").exists()
