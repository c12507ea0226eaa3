"""``train --log tensorboard,mlflow`` and ``evaluate --log mlflow``: what the trackers hold equals
the JSON records, a rerun adds nothing twice, and bad choices are one-line errors."""

import json

import pytest
from helpers import cli_ok

TINY = ["--data", "digits", "--limit-train", "200", "--limit-test", "100", "--batch-size", "64"]


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tracking")
    mp = pytest.MonkeyPatch()
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    mp.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    arguments = [*TINY, "--ber", "0,0.1", "--epochs", "2", "--out", str(folder / "run")]
    cli_ok("train", *arguments, "--log", "tensorboard,mlflow")
    cli_ok("train", *arguments, "--log", "tensorboard", "--log", "mlflow")  # a rerun: all complete
    yield folder
    mp.undo()


def _record(folder):
    return json.loads((folder / "run" / "record.json").read_text())


def test_tensorboard_scalars_equal_the_record(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for point in _record(tracked)["points"]:
        (job,) = point["repeats"]
        events = EventAccumulator(
            str(tracked / "run" / "tensorboard" / point["point"] / "repeat-0")
        )
        events.Reload()
        for metric in ("test_accuracy", "train_loss", "train_accuracy", "learning_rate"):
            logged = [(s.step, s.value) for s in events.Scalars(metric)]
            expected = [(e["epoch"], e[metric]) for e in job["epochs"]]
            assert [step for step, _ in logged] == [1, 2], (point["point"], metric)
            assert logged == [(step, pytest.approx(value, rel=1e-6)) for step, value in expected]
        (text,) = events.Tensors("config/text_summary")
        assert '"config.epochs": 2' in text.tensor_proto.string_val[0].decode()
    summary = EventAccumulator(str(tracked / "run" / "tensorboard" / "summary"))
    summary.Reload()
    assert "accuracy_vs_epoch" in summary.Tags()["images"]
    assert len(summary.Images("accuracy_vs_epoch")) == 1  # the rerun trained nothing, drew nothing


def test_mlflow_runs_hold_the_record(tracked):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tracked / 'run' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(f"xnorfault/{(tracked / 'run').name}")
    for point in _record(tracked)["points"]:
        (job,) = point["repeats"]
        (run,) = client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.`xnorfault.point` = '{point['point']}'",
        )
        assert run.info.status == "FINISHED"
        history = client.get_metric_history(run.info.run_id, "test_accuracy")
        assert [(m.step, m.value) for m in history] == [
            (e["epoch"], e["test_accuracy"]) for e in job["epochs"]
        ]  # the rerun logged nothing twice
        assert run.data.params["config.epochs"] == "2"
        assert float(run.data.params["fault.source.ber"]) == point["ber"]
    (summary,) = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`xnorfault.summary` = 'true'"
    )
    names = {a.path for a in client.list_artifacts(summary.info.run_id)}
    assert {"accuracy_vs_epoch.png", "record.json"} <= names


def test_evaluate_logs_each_point_to_mlflow(run_cli, tracked, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code, _, err = run_cli(
        "export",
        str(tracked / "run"),
        "--point",
        "ber=0.1",
        "-o",
        str(tracked / "model.onnx"),
        "--testset",
        str(tracked / "test.npz"),
    )
    assert code == 0, err
    code, out, err = run_cli(
        "evaluate",
        str(tracked / "model.onnx"),
        "--data",
        str(tracked / "test.npz"),
        "--ber",
        "0,0.2",
        "--repeats",
        "2",
        "--log",
        "mlflow",
        "--json",
    )
    assert code == 0, err
    result = json.loads(out)
    client = MlflowClient(f"sqlite:///{tracked / 'mlflow.db'}")
    run = client.get_run(result["mlflow_run_id"])
    history = client.get_metric_history(run.info.run_id, "accuracy_mean")
    assert [(m.step, m.value) for m in history] == [
        (i, p["accuracy_mean"]) for i, p in enumerate(result["points"])
    ]
    assert [m.value for m in client.get_metric_history(run.info.run_id, "ber")] == [0.0, 0.2]


def test_bad_trackers_are_one_line_errors(run_cli, tracked, tmp_path):
    code, _, err = run_cli("train", *TINY, "--out", str(tmp_path / "r"), "--log", "wandb")
    assert code == 2 and "unknown --log 'wandb'" in err
    assert not (tmp_path / "r").exists()
    # a folder holding another run is refused before a tracker writes anything into it
    before = {p: p.stat().st_mtime_ns for p in (tracked / "run").rglob("*") if p.is_file()}
    code, _, err = run_cli(
        "train",
        *TINY,
        "--epochs",
        "1",
        "--out",
        str(tracked / "run"),
        "--log",
        "mlflow,tensorboard",
    )
    assert code == 2 and "holds a run with other settings" in err
    after = {p: p.stat().st_mtime_ns for p in (tracked / "run").rglob("*") if p.is_file()}
    assert after == before
    code, _, err = run_cli(
        "evaluate",
        str(tracked / "model.onnx"),
        "--data",
        str(tracked / "test.npz"),
        "--ber",
        "0",
        "--log",
        "tensorboard",
    )
    assert code == 2 and "evaluate --log takes mlflow" in err
