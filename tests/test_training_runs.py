"""Training runs: records, repeats, resumption after SIGKILL, the train/plot commands."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from helpers import job_records, without_timing

TINY = ["--data", "digits", "--limit-train", "256", "--limit-test", "120", "--batch-size", "64"]


def test_train_json_and_record(run_cli, tmp_path):
    out = tmp_path / "run"
    code, stdout, stderr = run_cli(
        "train",
        *TINY,
        "--ber",
        "0,0.1",
        "--repeats",
        "2",
        "--epochs",
        "2",
        "--out",
        str(out),
        "--json",
    )
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert set(summary["final_test_accuracy"]) == {"ber=0", "ber=0.1"}
    assert all(0.0 <= a <= 1.0 for a in summary["final_test_accuracy"].values())
    point = summary["points"][0]
    assert point["complete_repeats"] == 2 and len(point["repeats"][0]["test_accuracy"]) == 2
    # repeats re-initialise: different seeds, different weights, different curves
    seeds = {r["seed"] for r in point["repeats"]}
    assert len(seeds) == 2
    assert point["repeats"][0]["test_accuracy"] != point["repeats"][1]["test_accuracy"]
    record = json.loads((out / "record.json").read_text())
    assert record["format"] == "xnorfault-run/1"
    assert record["config"]["model"] == "lenet4" and record["input_size"] == 28
    assert {"torch", "brevitas", "xnorfault"} <= set(record["versions"])
    assert record["points"][1]["fault_spec"]["activations"] == {
        "pos_to_neg": 0.1,
        "neg_to_pos": 0.1,
    }
    # the same command again completes nothing new and gives the same summary
    code, again, _ = run_cli(
        "train",
        *TINY,
        "--ber",
        "0,0.1",
        "--repeats",
        "2",
        "--epochs",
        "2",
        "--out",
        str(out),
        "--json",
    )
    assert code == 0 and json.loads(again) == summary


def test_repeats_start_from_different_weights(tmp_path):
    import torch

    from xnorfault.data import load_dataset
    from xnorfault.faults import FaultPoint, FaultSpec
    from xnorfault.training.runner import Run, TrainConfig

    config = TrainConfig(epochs=1, limit_train=64, limit_test=32)
    run = Run(
        tmp_path,
        config,
        load_dataset("digits"),
        [FaultPoint("ber=0", FaultSpec.from_ber(0.0), 0.0)],
        2,
        torch.device("cpu"),
    )
    run.run()
    first = torch.load(tmp_path / "jobs" / "ber=0" / "repeat-0.pt", weights_only=False)["model"]
    second = torch.load(tmp_path / "jobs" / "ber=0" / "repeat-1.pt", weights_only=False)["model"]
    assert not torch.equal(first["features.0.weight"], second["features.0.weight"])


@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
    args = [
        sys.executable,
        "-m",
        "xnorfault",
        "train",
        *TINY,
        "--ber",
        "0.05",
        "--repeats",
        "2",
        "--epochs",
        "3",
        "--seed",
        "4",
    ]
    reference = tmp_path / "reference"
    subprocess.run([*args, "--out", str(reference)], check=True, capture_output=True)

    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [*args, "--out", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    first = killed / "jobs" / "ber=0.05" / "repeat-0.json"
    deadline = time.time() + 120
    while time.time() < deadline and not (
        first.exists() and json.loads(first.read_text())["epochs"]
    ):
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    partial = job_records(killed)
    assert partial, "the run was killed before its first epoch completed"
    assert not (len(partial) == 2 and all(r["status"] == "complete" for r in partial.values())), (
        "killed too late"
    )

    subprocess.run([*args, "--out", str(killed)], check=True, capture_output=True)
    resumed, expected = job_records(killed), job_records(reference)
    assert resumed.keys() == expected.keys()
    for name in expected:
        assert resumed[name]["status"] == "complete"
        assert without_timing(resumed[name]) == without_timing(expected[name])
    assert not list(killed.rglob("*.tmp"))


def test_other_settings_in_the_same_folder_are_refused(run_cli, tmp_path):
    out = tmp_path / "run"
    code, _, err = run_cli("train", *TINY, "--epochs", "1", "--out", str(out))
    assert code == 0, err
    before = (out / "record.json").read_bytes()
    code, _, err = run_cli("train", *TINY, "--epochs", "2", "--lr", "0.5", "--out", str(out))
    assert code == 2 and "other settings (different epochs, learning_rate" in err
    assert (out / "record.json").read_bytes() == before


def test_a_shard_with_other_settings_starting_meanwhile_keeps_the_winners_config(
    run_cli, tmp_path, monkeypatch
):
    import xnorfault.training.runner as runner

    out = tmp_path / "run"
    code, _, err = run_cli("train", *TINY, "--epochs", "1", "--out", str(tmp_path / "other"))
    assert code == 0, err
    theirs = (tmp_path / "other" / "config.json").read_text()
    create = runner.atomic_create_text

    def another_shard_first(path, text):
        out.mkdir(exist_ok=True)
        (out / "config.json").write_text(theirs)  # created between the check and the claim
        return create(path, text)

    monkeypatch.setattr(runner, "atomic_create_text", another_shard_first)
    code, _, err = run_cli("train", *TINY, "--epochs", "2", "--lr", "0.5", "--out", str(out))
    assert code == 2 and "other settings (different epochs, learning_rate" in err
    assert (out / "config.json").read_text() == theirs


def test_a_folder_of_other_files_is_never_trained_into(run_cli, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "record.json").write_text('{"mine": true}')  # a name a run writes
    # named as a temporary of a dead writer on this host, which a run folder's clean-up removes
    temporary = f".record.json.{socket.gethostname()}.99999999.abc.tmp"
    (photos / temporary).write_text("a user's file")
    code, _, err = run_cli("train", *TINY, "--epochs", "1", "--out", str(photos))
    assert code == 2 and "not empty and holds no config.json" in err and "record.json" in err
    assert sorted(os.listdir(photos)) == [temporary, "record.json"]
    assert (photos / "record.json").read_text() == '{"mine": true}'


def test_test_ber_measures_faulty_accuracy(run_cli, tmp_path):
    code, out, err = run_cli(
        "train", *TINY, "--epochs", "1", "--test-ber", "0.5", "--out", str(tmp_path / "r"), "--json"
    )
    assert code == 0, err
    repeat = json.loads(out)["points"][0]["repeats"][0]
    assert repeat["test_accuracy_faulty"][0] < repeat["test_accuracy"][0]
    assert repeat["test_accuracy_faulty"][0] < 0.35  # random activations: near chance


def test_plot_draws_the_run(run_cli, tmp_path):
    out = tmp_path / "run"
    run_cli("train", *TINY, "--ber", "0,0.2", "--epochs", "2", "--out", str(out))
    code, _, err = run_cli("plot", str(out), "-o", str(tmp_path / "fig.png"))
    assert code == 0, err
    assert (tmp_path / "fig.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "resnet"], "unknown model 'resnet'"),
        (["--data", "cifar10:/nonexistent"], "does not exist"),
        (["--ber", "1.5"], "between 0 and 1"),
        (["--ber", "0.1", "--voltage", "0.5"], "one source of fault rates"),
        (["--voltage", "0.5"], "--voltage needs --pulse"),
        (["--voltage-schedule", "0.6"], "--voltage-schedule needs --pulse"),
        (["--layer-ber", "act9=0.1"], "unknown binary site"),
        (["--layer-ber", "act1"], "SITE=RATE"),
        (["--gradient", "sideways"], "'sideways' is not one of 'straight_through'"),
        (["--model", "alexnet", "--input-size", "32"], "cannot take 32×32"),
        (
            ["--torch-device", "cuda:7"]
            if not __import__("torch").cuda.is_available()
            else ["--torch-device", "tpu"],
            "device",
        ),
    ],
)
def test_bad_training_input(run_cli, tmp_path, args, message):
    code, out, err = run_cli("train", *TINY, "--epochs", "1", *args, "--out", str(tmp_path / "r"))
    assert code == 2, err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "r" / "record.json").exists()


def test_plot_of_a_missing_run(run_cli, tmp_path):
    code, _, err = run_cli("plot", str(tmp_path / "nothing"), "-o", str(tmp_path / "f.png"))
    assert code == 2 and "does not exist" in err


def test_mram_operating_point_sets_training_rates(run_cli, tmp_path):
    from xnorfault.mram import load_device

    out = tmp_path / "run"
    code, _, err = run_cli(
        "train",
        *TINY,
        "--epochs",
        "1",
        "--voltage",
        "0.45,0.5",
        "--pulse",
        "10ns",
        "--mram-device",
        "asymmetric",
        "--layer-ber",
        "act1=0",
        "--out",
        str(out),
    )
    assert code == 0, err
    record = json.loads((out / "record.json").read_text())
    device = load_device("asymmetric")
    point = next(p for p in record["points"] if p["point"] == "V=0.5")
    rates = point["fault_spec"]["activations"]
    assert rates["pos_to_neg"] == pytest.approx(device.wer(0.5, 1e-8, "ap_to_p"))
    assert rates["neg_to_pos"] == pytest.approx(device.wer(0.5, 1e-8, "p_to_ap"))
    assert point["fault_spec"]["layers"] == {"act1": {"pos_to_neg": 0.0, "neg_to_pos": 0.0}}
    assert point["fault_spec"]["source"]["device"]["name"] == "asymmetric"
