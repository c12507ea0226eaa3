"""``make test-arm``: run a Raspberry Pi bundle on an emulated aarch64 and compare it with x86.

1. Tools: ``qemu-aarch64-static`` (Debian's qemu-user-static, used directly, without
   registering binfmt) and ``debootstrap``; installed with apt-get when missing and root.
2. An arm64 Debian bookworm root (``debootstrap --foreign``, minbase plus python3 and
   libstdc++6; its packages unpacked with ``dpkg-deb``, since the second stage would need binfmt),
   with a Raspberry Pi 4-like ``/proc/cpuinfo`` under it: onnxruntime reads it at import and
   crashes on an x86 one. Cached in ``.cache/arm64/`` (git-ignored).
3. aarch64 wheels of the bundle's pinned requirements, installed with ``pip --target`` for
   CPython 3.11 on manylinux aarch64 (cached per requirements file), plus the bundle's wheel.
4. A tiny LeNet-4 trained on the embedded digits, deployed with ``xnorfault deploy --target
   raspberry-pi-4``; ``check_bundle.py`` run natively and under qemu; the CLI's ``evaluate`` run
   under qemu.

Checks: predictions at p = 0 equal on both; flip masks with the same seed identical; the flip
rate of each site and direction inside its 99.9 % Clopper–Pearson interval; the emulated
``evaluate`` reports aarch64 and the baseline accuracy of x86. Prints a summary, exits 1 on a
failed check.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CACHE = ROOT / ".cache" / "arm64"
MIRROR = os.environ.get("XNORFAULT_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SUITE = "bookworm"
PLATFORMS = ["manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64"]
PI4_CPUINFO = """processor\t: {index}
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x0
CPU part\t: 0xd08
CPU revision\t: 3

"""

sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from binomial_bounds import clopper_pearson  # noqa: E402


def step(message: str) -> None:
    print(f"[test-arm] {message}", flush=True)


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    completed = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if completed.returncode != 0:
        sys.stderr.write(completed.stdout[-4000:] + completed.stderr[-4000:])
        raise SystemExit(
            f"[test-arm] failed: {' '.join(command[:4])} … (exit {completed.returncode})"
        )
    return completed


def ensure_tools() -> None:
    missing = [
        tool for tool in ("qemu-aarch64-static", "debootstrap") if shutil.which(tool) is None
    ]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SystemExit(
            f"[test-arm] {', '.join(missing)} missing: install Debian's qemu-user-static and debootstrap"
        )
    step("installing qemu-user-static and debootstrap")
    run(["apt-get", "install", "-y", "-q", "qemu-user-static", "debootstrap"])


def ensure_root() -> Path:
    root = CACHE / "root"
    if (root / "usr" / "bin" / "python3.11").exists():
        return root
    step(f"debootstrapping an arm64 Debian {SUITE} root (cached in {root})")
    CACHE.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="root.partial-", dir=CACHE))
    run(
        [
            "debootstrap",
            "--foreign",
            "--arch=arm64",
            "--variant=minbase",
            "--include=python3,libstdc++6",
            SUITE,
            str(staging),
            MIRROR,
        ]
    )
    for package in sorted((staging / "var" / "cache" / "apt" / "archives").glob("*.deb")):
        run(["dpkg-deb", "-x", str(package), str(staging)])
    (staging / "proc").mkdir(exist_ok=True)
    (staging / "proc" / "cpuinfo").write_text(
        "".join(PI4_CPUINFO.format(index=i) for i in range(4))
        + "Model\t\t: emulated aarch64 (qemu-user) with Raspberry Pi 4 cpuinfo\n"
    )
    if root.exists():
        shutil.rmtree(root)
    staging.rename(root)
    return root


def ensure_site(requirements: Path) -> Path:
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]
    site = CACHE / f"site-{digest}"
    if site.exists():
        return site
    step("installing aarch64 wheels of the bundle's requirements (pip --target)")
    staging = Path(tempfile.mkdtemp(prefix="site.partial-", dir=CACHE))
    platforms = [argument for p in PLATFORMS for argument in ("--platform", p)]
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--target",
            str(staging),
            *platforms,
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
            "--only-binary=:all:",
            "-r",
            str(requirements),
        ]
    )
    for stale in CACHE.glob("site-*"):
        shutil.rmtree(stale, ignore_errors=True)
    staging.rename(site)
    return site


def emulated(
    root: Path, pythonpath: str, *arguments: str, cwd: Path
) -> subprocess.CompletedProcess:
    return run(
        [
            "qemu-aarch64-static",
            "-L",
            str(root),
            "-E",
            f"PYTHONPATH={pythonpath}",
            "-E",
            "PYTHONDONTWRITEBYTECODE=1",
            str(root / "usr" / "bin" / "python3.11"),
            *arguments,
        ],
        cwd=cwd,
    )


def main() -> int:
    started = time.perf_counter()
    ensure_tools()
    root = ensure_root()
    xnorfault = [sys.executable, "-m", "xnorfault"]
    failures = []
    with tempfile.TemporaryDirectory(prefix="xnorfault-arm-") as folder:
        work = Path(folder)
        step("training a tiny LeNet-4 and deploying it for raspberry-pi-4")
        run(
            [
                *xnorfault,
                "train",
                "--data",
                "digits",
                "--limit-train",
                "256",
                "--epochs",
                "1",
                "--ber",
                "0.04",
                "--out",
                str(work / "run"),
            ]
        )
        bundle = work / "bundle"
        run(
            [
                *xnorfault,
                "deploy",
                str(work / "run"),
                "--target",
                "raspberry-pi-4",
                "-o",
                str(bundle),
            ]
        )
        site = ensure_site(bundle / "requirements-aarch64.txt")
        wheel_site = work / "xnorfault-site"
        wheel = next(bundle.glob("xnorfault-*.whl"))
        run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--target",
                str(wheel_site),
                str(wheel),
            ]
        )
        pythonpath = f"{wheel_site}:{site}"
        step("running the bundle on x86 and on emulated aarch64")
        run([sys.executable, str(HERE / "check_bundle.py"), str(bundle), str(work / "x86")])
        emulated(
            root,
            pythonpath,
            str(HERE / "check_bundle.py"),
            str(bundle),
            str(work / "arm"),
            cwd=work,
        )
        x86 = np.load(work / "x86" / "result.npz")
        arm = np.load(work / "arm" / "result.npz")
        arm_machine = json.loads(str(arm["machine"]))
        if arm_machine["architecture"] != "aarch64":
            failures.append(f"the emulated run reports {arm_machine['architecture']}, not aarch64")
        agreement = float(np.mean(x86["logits"].argmax(1) == arm["logits"].argmax(1)))
        difference = float(np.max(np.abs(x86["logits"] - arm["logits"])))
        step(
            f"p = 0: argmax agreement {agreement:.4f} on {len(x86['logits'])} images, max |Δ logit| {difference:.2e}"
        )
        if agreement != 1.0:
            failures.append(f"predictions at p = 0 differ on {1 - agreement:.2%} of the test set")
        from check_bundle import P_NEG, P_POS

        for key in sorted(k for k in arm.files if k.startswith("masks_")):
            site_name = key.removeprefix("masks_")
            masks, signs = arm[key], arm[f"signs_{site_name}"]
            if not np.array_equal(masks, x86[key]):
                failures.append(f"{site_name}: flip masks with the same seed differ from x86")
            for label, selected, p in (("+1→−1", signs, P_POS), ("−1→+1", ~signs, P_NEG)):
                flips, trials = int(masks[selected].sum()), int(selected.sum())
                low, high = clopper_pearson(flips, trials)
                step(
                    f"{site_name} {label}: {flips}/{trials} = {flips / max(trials, 1):.4f} (p = {p}, 99.9 % CI [{low:.4f}, {high:.4f}])"
                )
                if not low <= p <= high:
                    failures.append(f"{site_name} {label}: flip rate outside its binomial interval")
        step("xnorfault evaluate under emulation")
        evaluated = emulated(
            root,
            pythonpath,
            "-m",
            "xnorfault",
            "evaluate",
            "model.onnx",
            "--data",
            "test.npz",
            "--target",
            "raspberry-pi-4",
            "--ber",
            "0",
            "--repeats",
            "1",
            "--latency-batches",
            "1",
            "--latency-iterations",
            "3",
            "--json",
            cwd=bundle,
        )
        result = json.loads(evaluated.stdout)
        x86_accuracy = float(np.mean(x86["logits"].argmax(1) == np.load(bundle / "test.npz")["y"]))
        step(
            f"emulated evaluate: {result['machine']['architecture']} {result['machine']['cpu']}, "
            f"target {result['target']['name']}, baseline accuracy {result['baseline_accuracy']:.4f} (x86 {x86_accuracy:.4f})"
        )
        if (
            result["machine"]["architecture"] != "aarch64"
            or result["target"]["name"] != "raspberry-pi-4"
        ):
            failures.append(
                "the emulated evaluate did not record aarch64 and the raspberry-pi-4 profile"
            )
        if abs(result["baseline_accuracy"] - x86_accuracy) > 1e-12:
            failures.append("the emulated evaluate's accuracy differs from x86")
    step(f"done in {time.perf_counter() - started:.0f} s")
    for failure in failures:
        print(f"[test-arm] FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
