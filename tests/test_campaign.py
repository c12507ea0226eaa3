"""Campaigns beyond one process: seeds by coordinates, shards run concurrently into one folder
and merged, a killed shard resumed, worker processes and Ray — each bit-identical to the plain
run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from xnorfault.errors import XnorfaultError
from xnorfault.evaluation.campaign import shard_jobs
from xnorfault.evaluation.jobs import Job, job_seed
from xnorfault.units import parse_shard

CLI = [sys.executable, "-m", "xnorfault"]
STATISTICS = ("accuracy_mean", "accuracy_std", "ci95", "test_set_ci95", "drop_ci95", "chips")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from helpers import train_and_export

    folder = tmp_path_factory.mktemp("campaign")
    train_and_export(
        folder,
        *["--data", "digits", "--limit-train", "300", "--limit-test", "120"],
        *["--batch-size", "64", "--ber", "0.04", "--epochs", "1"],
    )
    return folder


def sweep_args(trained, *extra):
    return [
        str(trained / "model.onnx"),
        *["--data", str(trained / "test.npz"), "--threads", "1", "--batch-size", "50"],
        *extra,
    ]


BER_SWEEP = ("--ber", "0,0.05,0.2", "--repeats", "4")
CHIP_SWEEP = (
    *("--voltage", "0.45,0.6", "--pulse", "10ns", "--mram-device", "paper-varied"),
    *("--chips", "3", "--repeats", "2"),
)


def cli_json(*args) -> dict:
    done = subprocess.run([*CLI, "evaluate", *args, "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def same_statistics(first: dict, second: dict) -> None:
    assert first["baseline_accuracy"] == second["baseline_accuracy"]
    assert len(first["points"]) == len(second["points"])
    for a, b in zip(first["points"], second["points"], strict=True):
        for key in STATISTICS:
            assert a.get(key) == b.get(key), (a["label"], key)


@pytest.fixture(scope="module")
def plain(trained):
    return {
        "ber": cli_json(*sweep_args(trained, *BER_SWEEP)),
        "chips": cli_json(*sweep_args(trained, *CHIP_SWEEP)),
    }


def test_job_seeds_depend_on_coordinates_only():
    key = "point"
    seeds = {job_seed(7, key, Job(0, c, r)) for c in (-1, 0, 1) for r in range(5)}
    assert len(seeds) == 15
    assert job_seed(7, key, Job(0, 1, 2)) == job_seed(7, key, Job(5, 1, 2))  # not the index
    assert job_seed(7, key, Job(0, 1, 2)) != job_seed(8, key, Job(0, 1, 2))
    assert job_seed(7, key, Job(0, -1, 2, "act1")) != job_seed(7, key, Job(0, -1, 2))
    jobs = [Job(p, -1, r) for p in range(3) for r in range(4)]
    shards = [shard_jobs(jobs, i, 5) for i in range(1, 6)]
    assert sorted(j for shard in shards for j in shard) == sorted(jobs)
    assert parse_shard("2/3") == (2, 3)
    with pytest.raises(XnorfaultError, match="--shard"):
        parse_shard("4/3")


def test_a_point_alone_equals_the_point_within_a_sweep(trained, plain):
    alone = cli_json(*sweep_args(trained, "--ber", "0.05", "--repeats", "4"))
    within = next(p for p in plain["ber"]["points"] if p["ber"] == 0.05)
    for key in STATISTICS:
        assert alone["points"][0].get(key) == within.get(key)


@pytest.mark.slow
@pytest.mark.parametrize(("sweep", "shards"), [("ber", 2), ("ber", 3), ("chips", 2)])
def test_concurrent_shards_merge_to_the_plain_run(trained, plain, tmp_path, sweep, shards):
    folder = tmp_path / "campaign"
    args = sweep_args(trained, *(BER_SWEEP if sweep == "ber" else CHIP_SWEEP))
    running = [
        subprocess.Popen(
            [*CLI, "evaluate", *args, "--out", str(folder), "--shard", f"{i}/{shards}", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(1, shards + 1)
    ]
    outputs = [process.communicate() for process in running]
    assert all(p.returncode == 0 for p in running), [err[-800:] for _, err in outputs]
    merged = cli_json("--merge", str(folder))
    same_statistics(merged, plain[sweep])
    assert merged["campaign"]["missing"] == 0
    jobs = len(list((folder / "jobs").glob("*.json")))
    assert jobs == merged["campaign"]["jobs"]
    # a rerun of a shard finds everything done and runs nothing
    rerun = cli_json(*args, "--out", str(folder), "--shard", f"1/{shards}")
    assert rerun["campaign"]["run_here"] == 0


@pytest.mark.slow
def test_a_killed_shard_resumes_with_nothing_lost_or_counted_twice(trained, plain, tmp_path):
    folder = tmp_path / "campaign"
    args = [*sweep_args(trained, *BER_SWEEP), "--out", str(folder), "--shard", "1/1", "--json"]
    process = subprocess.Popen([*CLI, "evaluate", *args], stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    # a job takes ~15 ms: poll often enough that the kill lands well before the 13th
    while time.time() < deadline and len(list((folder / "jobs").glob("*.json"))) < 4:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = len(list((folder / "jobs").glob("*.json")))
    assert 4 <= finished < 13, "the shard should be killed midway"
    resumed = cli_json(*args[:-1])
    assert resumed["campaign"]["already_done"] == finished
    assert resumed["campaign"]["run_here"] == 13 - finished
    same_statistics(resumed, plain["ber"])


def test_damaged_or_foreign_job_files_are_run_again(trained, plain, tmp_path):
    folder = tmp_path / "campaign"
    args = [*sweep_args(trained, *BER_SWEEP), "--out", str(folder)]
    cli_json(*args)
    files = sorted((folder / "jobs").glob("*.json"))
    files[0].write_text("{not json")
    record = json.loads(files[1].read_text())
    record["campaign"] = "0" * 64
    files[1].write_text(json.dumps(record))
    again = cli_json(*args)
    assert again["campaign"]["run_here"] == 2
    same_statistics(again, plain["ber"])


@pytest.mark.slow
def test_workers_equal_one_process(trained, plain):
    workers = cli_json(*sweep_args(trained, *CHIP_SWEEP), "--workers", "2")
    same_statistics(workers, plain["chips"])
    assert workers["executor"]["workers"] == 2


@pytest.mark.slow
def test_ray_on_a_local_instance_equals_the_plain_run(trained, plain):
    try:
        import ray  # noqa: F401
    except ImportError:
        pytest.skip("Ray is not installed here (pip install 'xnorfault[ray]')")
    on_ray = cli_json(*sweep_args(trained, *BER_SWEEP), "--executor", "ray", "--workers", "2")
    same_statistics(on_ray, plain["ber"])
    assert on_ray["executor"]["executor"] == "ray"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--shard", "1/2"], "--out"),
        (["--workers", "2", "--target-ci", "0.01"], "--target-ci"),
        (["--address", "ray://x:1"], "--executor ray"),
        (["--out", "OUT", "--latency-batches", "1"], "latency"),
        (["--workers", "2", "--age", "1d"], "--age"),
    ],
)
def test_bad_campaign_requests_are_one_line_errors(run_cli, trained, tmp_path, extra, message):
    extra = [str(tmp_path / "c") if item == "OUT" else item for item in extra]
    code, _, err = run_cli("evaluate", *sweep_args(trained, "--ber", "0.1"), *extra)
    assert code == 2
    assert message in err and "Traceback" not in err


def test_a_folder_is_never_taken_from_another_campaign(run_cli, trained, tmp_path):
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"\xff\xd8")
    code, _, err = run_cli(
        "evaluate", *sweep_args(trained, "--ber", "0.1", "--repeats", "1"), "--out", str(foreign)
    )
    assert code == 2 and "not empty" in err
    assert os.listdir(foreign) == ["holiday.jpg"]
    folder = tmp_path / "campaign"
    code, _, err = run_cli(
        "evaluate", *sweep_args(trained, "--ber", "0.1", "--repeats", "1"), "--out", str(folder)
    )
    assert code == 0, err
    code, _, err = run_cli(
        "evaluate", *sweep_args(trained, "--ber", "0.2", "--repeats", "1"), "--out", str(folder)
    )
    assert code == 2 and "another campaign" in err
    code, _, err = run_cli("evaluate", "--merge", str(tmp_path / "nothing"))
    assert code == 2 and "campaign.json" in err


def test_shards_starting_together_see_each_others_temporaries_as_the_campaigns(tmp_path):
    from xnorfault.evaluation.campaign import CAMPAIGN_FILE, CampaignFolder

    folder = tmp_path / "campaign"
    folder.mkdir()
    # another shard, in another process, is writing the description this moment
    (folder / f".{CAMPAIGN_FILE}.otherhost.4242.x1y2.tmp").write_text('{"fingerprint": ')
    CampaignFolder(folder).claim({"fingerprint": "abc"})
    assert json.loads((folder / CAMPAIGN_FILE).read_text()) == {"fingerprint": "abc"}
    CampaignFolder(folder).claim({"fingerprint": "abc"})  # a later shard of the same campaign
    (folder / "notes.txt").write_text("a user's file")
    with pytest.raises(XnorfaultError, match="another campaign"):
        CampaignFolder(folder).claim({"fingerprint": "other"})


def test_a_description_written_meanwhile_by_another_campaign_is_kept(tmp_path, monkeypatch):
    import xnorfault.evaluation.campaign
    from xnorfault.evaluation.campaign import CAMPAIGN_FILE, CampaignFolder

    folder = tmp_path / "campaign"
    folder.mkdir()
    theirs = json.dumps({"fingerprint": "theirs"})

    def written_meanwhile(*_):
        (folder / CAMPAIGN_FILE).write_text(theirs)  # between the check and the claim
        return []

    monkeypatch.setattr(xnorfault.evaluation.campaign, "strangers_in", written_meanwhile)
    with pytest.raises(XnorfaultError, match="claimed by another campaign meanwhile"):
        CampaignFolder(folder).claim({"fingerprint": "mine"})
    assert (folder / CAMPAIGN_FILE).read_text() == theirs
    assert os.listdir(folder) == [CAMPAIGN_FILE]


def test_merge_says_what_is_missing(trained, tmp_path):
    folder = tmp_path / "campaign"
    first = cli_json(*sweep_args(trained, *BER_SWEEP), "--out", str(folder), "--shard", "1/4")
    assert first["campaign_incomplete"] and first["campaign"]["missing"] > 0
    merged = cli_json("--merge", str(folder))
    assert merged["campaign"]["missing"] == first["campaign"]["missing"]
    assert set(merged["campaign"]["incomplete_points"]) <= {
        "baseline",
        "ber=0",
        "ber=0.05",
        "ber=0.2",
    }
    assert np.isclose(
        first["campaign"]["run_here"] + first["campaign"]["missing"], first["campaign"]["jobs"]
    )
    assert Path(folder / "campaign.json").is_file()
