"""Deployment targets and the Raspberry Pi bundle of ``xnorfault deploy``."""

import hashlib
import json
import platform
from importlib.metadata import version

import numpy as np
import onnx
import pytest
from helpers import cli_ok

from xnorfault.errors import XnorfaultError
from xnorfault.targets import available_targets, load_target, machine_description, profile_text

TINY = ["--data", "digits", "--limit-train", "256", "--limit-test", "120", "--batch-size", "64"]


def test_builtin_profiles_and_alias():
    assert {"raspberry-pi-4", "raspberry-pi-5", "host"} <= set(available_targets())
    pi4, pi5 = load_target("raspberry-pi-4"), load_target("raspberry-pi-5")
    assert (pi4.cpu, pi4.cores, pi4.architecture) == ("Cortex-A72", 4, "aarch64")
    assert (pi5.cpu, pi5.cores) == ("Cortex-A76", 4)
    assert load_target("raspberry-pi") == pi4
    host = load_target("host")
    assert host.architecture == platform.machine() and host.threads == host.cores


def test_unknown_target_and_bad_profiles(tmp_path):
    with pytest.raises(XnorfaultError, match="unknown target 'raspberry-pi-9'.*raspberry-pi-4"):
        load_target("raspberry-pi-9")
    bad = tmp_path / "board.toml"
    bad.write_text(
        'name = "b"\ndescription = "d"\narchitecture = "aarch64"\ncpu = "A53"\ncores = 4\nthreads = 0\n'
    )
    with pytest.raises(XnorfaultError, match="threads must be a positive integer"):
        load_target(bad)
    bad.write_text(
        'name = "b"\ndescription = "d"\narchitecture = "aarch64"\ncpu = "A53"\ncores = 4\nthreads = 4\nclock = 1\n'
    )
    with pytest.raises(XnorfaultError, match="unknown key.*clock"):
        load_target(bad)
    bad.write_text(
        'name = "b"\ndescription = "d"\narchitecture = "aarch64"\ncpu = "A53"\ncores = 4\nthreads = 2\n'
    )
    assert load_target(bad).threads == 2
    assert profile_text(bad) == bad.read_text()


def test_machine_description_reads_an_arm_cpuinfo(monkeypatch):
    import xnorfault.targets as targets

    monkeypatch.setattr(
        targets,
        "_cpuinfo",
        lambda: {"CPU part": "0xd0b", "Model": "Raspberry Pi 5 Model B Rev 1.0"},
    )
    described = machine_description()
    assert described["cpu"] == "Cortex-A76"
    assert described["board"] == "Raspberry Pi 5 Model B Rev 1.0"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("deploy")
    cli_ok("train", *TINY, "--ber", "0,0.04", "--epochs", "1", "--out", str(folder / "run"))
    cli_ok(
        "deploy",
        str(folder / "run"),
        "--point",
        "ber=0.04",
        "--target",
        "raspberry-pi-4",
        "-o",
        str(folder / "bundle"),
    )
    return folder


def test_bundle_holds_everything_the_pi_needs(trained):
    bundle = trained / "bundle"
    names = {path.name for path in bundle.iterdir()}
    wheel = next(name for name in names if name.endswith(".whl"))
    assert wheel.startswith("xnorfault-") and wheel.endswith("-py3-none-any.whl")
    assert names == {
        "model.onnx",
        "test.npz",
        "device.toml",
        "target.toml",
        "requirements-aarch64.txt",
        "README.md",
        "manifest.json",
        wheel,
    }
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert all(path.stat().st_mode & 0o044 == 0o044 for path in bundle.iterdir())
    for name, entry in manifest["files"].items():
        assert hashlib.sha256((bundle / name).read_bytes()).hexdigest() == entry["sha256"]
    assert manifest["source_run"]["point"] == "ber=0.04"
    assert manifest["target"]["name"] == "raspberry-pi-4"
    # the model carries flips at every binary site with the rates as inputs, default 0
    model = onnx.load(str(bundle / "model.onnx"))
    inputs = {i.name for i in model.graph.input}
    assert {"p_flip_pos.act1", "p_flip_neg.act1", "p_flip_pos.act2", "p_flip_neg.act2"} <= inputs
    injected = json.loads(
        next(p.value for p in model.metadata_props if p.key == "xnorfault.injected")
    )
    assert all(r["pos_to_neg"] == 0 and r["neg_to_pos"] == 0 for r in injected["rates"].values())
    # trained without a write model: the bundle's model flips every write (iid)
    assert injected["write"]["model"] == "iid" and manifest["write_model"]["model"] == "iid"
    data = np.load(bundle / "test.npz")
    assert data["x"].shape == (120, 1, 28, 28) and data["x"].dtype == np.float32
    pins = dict(
        line.split("==")
        for line in (bundle / "requirements-aarch64.txt").read_text().splitlines()
        if "==" in line
    )
    for package in ("numpy", "onnx", "onnxruntime"):
        assert pins[package] == version(package)
    assert "torch" not in pins and "brevitas" not in pins
    readme = (bundle / "README.md").read_text()
    assert f"pip install -r requirements-aarch64.txt {wheel}" in readme
    assert "xnorfault evaluate model.onnx --data test.npz --target raspberry-pi-4" in readme
    assert "Write model: `iid`" in readme
    assert load_target(bundle / "target.toml") == load_target("raspberry-pi-4")
    assert "\n".join(manifest["requirements"]) in (bundle / "requirements-aarch64.txt").read_text()


def test_bundle_evaluates_like_the_export(trained, run_cli):
    """The bundle's evaluate with the Pi profile: its threads, batch 1 latency, recorded."""
    bundle = trained / "bundle"
    code, out, err = run_cli(
        "evaluate",
        str(bundle / "model.onnx"),
        "--data",
        str(bundle / "test.npz"),
        "--target",
        "raspberry-pi-4",
        "--mram-device",
        str(bundle / "device.toml"),
        "--voltage",
        "0.5,0.8",
        "--pulse",
        "10ns",
        "--repeats",
        "2",
        "--latency-iterations",
        "2",
        "--json",
    )
    assert code in (0, None), err
    result = json.loads(out)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert result["baseline_accuracy"] == pytest.approx(
        manifest["export_parity"]["onnx_test_accuracy"]
    )
    assert result["target"]["name"] == "raspberry-pi-4"
    assert result["backend"]["threads"] == 4
    assert result["machine"]["architecture"] == platform.machine()
    assert all(list(p["latency"]) == ["1"] for p in result["points"])


def test_existing_bundle_is_kept_without_force(trained, run_cli):
    bundle = trained / "bundle"
    before = {p.name: p.read_bytes() for p in bundle.iterdir()}
    code, out, err = run_cli(
        "deploy",
        str(trained / "run"),
        "--point",
        "ber=0",
        "--target",
        "raspberry-pi-5",
        "-o",
        str(bundle),
    )
    assert code == 2 and "--force" in err and err.count("\n") == 1
    assert {p.name: p.read_bytes() for p in bundle.iterdir()} == before
    assert not list(trained.glob(".bundle.deploy-staging.*"))


def test_deploy_bad_input_is_one_line(trained, run_cli, tmp_path):
    code, _, err = run_cli(
        "deploy", str(trained / "run"), "--target", "jetson", "-o", str(tmp_path / "b")
    )
    assert code == 2 and "unknown target 'jetson'" in err and err.count("\n") == 1
    code, _, err = run_cli(
        "deploy", str(trained / "run"), "--target", "raspberry-pi", "-o", str(tmp_path / "b")
    )
    assert code == 2 and "several fault points" in err and "--point" in err
    empty = tmp_path / "notarun"
    empty.mkdir()
    code, _, err = run_cli(
        "deploy", str(empty), "--target", "raspberry-pi", "-o", str(tmp_path / "b")
    )
    assert code == 2 and "not a run directory" in err and err.count("\n") == 1
    assert not (tmp_path / "b").exists()


def test_force_replaces_an_earlier_bundle_for_a_custom_target(
    trained, run_cli, tmp_path, xnorfault_wheel
):
    """Under umask 027 the new bundle's files are 0640 and its folder 0750 (a bundle follows the
    umask like any output); a custom target's README names the shipped target.toml."""
    import os
    import shutil
    import stat

    bundle = tmp_path / "bundle"
    shutil.copytree(trained / "bundle", bundle)
    board = tmp_path / "my_board.toml"
    board.write_text(
        profile_text("raspberry-pi-4").replace('name = "raspberry-pi-4"', 'name = "my-board"')
    )
    previous = os.umask(0o027)
    try:
        code, _, err = run_cli(
            "deploy",
            str(trained / "run"),
            "--point",
            "ber=0",
            "--target",
            str(board),
            "-o",
            str(bundle),
            "--wheel",
            str(xnorfault_wheel),
            "--force",
            "--write-model",
            "previous",
            "--initial-state",
            "random",
        )
    finally:
        os.umask(previous)
    assert code == 0, err
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["source_run"]["point"] == "ber=0" and manifest["target"]["name"] == "my-board"
    # the write model asked for travels in the model, the manifest and the README
    model = onnx.load(str(bundle / "model.onnx"))
    injected = json.loads(
        next(p.value for p in model.metadata_props if p.key == "xnorfault.injected")
    )
    assert injected["write"] == {"model": "previous", "initial_state": "random"}
    assert manifest["write_model"] == injected["write"]
    assert {n.op_type for n in model.graph.node if n.domain == "xnorfault"} == {"BitFlipPrevious"}
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o750
    assert {stat.S_IMODE(p.stat().st_mode) for p in bundle.iterdir()} == {0o640}
    readme = (bundle / "README.md").read_text()
    assert "--target target.toml" in readme and "--target my-board" not in readme
    assert "Write model: `previous` (initial state random)" in readme
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "my_board.toml"]


def test_operating_points_become_the_models_default_rates(
    trained, run_cli, tmp_path, xnorfault_wheel
):
    """A bundle built with per-site operating points ships them, its model defaults to each
    site's rates on the bundle's device, and its README evaluates them; a site the model lacks
    is a one-line error."""
    from xnorfault.mram import load_device

    points = tmp_path / "points.toml"
    points.write_text(
        'format = "xnorfault-operating-points/1"\n'
        '[sites.act1]\nvoltage = "450mV"\npulse = "10ns"\n'
        '[sites.act2]\nvoltage = "520mV"\npulse = "5ns"\n'
    )
    bundle = tmp_path / "bundle"
    code, _, err = run_cli(
        "deploy",
        str(trained / "run"),
        "--point",
        "ber=0",
        "--target",
        "raspberry-pi-4",
        "-o",
        str(bundle),
        "--wheel",
        str(xnorfault_wheel),
        "--operating-points",
        str(points),
        "--mram-device",
        "asymmetric",
    )
    assert code == 0, err
    assert (bundle / "operating_points.toml").read_text() == points.read_text()
    model = onnx.load(str(bundle / "model.onnx"))
    injected = json.loads(
        next(p.value for p in model.metadata_props if p.key == "xnorfault.injected")
    )
    device = load_device("asymmetric")
    for site, (voltage, pulse) in {"act1": (0.45, 1e-8), "act2": (0.52, 5e-9)}.items():
        pos_to_neg, neg_to_pos = device.flip_rates(voltage, pulse)
        assert injected["rates"][site]["pos_to_neg"] == pytest.approx(pos_to_neg)
        assert injected["rates"][site]["neg_to_pos"] == pytest.approx(neg_to_pos)
    assert "operating_points.json" in (bundle / "README.md").read_text()
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["operating_points"]["act2"]["pulse"] == pytest.approx(5e-9)
    points.write_text(
        'format = "xnorfault-operating-points/1"\n[sites.conv9]\nvoltage = "450mV"\npulse = "10ns"\n'
    )
    code, _, err = run_cli(
        "deploy",
        str(trained / "run"),
        "--point",
        "ber=0",
        "--target",
        "raspberry-pi-4",
        "-o",
        str(tmp_path / "other"),
        "--operating-points",
        str(points),
    )
    assert code == 2 and "conv9" in err and not (tmp_path / "other").exists()
