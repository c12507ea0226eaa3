"""Cost of a write-voltage sweep against the clean inference it contains.

Run: python benchmarks/evaluate_sweep.py [--repeats 10] [--threads 2]

Binarized LeNet-4 on the embedded digits test set (450 images, 28x28), briefly trained so that
its batch norms carry real statistics. A 10-voltage x 10-repeat sweep (paper's device, 10 ns)
through ``xnorfault.evaluation`` is timed against running the clean model on exactly the same
batches, side by side in one process; prints time per evaluated image and the ratio
(aim: sweep <= 1.15x the clean inference it contains).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import run_cli

from xnorfault.evaluation import Campaign, evaluate, sweep_points
from xnorfault.faults import FaultSource
from xnorfault.mram import load_device
from xnorfault.runtimes.onnxruntime import OnnxRuntimeBackend


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        run_cli("train", "--data", "digits", "--epochs", "1", "--out", str(work / "run"))
        run_cli(
            "export",
            str(work / "run"),
            "-o",
            str(work / "model.onnx"),
            "--testset",
            str(work / "test.npz"),
        )
        data = np.load(work / "test.npz")
        images, labels = data["x"], data["y"]
        backend = OnnxRuntimeBackend(work / "model.onnx", threads=args.threads)
        device = load_device("paper")
        voltages = tuple(np.linspace(0.40, 0.85, 10))
        points = sweep_points(FaultSource(voltages=voltages, pulse=10e-9, device=device), None)
        campaign = Campaign(backend, images, labels, seed=0, batch_size=256)
        start = time.perf_counter()
        evaluate(campaign, points, args.repeats)
        sweep = time.perf_counter() - start
        runs = campaign.counter  # batch runs the sweep made, baseline included
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.log_severity_level = 3
        clean = ort.InferenceSession(
            str(work / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        batches = [images[i : i + 256] for i in range(0, len(images), 256)]
        start = time.perf_counter()
        for index in range(runs):
            clean.run(None, {"input": batches[index % len(batches)]})
        clean_time = time.perf_counter() - start
    evaluated = runs // len(batches) * len(images)
    print(
        f"sweep: 10 voltages x {args.repeats} repeats + baseline on {len(images)} digits, {args.threads} threads"
    )
    print(
        f"  sweep          {sweep:7.2f} s   {sweep / evaluated * 1e6:7.1f} us per evaluated image"
    )
    print(
        f"  clean model    {clean_time:7.2f} s   {clean_time / evaluated * 1e6:7.1f} us per image (same batches)"
    )
    print(f"  ratio sweep / clean inference: {sweep / clean_time:.3f}x  (aim <= 1.15)")


if __name__ == "__main__":
    main()
