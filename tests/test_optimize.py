"""``xnorfault optimize``: the candidate chain, drop curves and the greedy walk on known inputs;
on a small trained model the budget held on the held-out half, never more energy than the best
shared point (equal with one site), a tighter budget never cheaper, the tuned model and
operating points; infeasible requests as one-line errors."""

import json

import numpy as np
import onnx
import pytest
from helpers import cli_ok, train_and_export

import xnorfault
from xnorfault.errors import XnorfaultError
from xnorfault.mram import load_device
from xnorfault.optimization import (
    DropCurve,
    allocation_path,
    candidate_chain,
    choose,
    read_operating_points,
)

# --- the parts, on inputs whose answer is known --------------------------------------------


def test_candidate_chain_keeps_only_points_no_other_beats():
    device = load_device("asymmetric")
    voltages = np.arange(0.40, 0.70, 0.02)
    pulses = [5e-9, 10e-9, 20e-9]
    chain = candidate_chain(device, voltages, pulses)
    energies = [p.energy_per_bit for p in chain]
    wers = [p.wer for p in chain]
    assert energies == sorted(energies, reverse=True) and wers == sorted(wers)
    assert len(set(energies)) == len(energies)
    everything = [
        (float(device.write_energy(v, t)), max(device.flip_rates(v, t)))
        for v in voltages
        for t in pulses
    ]
    for point in chain:  # nothing beats a kept point in both energy and WER
        assert not any(
            e <= point.energy_per_bit and w < point.wer * (1 - 1e-12) for e, w in everything
        )
    assert point.rates.pos_to_neg == point.wer_ap_to_p  # +1 is stored as P


def test_drop_curve_is_isotonic_proportional_below_and_closed_above():
    curve = DropCurve.fit([1e-4, 1e-3, 1e-2, 1e-1], [0.002, -0.001, 0.01, 0.2])
    assert np.all(np.diff(curve.drops) >= 0) and curve.drops.min() >= 0
    assert curve.at(1e-5) == pytest.approx(curve.drops[0] / 10)
    assert curve.at(1e-2) == pytest.approx(0.01)
    assert curve.at(0.3) == float("inf")


def test_greedy_walk_with_identical_sites_spends_what_the_shared_point_spends():
    """Two identical sites, drop 0.01 per chain step, energy 1 per step: every budget that
    falls on a shared point gets the same energy per site as shared, and along the walk energy
    falls while the predicted drop rises."""
    steps = 10
    energy_per_bit = np.arange(steps, 0, -1, dtype=float)
    table = np.arange(steps) * 0.01
    path = allocation_path([table, table], [1, 1], energy_per_bit)
    assert all(a.energy > b.energy for a, b in zip(path, path[1:], strict=False))
    assert all(a.predicted_drop <= b.predicted_drop for a, b in zip(path, path[1:], strict=False))
    for level in range(steps):
        budget = 2 * level * 0.01 + 1e-9
        chosen = path[choose(path, budget)]
        assert chosen.energy == pytest.approx(2 * energy_per_bit[level])
    # a site that costs nothing to lower is lowered all the way first
    free = np.zeros(steps)
    path = allocation_path([free, table], [3, 1], energy_per_bit)
    assert path[1].levels == (steps - 1, 0)


def test_operating_points_files_are_validated(tmp_path):
    good = tmp_path / "points.toml"
    good.write_text(
        'format = "xnorfault-operating-points/1"\n[sites."act1"]\nvoltage = "450mV"\npulse = "10ns"\n'
    )
    assert read_operating_points(good) == {"act1": (pytest.approx(0.45), pytest.approx(1e-8))}
    for text, message in [
        ('format = "other"\n', "not an operating-points file"),
        ('format = "xnorfault-operating-points/1"\n', "no \\[sites"),
        (
            'format = "xnorfault-operating-points/1"\n[sites.a]\nvoltage = "x"\npulse = "1ns"\n',
            "sites.a",
        ),
        (
            'format = "xnorfault-operating-points/1"\n[sites.a]\nvoltage = "1V"\n',
            "exactly voltage and pulse",
        ),
        ("format = [", "not valid TOML"),
    ]:
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(XnorfaultError, match=message):
            read_operating_points(bad)


# --- on a trained model ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("optimize")
    train_and_export(
        folder,
        *["--data", "digits", "--limit-train", "300", "--limit-test", "360"],
        *["--batch-size", "64", "--ber", "0.04", "--epochs", "2"],
    )
    cli_ok(
        "inject",
        str(folder / "model.onnx"),
        "-o",
        str(folder / "one_site.onnx"),
        "--ber",
        "0",
        "--layers",
        "act1",
    )
    return folder


def run_optimize(run_cli, trained, *args, model="model.onnx"):
    return run_cli("optimize", str(trained / model), "--data", str(trained / "test.npz"), *args)


def optimize_json(run_cli, trained, *args, model="model.onnx"):
    code, out, err = run_optimize(run_cli, trained, "--threads", "1", *args, "--json", model=model)
    assert code == 0, err
    return json.loads(out)


def test_budget_holds_on_held_out_images_and_no_shared_point_is_cheaper(run_cli, trained, tmp_path):
    tuned, points = tmp_path / "tuned.onnx", tmp_path / "points.toml"
    result = optimize_json(
        run_cli,
        trained,
        "--max-drop",
        "0.08",
        "-o",
        str(tuned),
        "--operating-points",
        str(points),
        "--plot",
        str(tmp_path / "pareto.png"),
    )
    check = result["verification"]
    assert check["drop_upper"] <= 0.08 and check["images"] == 180
    assert check["drop"] == pytest.approx(check["baseline_accuracy"] - check["accuracy_mean"])
    assert result["energy_per_inference"] <= result["shared"]["energy_per_inference"]
    assert result["energy_per_inference"] < result["conventional"]["energy_per_inference"]
    device = load_device("paper")
    bits = {"act1": 2880, "act2": 800}
    for site in result["sites"]:
        assert site["bits_per_image"] == bits[site["site"]]
        assert site["wer_p_to_ap"] == pytest.approx(device.wer(site["voltage"], site["pulse"]))
        assert site["energy_per_inference"] == pytest.approx(
            bits[site["site"]] * device.write_energy(site["voltage"], site["pulse"])
        )
    assert result["energy_per_inference"] == pytest.approx(
        sum(s["energy_per_inference"] for s in result["sites"])
    )
    assert result["evaluations"] > 0 and result["images_inferred"] == 180 * result["evaluations"]
    # the tuned model carries each site's rates; evaluate reads them back as one point
    model = onnx.load(str(tuned))
    injected = json.loads(
        next(p.value for p in model.metadata_props if p.key == "xnorfault.injected")
    )
    for site in result["sites"]:
        assert injected["rates"][site["site"]]["neg_to_pos"] == pytest.approx(site["wer_p_to_ap"])
    assert injected["source"]["optimize"]["operating_points"]["act1"]["voltage"] == pytest.approx(
        result["sites"][0]["voltage"]
    )
    code, out, err = run_cli(
        "evaluate", str(tuned), "--data", str(trained / "test.npz"), "--repeats", "5", "--json"
    )
    assert code == 0, err
    (point,) = json.loads(out)["points"]
    assert point["per_site_rates"]["act2"]["pos_to_neg"] == pytest.approx(
        result["sites"][1]["wer_ap_to_p"]
    )
    read = read_operating_points(points)
    assert read["act2"][0] == pytest.approx(result["sites"][1]["voltage"], abs=1e-4)
    assert (tmp_path / "pareto.png").read_bytes()[:4] == b"\x89PNG"


def test_tighter_budget_never_spends_less(trained):
    loose = xnorfault.optimize(trained / "model.onnx", trained / "test.npz", 0.15, threads=1)
    tight = xnorfault.optimize(trained / "model.onnx", trained / "test.npz", 0.03, threads=1)
    assert tight.energy_per_inference >= loose.energy_per_inference
    assert tight.verification["drop_upper"] <= 0.03
    assert loose.to_dict()["energy_vs_shared"] <= 1


@pytest.mark.parametrize("write_model", ["iid", "previous"])
def test_one_site_takes_the_shared_point(run_cli, trained, write_model):
    result = optimize_json(
        run_cli, trained, "--max-drop", "0.08", "--write-model", write_model, model="one_site.onnx"
    )
    assert result["write_model"]["model"] == write_model
    assert result["search"]["backend"]["write_model"]["model"] == write_model
    (site,) = result["sites"]
    assert site["site"] == "act1" and not result["per_site_kept"]
    assert result["energy_per_inference"] == result["shared"]["energy_per_inference"]
    assert site["voltage"] == result["shared"]["voltage"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-drop", "0.001"], "below one held-out image"),
        (["--max-drop", "0.05", "--voltage", "0.30:0.34"], "even the safest point"),
        (["--max-drop", "2"], "--max-drop"),
        (["--max-drop", "0.05", "--confidence", "1.5"], "--confidence"),
        (["--max-drop", "0.05", "--voltage", "0.5:2.0"], "breakdown voltage"),
        (["--max-drop", "0.05", "--pulse", "20ns:2ns"], "LOW < HIGH"),
    ],
)
def test_infeasible_and_bad_requests_are_one_line_errors(run_cli, trained, args, message):
    code, _, err = run_optimize(run_cli, trained, *args)
    assert code == 2 and message in err and "Traceback" not in err, err


def test_output_may_not_replace_the_model(run_cli, trained):
    code, _, err = run_optimize(
        run_cli, trained, "--max-drop", "0.05", "-o", str(trained / "model.onnx")
    )
    assert code == 2 and "is the model m" in err


def test_the_answer_is_reported_on_chips(run_cli, trained):
    arguments = ["--max-drop", "0.08", "--chips", "4"]
    result = optimize_json(
        run_cli,
        trained,
        *arguments,
        "--mram-device",
        "paper-varied",
        "--chip-seed",
        "2",
        model="one_site.onnx",
    )
    drawn = result["chips"]
    drops = np.array(drawn["drops"])
    assert drawn["count"] == 4 and drops.shape == (4,) and drawn["seed"] == 2
    assert drawn["worst_drop"] == pytest.approx(drops.max())
    assert drawn["yield"] == pytest.approx(np.mean(drops <= 0.08))
    assert drawn["yield_ci95"][0] <= drawn["yield"] <= drawn["yield_ci95"][1]
    code, _, err = run_optimize(run_cli, trained, *arguments, model="one_site.onnx")
    assert code == 2 and "no cell-to-cell variation" in err


# --- seeds by coordinates: the same answer from any executor --------------------------------


def test_a_verification_alone_gives_the_numbers_it_gave_within_the_search(trained):
    """Each run's flips are seeded by its coordinates, so the final held-out check, run alone
    in a fresh process state, reproduces the search's own numbers exactly."""
    from xnorfault.evaluation.executors import JobExecutor
    from xnorfault.faults import FlipRates
    from xnorfault.optimization.search import (
        OptimizeRequest,
        RuntimeOptions,
        Search,
        SearchRunner,
    )
    from xnorfault.optimization.verification import verify

    result = xnorfault.optimize(trained / "model.onnx", trained / "test.npz", 0.08, threads=1)
    rates = {s["site"]: FlipRates(s["wer_ap_to_p"], s["wer_p_to_ap"]) for s in result.sites}
    request = OptimizeRequest(
        trained / "model.onnx", str(trained / "test.npz"), 0.08, runtime=RuntimeOptions(threads=1)
    )
    with request.open_backend() as backend, JobExecutor() as pool:
        pool.runner = SearchRunner.build(request, backend)
        search = Search(pool.runner, pool)
        clean = search.correct("held-out", {})
        alone = verify(search, "held-out", clean, rates, 10, (1 - 0.95) / 4)
    for field in ("accuracy_mean", "drop", "drop_upper", "images"):
        assert alone[field] == result.verification[field]


@pytest.mark.slow
def test_workers_find_the_same_answer_as_one_process(trained):
    arguments = (trained / "model.onnx", trained / "test.npz", 0.08)
    options = {"mram_device": "paper-varied", "chips": 3, "threads": 2}
    plain = xnorfault.optimize(*arguments, **options).to_dict()
    split = xnorfault.optimize(*arguments, **options, workers=2).to_dict()
    assert split == plain
    assert plain["chips"]["count"] == 3 and plain["evaluations"] > 20


@pytest.mark.slow
def test_ray_actors_find_the_same_answer_as_one_process(trained):
    try:
        import ray  # noqa: F401
    except ImportError:
        pytest.skip("Ray is not installed here (pip install 'xnorfault[ray]')")
    arguments = (trained / "one_site.onnx", trained / "test.npz", 0.08)
    plain = xnorfault.optimize(*arguments, threads=2).to_dict()
    on_ray = xnorfault.optimize(*arguments, threads=2, executor="ray", workers=2).to_dict()
    assert on_ray == plain


def test_workers_and_address_are_checked(run_cli, trained):
    for args, message in (
        (["--workers", "0"], "--workers"),
        (["--address", "ray://x:1"], "--executor ray"),
    ):
        code, _, err = run_optimize(run_cli, trained, "--max-drop", "0.05", *args)
        assert code == 2 and message in err and "Traceback" not in err, err
