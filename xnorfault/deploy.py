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
* ``operating_points.toml`` with ``--operating-points`` — per-site write voltages and pulses
  (``xnorfault optimize``), whose rates the model then carries as its defaults;
* ``README.md`` (the commands to run on the target) and ``manifest.json`` (sha256 of every file,
  source run, parity of the export).

The bundle is assembled in a staging folder beside the output and moved into place in one
atomic step (an exchange of the two folder names where the system has ``renameat2``), so a
deploy killed at any moment leaves the old bundle or the new one, never half of one and never
neither. Staging folders of killed deploys are removed by the next deploy to the same output.
``--force`` replaces only a folder that is recognisably an earlier bundle: its
``manifest.json`` is a bundle manifest and lists every file the folder holds. An output that is,
contains or lies inside the source run is refused, so a deploy can never delete a run.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path

import onnx

from xnorfault.errors import XnorfaultError
from xnorfault.io import left_by_dead_writer, temporary_prefix

BUNDLE_FORMAT = "xnorfault-bundle/1"
STAGING_TAG = ".deploy-staging"

# What the deployed side imports; their own dependencies are added by walking the metadata.
DEPLOYED_REQUIREMENTS = (
    "numpy",
    "scipy",
    "onnx",
    "onnxruntime",
    "onnx_ir",
    "onnxscript",
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
        # the content only: a bundle's files follow the umask, not the given file's mode
        return Path(shutil.copyfile(wheel, destination / wheel.name))
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


def _readme(
    target,
    target_option: str,
    wheel_name: str,
    device_name: str,
    lce: bool,
    model_line: str,
    described: dict,
) -> str:
    batches = ",".join(str(b) for b in target.latency_batches)
    extra = described.get("evaluate_options", "")
    lines = [
        f"# xnorfault bundle for {target.description}",
        "",
        f"Model: {model_line}",
        f"MRAM device: {device_name} (`device.toml`).",
        f"Write model: {_write_line(described.get('write_model'))}",
        "",
        f"## On the target ({target.os or target.architecture}, Python {target.python or '3'})",
        "",
        "```sh",
        "python3 -m venv ~/xnorfault-env",
        f"~/xnorfault-env/bin/pip install -r requirements-aarch64.txt {wheel_name}",
        "# error-free accuracy and latency",
        f"~/xnorfault-env/bin/xnorfault evaluate model.onnx --data test.npz --target {target_option}{extra} --ber 0",
        "# accuracy under a write-voltage sweep of the MRAM device, with latency (the model's own,"
        " its graph without flips, and the simulation's overhead beside it)",
        f"~/xnorfault-env/bin/xnorfault evaluate model.onnx --data test.npz --target {target_option}{extra} \\",
        "    --mram-device device.toml --voltage 0.40:0.80:0.05 --pulse 10ns --repeats 10 \\",
        f"    --latency-batches {batches} --max-drop 0.01 --json > voltage_sweep.json",
    ]
    if described.get("operating_points"):
        lines += [
            "# accuracy at the per-site operating points of operating_points.toml (the model's"
            " default rates)",
            f"~/xnorfault-env/bin/xnorfault evaluate model.onnx --data test.npz --target {target_option}{extra} \\",
            "    --repeats 10 --json > operating_points.json",
        ]
    lines += [
        "```",
        "",
        f"`--target {target_option}` sets {target.threads} threads and latency batch size(s) {batches} "
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
            f"~/xnorfault-env/bin/xnorfault evaluate model.onnx --data test.npz --target {target_option} --ber 0,0.01 \\",
            "    --backend lce-benchmark --lce-benchmark-binary ./lce_benchmark_model --lce-model model.tflite",
            "```",
            "",
            "Latency then comes from LCE's binary kernels running `model.tflite`; accuracy still comes",
            "from the ONNX path (`model.onnx` on onnxruntime), which is the same network.",
        ]
    return "\n".join(lines) + "\n"


def inject_for_bundle(clean, target, write, points, device):
    """The bundle's model: flips at every binary site, at rate 0 — or, with per-site operating
    ``points`` (from 'xnorfault optimize --operating-points'), at each site's rates on
    ``device`` as the defaults — under ``write``."""
    from xnorfault.faults import FlipRates
    from xnorfault.graph.contract import INJECTED_KEY
    from xnorfault.graph.rewrite import inject_flips, metadata

    source = {"deploy": target.name}
    rates: FlipRates | dict = FlipRates()
    if points is not None:
        rates = {site: FlipRates(*device.flip_rates(v, t)) for site, (v, t) in points.items()}
        source["operating_points"] = {
            site: {"voltage": v, "pulse": t} for site, (v, t) in points.items()
        }
    injected = inject_flips(clean, rates, source=source, write=write)
    if points is not None:
        sites = json.loads(metadata(injected)[INJECTED_KEY])["sites"]
        unknown = sorted(set(points) - set(sites))
        if unknown:
            raise XnorfaultError(
                f"--operating-points names site(s) {', '.join(unknown)} the model does not have "
                f"(its binary sites: {', '.join(sites)})"
            )
    return injected


def _write_line(write: dict | None) -> str:
    """The bundle README's sentence on the write model its ``model.onnx`` carries."""
    write = write or {"model": "iid"}
    if write["model"] == "previous":
        return (
            f"`previous` (initial state {write['initial_state']}): a write fails only where it must "
            "switch the cell; `evaluate` uses it unless given `--write-model`."
        )
    if write["model"] == "reset":
        return (
            f"`reset` to {write['initial_state']} before every write; `evaluate` uses it unless "
            "given `--write-model`."
        )
    return "`iid` (every write switches: the upper bound); `--write-model previous` on `evaluate` re-injects."


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_bundle_output(output: Path, run_dir: Path, force: bool) -> None:
    """Refuse an output that could destroy what deploy did not create: the source (a run or
    a model file), a folder holding it or one inside it, and (without ``force``, or when it is
    not an earlier bundle) a non-empty folder."""
    resolved, run = output.resolve(), Path(run_dir).resolve()
    if resolved == run or run in resolved.parents or resolved in run.parents:
        kind = "model" if run.is_file() else "run"
        raise XnorfaultError(
            f"-o {output} is, holds or lies inside the source {kind} {run_dir}: write the bundle to a "
            f"folder outside the {kind}"
        )
    if output.exists() and not output.is_dir():
        raise XnorfaultError(f"{output} exists and is not a folder: give a folder for the bundle")
    if not output.is_dir() or not any(output.iterdir()):
        return
    if not force:
        raise XnorfaultError(
            f"{output} is not empty: choose a new folder or pass --force to replace an earlier bundle"
        )
    foreign = bundle_strangers(output)
    if foreign is None:
        raise XnorfaultError(
            f"{output} is not a bundle of xnorfault deploy (no bundle manifest.json): --force "
            "replaces only an earlier bundle; choose a new folder"
        )
    if foreign:
        raise XnorfaultError(
            f"{output} holds files its bundle manifest does not list ({', '.join(foreign[:5])}): "
            "--force would delete them; move them out or choose a new folder"
        )


def bundle_strangers(folder: Path) -> list[str] | None:
    """Entries of ``folder`` that its bundle manifest does not list (``[]``: a pristine bundle),
    or ``None`` when ``folder`` holds no readable bundle manifest."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        return None
    listed = set(manifest.get("files") or {}) | {"manifest.json"}
    return sorted(
        entry.name
        for entry in folder.iterdir()
        if entry.name not in listed or not entry.is_file() or entry.is_symlink()
    )


def _staging_prefix(output: Path) -> str:
    return temporary_prefix(output.name + STAGING_TAG)


def remove_stale_staging(output: Path) -> list[Path]:
    """Remove the staging folders that deploys to ``output`` killed on this host left beside it
    (their process is gone): a half-built bundle, or the earlier bundle an exchange moved out.
    Folders of deploys still running, and of other hosts, are left alone."""
    removed = []
    prefix = f".{output.name}{STAGING_TAG}."
    if not output.parent.is_dir():
        return removed
    for entry in output.parent.iterdir():
        if not entry.name.startswith(prefix) or not entry.is_dir() or entry.is_symlink():
            continue
        if not left_by_dead_writer(entry.name):
            continue
        retired = entry / output.name
        if not output.exists() and retired.is_dir():
            retired.rename(output)  # a fallback replace was killed between its two renames
        shutil.rmtree(entry)
        removed.append(entry)
    return removed


def exchange_folders(first: Path, second: Path) -> bool:
    """Swap two folder names in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``).
    Returns False where the system or file system cannot, so the caller falls back."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_current_folder, rename_exchange = -100, 2
    result = renameat2(
        at_current_folder,
        os.fsencode(first),
        at_current_folder,
        os.fsencode(second),
        ctypes.c_uint(rename_exchange),
    )
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(second))


def move_into_place(staging: Path, output: Path) -> None:
    """Put the finished bundle ``staging`` at ``output``, replacing an earlier bundle there.

    With an exchange the old bundle ends up in ``staging`` in the same step, then is removed; a
    kill at any point leaves one complete bundle at ``output``. Without one, the old bundle is
    moved into the staging folder first and the new one renamed into place; a kill between the
    two renames is repaired by :func:`remove_stale_staging` on the next deploy, which moves the
    old bundle back."""
    if not output.exists():
        staging.rename(output)
        return
    if bundle_strangers(output) != []:  # changed since the check that allowed --force
        raise XnorfaultError(
            f"{output} changed while the bundle was built and is no longer a pristine bundle: "
            "nothing was replaced; run deploy again"
        )
    if exchange_folders(staging, output):
        shutil.rmtree(staging)
        return
    holder = Path(tempfile.mkdtemp(prefix=_staging_prefix(output), dir=output.parent))
    output.rename(holder / output.name)
    staging.rename(output)
    shutil.rmtree(holder)


def _stage_run(
    run_dir, staging: Path, target, point, repeat, lce: bool, write, points, mtj
) -> dict:
    """A trained run's network in ``staging``: exported, injected at rate 0 under ``write``
    (``None``: the write model it was trained with), its test split; with ``lce`` also the LCE
    export. Returns the manifest's description of the model."""
    from xnorfault.exporters.onnx import export_run
    from xnorfault.faults import WriteModel
    from xnorfault.graph.contract import MODEL_KEY, SOURCE_RUN_KEY, metadata_key
    from xnorfault.graph.rewrite import load_model, metadata, save_model

    summary = export_run(run_dir, staging / "model.onnx", point, repeat, staging / "test.npz")
    clean = load_model(staging / "model.onnx")
    props = metadata(clean)
    if write is None:
        trained_with = json.loads(props.get(metadata_key("training_fault_spec"), "{}") or "{}")
        write = WriteModel.from_dict((trained_with or {}).get("write"))
    injected = inject_for_bundle(clean, target, write, points, mtj)
    save_model(injected, staging / "model.onnx")
    model_info = json.loads(props[SOURCE_RUN_KEY])
    model_name = json.loads(props[MODEL_KEY])["name"]
    lce_summary = None
    if lce:
        from xnorfault.exporters.lce import export_lce_run

        lce_summary = export_lce_run(run_dir, staging / "model.tflite", point, repeat)
    return {
        "readme": f"{model_name} trained at {model_info['point']} (repeat {model_info['repeat']}), "
        f"test accuracy {summary['onnx_test_accuracy']:.4f} on {summary['test_images']} images "
        "(error-free, onnxruntime on the build machine).",
        "source_run": model_info,
        "model": model_name,
        "binary_sites": summary["binary_sites"],
        "write_model": write.to_dict(),
        "export_parity": {
            key: summary[key]
            for key in ("argmax_agreement", "max_abs_logit_difference", "onnx_test_accuracy")
        },
        "lce": None
        if lce_summary is None
        else {
            key: lce_summary[key]
            for key in ("binary_kernels", "argmax_agreement_with_onnx", "lce_test_accuracy")
        },
    }


def _stage_onnx_model(
    model_path: Path, data: Path, staging: Path, target, layout, output_name, write, points, mtj
) -> dict:
    """A model brought as an ONNX file, with its test set (``.npz``), in ``staging``: checked
    as ``evaluate`` would (it runs here on onnxruntime, the test set fits it), injected at rate
    0, its error-free accuracy measured here. Returns the manifest's description of the model."""
    from xnorfault.evaluation.runner import TestSetRunner
    from xnorfault.evaluation.testset import load_test_set
    from xnorfault.faults import WriteModel
    from xnorfault.graph.contract import OUTPUT_KEY
    from xnorfault.graph.inspection import inspect_graph
    from xnorfault.graph.rewrite import load_model, save_model
    from xnorfault.runtimes.onnxruntime import OnnxRuntimeBackend

    write = write or WriteModel()
    clean = load_model(model_path)
    report = inspect_graph(clean)
    injected = inject_for_bundle(clean, target, write, points, mtj)
    with OnnxRuntimeBackend(injected, output=output_name, layout=layout) as backend:
        images, labels = load_test_set(str(data), backend)
        baseline = TestSetRunner(
            backend, images, labels, seed=0, labels_source=f"{data}: labels (y)"
        )
        accuracy = baseline.accuracy({})
        chosen_output = backend.output_name
    # the target reads the logits without being told: the model names them
    onnx.helper.set_model_props(
        injected, {**{p.key: p.value for p in injected.metadata_props}, OUTPUT_KEY: chosen_output}
    )
    save_model(injected, staging / "model.onnx")
    shutil.copyfile(data, staging / "test.npz")
    return {
        "readme": f"{model_path.name} (brought as ONNX), error-free accuracy {accuracy:.4f} on "
        f"{len(labels)} images of {data.name} (onnxruntime on the build machine).",
        "source_model": {"file": model_path.name, "sha256": _sha256(model_path)},
        "model": model_path.stem,
        "binary_sites": [site.name for site in report.sites],
        "model_report": report.summary(),
        "write_model": write.to_dict(),
        "baseline_accuracy": accuracy,
        "lce": None,
        "evaluate_options": "" if layout is None else f" --layout {layout.lower()}",
    }


@dataclass(frozen=True)
class DeploySource:
    """What the bundle ships: a run of ``xnorfault train`` (its ``point`` and ``repeat``), or
    an ONNX model brought from elsewhere with its test set ``data`` (``.npz`` of ``x``, ``y``;
    ``layout`` and ``output_name`` as ``evaluate``'s ``--layout`` and ``--output-name``)."""

    path: Path
    point: str | None = None
    repeat: int = 0
    data: Path | None = None
    layout: str | None = None
    output_name: str | None = None


@dataclass(frozen=True)
class DeployMemory:
    """The MRAM the bundle's model runs on: the device (a preset or a TOML file), the write
    model its model carries (a :class:`~xnorfault.faults.WriteModel`; ``None``: the one a run
    was trained with, ``iid`` for an ONNX model), and per-site operating points (a TOML from
    'xnorfault optimize --operating-points', shipped as ``operating_points.toml``; the model
    then carries each site's rates on the device as its defaults)."""

    device: str = "paper"
    write: object = None
    operating_points: Path | None = None


@dataclass(frozen=True)
class DeployBundle:
    """The bundle folder ``output`` for ``target`` (a profile name or TOML), with the LCE model
    too (``lce``), a given xnorfault wheel, and ``force`` to replace an earlier bundle."""

    output: Path
    target: str
    lce: bool = False
    wheel: Path | None = None
    force: bool = False


@dataclass(frozen=True)
class DeployRequest:
    """What ``xnorfault deploy`` asks: the source, the memory and the bundle."""

    source: DeploySource
    bundle: DeployBundle
    memory: DeployMemory = field(default_factory=DeployMemory)


def deploy(request: DeployRequest) -> dict:
    """Write the deployment bundle ``request`` asks for; returns the manifest."""
    source, point, repeat = request.source.path, request.source.point, request.source.repeat
    data, layout, output_name = (
        request.source.data,
        request.source.layout,
        request.source.output_name,
    )
    device, write = request.memory.device, request.memory.write
    operating_points = request.memory.operating_points
    output, target_name = request.bundle.output, request.bundle.target
    lce, wheel, force = request.bundle.lce, request.bundle.wheel, request.bundle.force
    from xnorfault import __version__
    from xnorfault.io import atomic_write_text, current_umask, ensure_folder
    from xnorfault.mram import available_devices, load_device
    from xnorfault.mram.device_file import preset_toml
    from xnorfault.targets import ALIASES, available_targets, load_target, profile_text

    target = load_target(target_name)
    # a built-in profile is known by name on the target too; a custom one travels as target.toml
    builtin = str(target_name) in available_targets() or str(target_name) in ALIASES
    target_option = target.name if builtin else "target.toml"
    if target.name == "host":
        raise XnorfaultError(
            "deploy needs a device target such as raspberry-pi-4 (host is for evaluate --target)"
        )
    source = Path(source)
    foreign = source.suffix == ".onnx"
    if foreign:
        if data is None or Path(data).suffix != ".npz":
            raise XnorfaultError(
                f"deploying the ONNX model {source.name} needs its test set: give --data TEST.npz (x, y)"
            )
        if point is not None or lce:
            raise XnorfaultError(
                "--point and --lce apply to runs of 'xnorfault train', not to an ONNX model"
            )
        if not source.is_file():
            raise XnorfaultError(f"model file {source} not found")
        data = Path(data)
    elif data is not None or layout is not None or output_name is not None:
        raise XnorfaultError(
            "--data, --layout and --output-name apply to an ONNX model; a run carries its own test set"
        )
    output = Path(output)
    remove_stale_staging(output)
    check_bundle_output(output, source, force)
    mtj = load_device(device)
    points = None
    if operating_points is not None:
        from xnorfault.optimization import read_operating_points

        points = read_operating_points(operating_points)
        for voltage, pulse in points.values():
            mtj.flip_rates(voltage, pulse)  # above breakdown or otherwise unusable: said now
    device_text = (
        preset_toml(device)
        if str(device) in available_devices()
        else Path(device).read_text(encoding="utf-8")
    )
    ensure_folder(output.parent)
    try:
        staging = Path(tempfile.mkdtemp(prefix=_staging_prefix(output), dir=output.parent))
    except OSError as error:
        raise XnorfaultError(
            f"cannot write a bundle into {output.parent}: {error.strerror}"
        ) from None
    try:
        if foreign:
            described = _stage_onnx_model(
                source, data, staging, target, layout, output_name, write, points, mtj
            )
        else:
            described = _stage_run(source, staging, target, point, repeat, lce, write, points, mtj)
        if points is not None:
            shutil.copyfile(operating_points, staging / "operating_points.toml")
            described["operating_points"] = {
                site: {"voltage": voltage, "pulse": pulse}
                for site, (voltage, pulse) in points.items()
            }
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
        readme = described.pop("readme")
        (staging / "README.md").write_text(
            _readme(target, target_option, built.name, mtj.name, lce, readme, described)
        )
        manifest = {
            "format": BUNDLE_FORMAT,
            "xnorfault_version": __version__,
            "target": target.to_dict(),
            **described,
            "requirements": requirements,
            "wheel": built.name,
            "files": {
                path.name: {"bytes": path.stat().st_size, "sha256": _sha256(path)}
                for path in sorted(staging.iterdir())
            },
        }
        atomic_write_text(staging / "manifest.json", json.dumps(manifest, indent=2) + "\n")
        # mkdtemp makes a private folder; the bundle folder follows the umask like any other
        staging.chmod(0o777 & ~current_umask())
        move_into_place(staging, output)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    manifest["output"] = str(output)
    return manifest
