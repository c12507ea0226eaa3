"""The ``xnorfault`` command line: mram commands, JSON output, one-line errors with exit 2."""

import json
import subprocess
import sys

import pytest


def test_version(run_cli):
    code, out, _ = run_cli("--version")
    assert code == 0 and out.startswith("xnorfault ")


def test_table_json_reproduces_table_one(run_cli):
    code, out, err = run_cli("mram", "table", "--json")
    assert code == 0, err
    rows = json.loads(out)["points"]
    assert [round(r["wer"], 8) for r in rows] == [1e-6, 0.01, 0.1, 0.01, 0.1]
    assert rows[0]["v_over_vc0"] == pytest.approx(2.78, abs=0.03)
    assert rows[2]["voltage_change"] == pytest.approx(-0.46, abs=0.025)


def test_table_human_output_mentions_the_paper(run_cli):
    code, out, _ = run_cli("mram", "table")
    assert code == 0
    assert "2.783 V_c0" in out and "-36.7 %" in out


def test_wer_sweep_json(run_cli):
    code, out, err = run_cli(
        "mram", "wer", "--voltage", "450mV:650mV:100mV", "--pulse", "10ns", "--json"
    )
    assert code == 0, err
    points = json.loads(out)["points"]
    assert [p["voltage"] for p in points] == pytest.approx([0.45, 0.55, 0.65])
    wers = [p["wer_p_to_ap"] for p in points]
    assert wers[0] > wers[1] > wers[2] > 0
    assert points[0]["p_flip_pos_to_neg"] == points[0]["wer_ap_to_p"]


def test_solve_round_trip(run_cli):
    code, out, _ = run_cli("mram", "solve", "--wer", "0.01", "--pulse", "10ns", "--json")
    assert code == 0
    voltage = json.loads(out)["points"][0]["voltage"]
    code, out, _ = run_cli("mram", "solve", "--wer", "0.01", "--voltage", f"{voltage}", "--json")
    assert json.loads(out)["points"][0]["pulse"] == pytest.approx(1e-8, rel=1e-5)


def test_curve_writes_figure_and_data(run_cli, tmp_path):
    figure = tmp_path / "fig5.png"
    code, out, err = run_cli(
        "mram", "curve", "-o", str(figure), "--points", "8", "--wer", "0.1,1e-6", "--json"
    )
    assert code == 0, err
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(out)
    assert [c["wer"] for c in data["points"]] == [0.1, 1e-6]
    curve = data["points"][1]
    assert all(b < a for a, b in zip(curve["pulse"], curve["pulse"][1:], strict=False))


def test_retention_and_devices(run_cli):
    code, out, _ = run_cli("mram", "retention", "--age", "1y", "--mram-device", "paper", "--json")
    assert code == 0 and json.loads(out)["points"][0]["retention_error"] == pytest.approx(
        0.125, abs=0.01
    )
    code, out, _ = run_cli("mram", "devices", "--json")
    assert {d["name"] for d in json.loads(out)["devices"]} >= {"paper", "asymmetric"}


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["mram", "wer", "--voltage", "0", "--pulse", "10ns"], "voltage must be positive"),
        (["mram", "wer", "--voltage", "0.5", "--pulse", "10 fortnights"], "unknown unit"),
        (["mram", "wer", "--voltage", "0.5", "--pulse", "10"], "has no unit: write it with one"),
        (["mram", "solve", "--wer", "0.01", "--pulse", "5"], "has no unit: write it with one"),
        (["mram", "wer", "--pulse", "10ns"], "Missing option"),
        (["mram", "solve", "--wer", "1.5", "--pulse", "10ns"], "strictly between 0 and 1"),
        (["mram", "solve", "--wer", "0.01"], "exactly one of --pulse"),
        (["mram", "solve", "--wer", "1e-9", "--pulse", "1ns"], "breakdown voltage"),
        (["mram", "table", "--mram-device", "nowhere.toml"], "not found"),
        (["mram", "table", "--direction", "up"], "unknown direction"),
        (["mram", "curve", "-o", "figure.xyz"], "cannot write a figure"),
        (["mram", "frobnicate"], "No such command"),
    ],
)
def test_bad_input_one_line_exit_2(run_cli, args, fragment, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(*args)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert fragment in err
    assert "Traceback" not in err + out
    assert list(tmp_path.iterdir()) == []  # nothing written on failure


def test_entry_point_subprocess():
    result = subprocess.run(
        [sys.executable, "-m", "xnorfault", "mram", "wer", "--voltage", "-1", "--pulse", "1ns"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "error: voltage must be positive and finite, got -1 V"
