"""``xnorfault report``: a generated Markdown report with CSV curves, computed from the records."""

import csv
import json

import numpy as np
import pytest
from helpers import cli_ok
from scipy import stats

TINY = ["--data", "digits", "--limit-train", "256", "--limit-test", "120", "--batch-size", "64"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")

    cli_ok(
        "train",
        *TINY,
        "--ber",
        "0,0.1",
        "--repeats",
        "2",
        "--epochs",
        "2",
        "--out",
        str(folder / "run"),
    )
    cli_ok(
        "export",
        str(folder / "run"),
        "--point",
        "ber=0.1",
        "-o",
        str(folder / "m.onnx"),
        "--testset",
        str(folder / "t.npz"),
    )
    return folder


def test_report_tables_csv_and_figure(run_cli, study, tmp_path):
    code, out, err = run_cli(
        "evaluate",
        str(study / "m.onnx"),
        "--data",
        str(study / "t.npz"),
        "--voltage",
        "0.45:0.65:0.1",
        "--pulse",
        "10ns",
        "--repeats",
        "2",
        "--max-drop",
        "0.02",
        "--json",
    )
    assert code == 0, err
    (tmp_path / "eval.json").write_text(out)
    code, _, err = run_cli(
        "report",
        str(study / "run"),
        "--evaluation",
        str(tmp_path / "eval.json"),
        "-o",
        str(tmp_path / "REPORT.md"),
        "--csv",
        str(tmp_path / "curves.csv"),
    )
    assert code == 0, err
    report = (tmp_path / "REPORT.md").read_text()
    record = json.loads((study / "run" / "record.json").read_text())
    for point in record["points"]:
        finals = [job["epochs"][-1]["test_accuracy"] for job in point["repeats"]]
        assert (
            f"| {point['point']} | 2 | {np.mean(finals):.4f} | {np.std(finals, ddof=1):.4f} |"
            in report
        )
    assert "Welch t-test" in report and "## Against the paper" in report
    assert "Inference under MRAM write errors: m.onnx" in report and "| 0.650 V |" in report
    assert (
        "(report_accuracy_vs_epoch.png)" in report.lower()
        or "REPORT_accuracy_vs_epoch.png" in report
    )
    assert (tmp_path / "REPORT_accuracy_vs_epoch.png").read_bytes()[:4] == b"\x89PNG"
    rows = list(csv.DictReader((tmp_path / "curves.csv").open()))
    assert len(rows) == 2 * 2 * 2 and set(rows[0]) >= {
        "ber",
        "repeat",
        "epoch",
        "test_accuracy",
        "train_accuracy",
    }
    assert {float(r["ber"]) for r in rows} == {0.0, 0.1}
    # the fit table: training minus test accuracy at the last epoch, per repeat, t over repeats
    for point in record["points"]:
        last = [job["epochs"][-1] for job in point["repeats"]]
        gaps = [e["train_accuracy"] - e["test_accuracy"] for e in last]
        assert (
            f"| {point['point']} | 2 | {np.mean([e['train_accuracy'] for e in last]):.4f} | "
            f"{np.mean([e['test_accuracy'] for e in last]):.4f} | {np.mean(gaps) * 100:+.2f} |"
            in report
        )
    # the per-model sweep shows the test set's interval and the paired interval of the change
    sweep = json.loads(out)
    point = sweep["points"][0]
    low, high = point["drop_ci95"]
    assert (
        f"| {point['voltage']:.3f} V | {point['wer_p_to_ap']:.3g} | {point['wer_ap_to_p']:.3g} | "
        f"{point['accuracy_mean']:.4f} | [{point['ci95'][0]:.4f}, {point['ci95'][1]:.4f}] | "
        f"[{point['test_set_ci95'][0]:.4f}, {point['test_set_ci95'][1]:.4f}] | "
        f"{-point['accuracy_drop'] * 100:+.2f} | [{-high * 100:+.2f}, {-low * 100:+.2f}] |"
    ) in report
    assert "by the 95 % interval of its change (test images and flips)" in report


def test_report_errors(run_cli, study, tmp_path):
    code, _, err = run_cli("report", str(study / "run"), "-o", str(tmp_path / "report.txt"))
    assert code == 2 and "should end in .md" in err
    (tmp_path / "bad.json").write_text("{}")
    code, _, err = run_cli(
        "report",
        str(study / "run"),
        "--evaluation",
        str(tmp_path / "bad.json"),
        "-o",
        str(tmp_path / "r.md"),
    )
    assert code == 2 and "not the JSON output" in err
    code, _, err = run_cli("report", str(tmp_path / "nothing"), "-o", str(tmp_path / "r.md"))
    assert code == 2 and "does not exist" in err
    code, _, err = run_cli(
        "report",
        str(study / "run"),
        "--discussion",
        str(tmp_path / "absent.md"),
        "-o",
        str(tmp_path / "r.md"),
    )
    assert code == 2 and "cannot read --discussion" in err
    (tmp_path / "why.md").write_text("Batch norm re-centres the flipped activations.\n")
    code, _, err = run_cli(
        "report",
        str(study / "run"),
        "--discussion",
        str(tmp_path / "why.md"),
        "-o",
        str(tmp_path / "r.md"),
    )
    assert code == 0 and (tmp_path / "r.md").read_text().endswith(
        "## Discussion\n\nBatch norm re-centres the flipped activations.\n"
    )


def test_report_compares_mnist_5k_with_the_papers_mnist_study():
    from xnorfault.report import PAPER_FINDINGS, _paper_key

    key = _paper_key({"model": "lenet4", "data": "mnist-5k"})
    assert key == ("lenet4", "mnist") and "rises from BER 0 to 4 %" in PAPER_FINDINGS[key]


def test_example_scripts_parse():
    import subprocess
    from pathlib import Path

    scripts = sorted((Path(__file__).parent.parent / "examples").glob("*.sh"))
    assert len(scripts) >= 7
    for script in scripts:
        assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0, (
            script
        )


def test_report_pools_the_sweeps_of_every_trained_model(run_cli, study, tmp_path):
    """Sweeps of two repeats of one point become a table across trained models: per voltage the
    mean of each model's change against its own error-free accuracy, with Student's t over
    the models."""
    sweeps = []
    for repeat in (0, 1):
        model = tmp_path / f"r{repeat}.onnx"
        code, _, err = run_cli(
            "export",
            str(study / "run"),
            "--point",
            "ber=0.1",
            "--repeat",
            str(repeat),
            "-o",
            str(model),
        )
        assert code == 0, err
        code, out, err = run_cli(
            "evaluate",
            str(model),
            "--data",
            str(study / "t.npz"),
            "--voltage",
            "0.45,0.6",
            "--pulse",
            "10ns",
            "--repeats",
            "2",
            "--max-drop",
            "0.02",
            "--json",
        )
        assert code == 0, err
        result = json.loads(out)
        assert (
            result["source_run"]["repeat"] == repeat and result["source_run"]["point"] == "ber=0.1"
        )
        path = tmp_path / f"r{repeat}.json"
        path.write_text(out)
        sweeps.append(result)
    code, _, err = run_cli(
        "report",
        str(study / "run"),
        "--evaluation",
        str(tmp_path / "r0.json"),
        "--evaluation",
        str(tmp_path / "r1.json"),
        "-o",
        str(tmp_path / "R.md"),
    )
    assert code == 0, err
    report = (tmp_path / "R.md").read_text()
    assert "## Across trained models: ber=0.1 (2 models, repeats 0, 1)" in report
    for index, voltage in enumerate((0.6, 0.45)):
        points = [s["points"][index] for s in sweeps]
        changes = [
            p["accuracy_mean"] - s["baseline_accuracy"] for p, s in zip(points, sweeps, strict=True)
        ]
        assert points[0]["voltage"] == pytest.approx(voltage)
        # three sources as 95 % half-widths; combined = between models (+) test images
        flips = np.mean([(p["ci95"][1] - p["ci95"][0]) / 2 for p in points])
        models = stats.t.ppf(0.975, 1) * np.std(changes, ddof=1) / np.sqrt(2)
        images = np.mean([(p["drop_ci95"][1] - p["drop_ci95"][0]) / 2 for p in points])
        combined = np.hypot(models, images)
        mean = np.mean(changes)
        verdict = "yes" if mean - combined > -0.02 else "not shown"
        assert (
            f"| {voltage:.3f} V | {np.mean([p['accuracy_mean'] for p in points]):.4f} | "
            f"{mean * 100:+.2f} | {flips * 100:.2f} | {models * 100:.2f} | {images * 100:.2f} | "
            f"[{(mean - combined) * 100:+.2f}, {(mean + combined) * 100:+.2f}] | {verdict} |"
        ) in report
    assert "across the trained models (it and every higher swept voltage)" in report
