"""``xnorfault deploy``: a self-contained bundle that evaluates a trained network on a target.

A Raspberry Pi has no torch and no dataset loaders, so the bundle carries everything already
prepared:

* ``model.onnx`` — the exported network with bit flips injected at every binary activation,
  rates as inputs (default 0), so one file serves any BER or write-voltage sweep;
* ``test.npz`` — the preprocessed test split (``x``, ``y``, ``classes``);
* ``device.toml`` — the MRAM device whose write-error rates the sweep maps voltages through;
* ``target.toml`` — the target profile (threads, batch sizes);
* ``xnorfault-VERSION-py3-none-any.whl`` and ``requirements-aarch64.txt`` — xnorfault itself and
  the exact versions of everything it imports, pinned to what this machine runs;
* ``model.tflite`` with ``--lce`` — the LCE export, for ``lce_benchmark_model`` latency;
* ``README.md`` (the commands to run on the target) and ``manifest.json`` (sha256 of every file,
  source run, parity of the export).

The bundle is assembled in a temporary folder beside the output and renamed into place, so an
interrupted deploy leaves no half bundle.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata as importlib_metadata
from pathlib import Path

from xnorfault.errors import XnorfaultError

# What the deployed side imports; their own dependencies are added by walking the metadata.
DEPLOYED_REQUIREMENTS = (
    "numpy",
    "scipy",
    "onnx",
    "onnxruntime",
    "flatbuffers",
    "threadpoolctl",
    "typer",
    "rich",
    "matplotlib",
)


def pinned_requirements(roots=DEPLOYED_REQUIREMENTS) -> list[str]:
    """``name==version`` for ``roots`` and everything they require (no extras), as installed here."""
    from packaging.requirements import Requirement

    pinned: dict[str, str] = {}
    pending = list(roots)
    while pending:
        name = pending.pop()
        key = name.lower().replace("_", "-")
        if key in pinned:
            continue
        try:
            distribution = importlib_metadata.distribution(name)
        except importlib_metadata.PackageNotFoundError:
            raise XnorfaultError(
                f"{name} is not installed here, so the bundle cannot pin it: install xnorfault's core dependencies"
            ) from None
        pinned[key] = distribution.version
        for line in distribution.requires or []:
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate(
                {"extra": "", "platform_machine": "aarch64", "sys_platform": "linux"}
            ):
                continue
            pending.append(requirement.name)
    return [f"{name}=={version}" for name, version in sorted(pinned.items())]


def source_root() -> Path | None:
    """The source tree xnorfault is installed from (editable installs), if any."""
    import xnorfault

    root = Path(xnorfault.__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() else None


def build_wheel(destination: Path, wheel: Path | None = None) -> Path:
    """xnorfault's wheel in ``destination``: the given one, or built from the source tree."""
    if wheel is not None:
        if not (wheel.is_file() and wheel.suffix == ".whl" and wheel.name.startswith("xnorfault-")):
            raise XnorfaultError(f"--wheel {wheel} is not an xnorfault wheel file")
        return Path(shutil.copy2(wheel, destination / wheel.name))
    root = source_root()
    if root is None:
        raise XnorfaultError(
            "xnorfault is not installed from a source tree, so its wheel cannot be built here: give --wheel PATH"
        )
    with tempfile.TemporaryDirectory(prefix="xnorfault-wheel-") as scratch:
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "--no-build-isolation",
                "--wheel-dir",
                scratch,
                str(root),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        built = sorted(Path(scratch).glob("xnorfault-*.whl"))
        if completed.returncode != 0 or not built:
            detail = (completed.stderr.strip().splitlines() or ["no output"])[-1]
            raise XnorfaultError(f"building the xnorfault wheel failed ({detail})")
        return Path(shutil.move(str(built[0]), destination / built[0].name))


def _readme(target, wheel_name: str, device_name: str, lce: bool, summary: dict) -> str:
    batches = ",".join(str(b) for b in target.latency_batches)
    lines = [
        f"# xnorfault bundle for {target.description}",
        "",
        f"Model: {summary['model']} trained at {summary['point']} (repeat {summary['repeat']}), "
        f"test accuracy {summary['onnx_test_accuracy']:.4f} on {summary['test_images']} images "
        "(error-free, onnxruntime on the build machine).",
        f"MRAM device: {device_name} (`device.toml`).",
        "",
        f"## On the target ({target.os or target.architecture}, Python {target.python or '3'})",
        "",
        "```sh",
        "python3 -m venv ~/xnorfault-env",
        f"~/xnorfault-env/bin/pip install -r requirements-aarch64.txt {wheel_name}",
        "# error-free accuracy and latency",
        f"~/xnorfault-env/bin/xnorfault evaluate model.onnx --data test.npz --target {target.name} --ber 0",
        "# accuracy under a write-voltage sweep of the MRAM device, with latency",
        f"~/xnorfault-env/bin/xnorfault evaluate model.onnx --data test.npz --target {target.name} \\",
        "    --device device.toml --voltage 0.40:0.80:0.05 --pulse 10ns --repeats 10 \\",
        f"    --batch {batches} --max-drop 0.01 --json > voltage_sweep.json",
        "```",
        "",
        f"`--target {target.name}` sets {target.threads} threads and latency batch size(s) {batches} "
        "and records the profile and the machine the evaluation ran on in the JSON.",
    ]
    if lce:
        lines += [
            "",
            "## Larq Compute Engine latency",
            "",
            "PyPI has no aarch64 wheel of larq-compute-engine. Download `lce_benchmark_model` for",
            "aarch64 from the Larq Compute Engine releases, then:",
            "",
            "```sh",
            f"~/xnorfault-env/bin/xnorfault evaluate model.onnx --data test.npz --target {target.name} --ber 0,0.01 \\",
            "    --backend lce-benchmark --lce-benchmark-binary ./lce_benchmark_model --lce-model model.tflite",
            "```",
            "",
            "Latency then comes from LCE's binary kernels running `model.tflite`; accuracy still comes",
            "from the ONNX path (`model.onnx` on onnxruntime), which is the same network.",
        ]
    return "\n".join(lines) + "\n"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def deploy(
    run_dir,
    output,
    target_name: str,
    point: str | None = None,
    repeat: int = 0,
    device: str = "paper",
    lce: bool = False,
    wheel: Path | None = None,
    force: bool = False,
) -> dict:
    """Write a deployment bundle for ``target_name`` to the folder ``output``; returns the manifest."""
    from xnorfault import __version__
    from xnorfault.exporters.onnx import export_run
    from xnorfault.faults import FlipRates
    from xnorfault.inject import inject_flips, load_model, metadata
    from xnorfault.io import atomic_write_text
    from xnorfault.mram import available_devices, load_device
    from xnorfault.mram.device import preset_toml
    from xnorfault.targets import load_target, profile_text

    target = load_target(target_name)
    if target.name == "host":
        raise XnorfaultError(
            "deploy needs a device target such as raspberry-pi-4 (host is for evaluate --target)"
        )
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise XnorfaultError(f"{output} exists and is not a folder: give a folder for the bundle")
    if output.is_dir() and any(output.iterdir()) and not force:
        raise XnorfaultError(
            f"{output} is not empty: choose a new folder or pass --force to replace it"
        )
    mtj = load_device(device)
    device_text = (
        preset_toml(device)
        if str(device) in available_devices()
        else Path(device).read_text(encoding="utf-8")
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=output.parent))
    try:
        summary = export_run(run_dir, staging / "model.onnx", point, repeat, staging / "test.npz")
        clean = load_model(staging / "model.onnx")
        injected = inject_flips(clean, FlipRates(), source={"deploy": target.name})
        (staging / "model.onnx").write_bytes(injected.SerializeToString())
        props = metadata(clean)
        model_info = json.loads(props["xnorfault.source_run"])
        model_name = json.loads(props["xnorfault.model"])["name"]
        lce_summary = None
        if lce:
            from xnorfault.exporters.lce import export_lce_run

            lce_summary = export_lce_run(run_dir, staging / "model.tflite", point, repeat)
        (staging / "device.toml").write_text(device_text, encoding="utf-8")
        (staging / "target.toml").write_text(profile_text(target_name), encoding="utf-8")
        built = build_wheel(staging, wheel)
        requirements = pinned_requirements()
        header = (
            f"# Pinned for {target.description}: {target.architecture}, CPython {target.python}, "
            f"wheels for {', '.join(target.wheel_platforms) or target.architecture}.\n"
            "# The versions this bundle was built and tested with; each publishes aarch64 wheels.\n"
        )
        (staging / "requirements-aarch64.txt").write_text(header + "\n".join(requirements) + "\n")
        readme_summary = {
            "model": model_name,
            "point": model_info["point"],
            "repeat": model_info["repeat"],
            "onnx_test_accuracy": summary["onnx_test_accuracy"],
            "test_images": summary["test_images"],
        }
        (staging / "README.md").write_text(
            _readme(target, built.name, mtj.name, lce, readme_summary)
        )
        manifest = {
            "format": "xnorfault-bundle/1",
            "xnorfault_version": __version__,
            "target": target.to_dict(),
            "source_run": model_info,
            "model": model_name,
            "binary_sites": summary["binary_sites"],
            "export_parity": {
                key: summary[key]
                for key in ("argmax_agreement", "max_abs_logit_difference", "onnx_test_accuracy")
            },
            "lce": None
            if lce_summary is None
            else {
                key: lce_summary[key]
                for key in (
                    "binary_kernels",
                    "argmax_agreement_with_onnx",
                    "lce_test_accuracy",
                )
            },
            "requirements": requirements,
            "wheel": built.name,
            "files": {
                path.name: {"bytes": path.stat().st_size, "sha256": _sha256(path)}
                for path in sorted(staging.iterdir())
            },
        }
        atomic_write_text(staging / "manifest.json", json.dumps(manifest, indent=2) + "\n")
        # temporary files are private; a bundle is meant to be copied and read by others
        staging.chmod(0o755)
        for path in staging.iterdir():
            path.chmod(0o644)
        if output.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{output.name}.old-", dir=output.parent))
            output.rename(retired / output.name)
            staging.rename(output)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            staging.rename(output)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    manifest["output"] = str(output)
    return manifest
