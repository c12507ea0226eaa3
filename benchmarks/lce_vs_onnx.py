"""Latency of the same binarized network in Larq Compute Engine and in onnxruntime, batch 1.

Run: python benchmarks/lce_vs_onnx.py [--model lenet4|nin] [--iterations 300] [--threads 1]

A briefly trained LeNet-4 (digits, 28x28) — or an untrained NiN (32x32x3), whose cost does not
depend on its weights — is exported to both formats; both runtimes then classify the same
images one at a time, interleaved in rounds so that machine load hits both alike, at p = 0 and
at p = 0.01 on every binary activation. Times are per invoke inside each runtime (LCE's worker
times its interpreter itself, so the pipe to it is excluded). Prints median and p90 per
runtime and the LCE / onnxruntime ratio.

On x86 LCE runs its reference kernels (LCE's optimized binary kernels are for ARMv8): the
ratio here says nothing about a Raspberry Pi; run the same on the Pi (or with
``lce_benchmark_model``) for that.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

import numpy as np
from _common import run_cli

from xnorfault.faults import FlipRates
from xnorfault.runtimes.lce import LceBackend
from xnorfault.runtimes.onnxruntime import OnnxRuntimeBackend


def build(model: str, work: Path) -> tuple[Path, Path, np.ndarray]:
    """Paths of the ONNX and LCE files of the model, and images to classify."""
    if model == "lenet4":
        run_cli("train", "--data", "digits", "--epochs", "1", "--out", str(work / "run"))
        run_cli(
            "export",
            str(work / "run"),
            "-o",
            str(work / "m.onnx"),
            "--testset",
            str(work / "t.npz"),
        )
        run_cli("export", str(work / "run"), "--format", "lce", "-o", str(work / "m.tflite"))
        return work / "m.onnx", work / "m.tflite", np.load(work / "t.npz")["x"]
    import onnx

    from xnorfault.exporters.lce import convert_spec, layer_spec, write_spec
    from xnorfault.exporters.onnx import export_onnx
    from xnorfault.models import create_model

    network = create_model(model, num_classes=10, in_channels=3, input_size=32).eval()
    onnx.save(export_onnx(network), str(work / "m.onnx"))
    spec, arrays = layer_spec(network)
    write_spec(work / "spec.npz", spec, arrays)
    convert_spec(work / "spec.npz", work / "m.tflite")
    images = np.random.default_rng(0).normal(size=(64, 3, 32, 32)).astype(np.float32)
    return work / "m.onnx", work / "m.tflite", images


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=("lenet4", "nin"), default="lenet4")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        onnx_path, lce_path, images = build(args.model, Path(folder))
        onnx_backend = OnnxRuntimeBackend(onnx_path, threads=args.threads)
        with LceBackend(lce_path, threads=args.threads) as lce_backend:
            kernels = lce_backend.info["kernels"]
            print(f"{args.model}, batch 1, {args.threads} thread(s), {platform.machine()}")
            print(f"LCE kernels: {kernels}")
            if "reference" in kernels:
                print(
                    "note: x86 runs LCE's reference kernels, not its optimized ARM ones; "
                    "this ratio does not predict a Raspberry Pi"
                )
            for p in (0.0, 0.01):
                rates = {site: FlipRates(p, p) for site in onnx_backend.sites}
                onnx_times, lce_times = [], []
                for index in range(args.iterations + 10):
                    image = images[index % len(images)][None]
                    _, onnx_seconds = onnx_backend.run_timed(image, rates, 0)
                    _, lce_seconds = lce_backend.run_timed(image, rates, 0)
                    if index >= 10:  # warm-up
                        onnx_times.append(onnx_seconds)
                        lce_times.append(lce_seconds)
                onnx_ms, lce_ms = np.asarray(onnx_times) * 1e3, np.asarray(lce_times) * 1e3
                ratio = np.median(lce_ms) / np.median(onnx_ms)
                print(
                    f"p = {p:<5} onnxruntime median {np.median(onnx_ms):.3f} ms (p90 {np.percentile(onnx_ms, 90):.3f}) | "
                    f"LCE median {np.median(lce_ms):.3f} ms (p90 {np.percentile(lce_ms, 90):.3f}) | "
                    f"LCE / onnxruntime {ratio:.2f}x"
                )


if __name__ == "__main__":
    main()
