"""Latency of an injected model relative to the clean one, in onnxruntime.

Run: python benchmarks/flip_overhead.py [--threads 1] [--rounds 7]

Binarized LeNet-4 (28x28, random weights with realistic batch-norm statistics) exported to
ONNX, then injected at p in {0.001, 0.01, 0.1}. For batch 1 and 256 the clean and injected
sessions run interleaved (clean, faulty, clean, faulty, ...) with a fresh ``flip_seed`` per
run; the script prints median latencies and the injected/clean ratio.
Aims: <= 1.05x at batch 256 for p <= 0.01, <= 1.10x at p = 0.1, <= 1.20x at batch 1.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import onnxruntime as ort
import torch

from xnorfault.exporters.onnx import export_onnx
from xnorfault.faults import FlipRates
from xnorfault.generator import run_seed
from xnorfault.inject import inject_flips
from xnorfault.models import create_model


def make_session(model, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    torch.manual_seed(0)
    network = create_model("lenet4", num_classes=10, in_channels=1, input_size=28)
    network.train()
    with torch.no_grad():
        for _ in range(5):
            network(torch.randn(64, 1, 28, 28))
    clean = export_onnx(network.eval())
    clean_session = make_session(clean, args.threads)
    rng = np.random.default_rng(0)
    print(
        f"binarized LeNet-4, onnxruntime {ort.__version__}, {args.threads} thread(s), medians of interleaved runs"
    )
    print(f"{'batch':>6} {'p':>7} {'clean ms':>10} {'injected ms':>12} {'ratio':>7}")
    for batch, runs in ((1, 400), (256, 12)):
        x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
        for p in (0.001, 0.01, 0.1):
            faulty_session = make_session(inject_flips(clean, FlipRates.symmetric(p)), args.threads)
            clean_times, faulty_times = [], []
            for _ in range(3):  # warm-up
                clean_session.run(None, {"input": x})
                faulty_session.run(None, {"input": x, "flip_seed": np.array(0)})
            for run in range(runs * args.rounds):
                start = time.perf_counter()
                clean_session.run(None, {"input": x})
                middle = time.perf_counter()
                faulty_session.run(None, {"input": x, "flip_seed": np.array(run_seed(1, run))})
                end = time.perf_counter()
                clean_times.append(middle - start)
                faulty_times.append(end - middle)
            clean_ms = statistics.median(clean_times) * 1e3
            faulty_ms = statistics.median(faulty_times) * 1e3
            print(
                f"{batch:>6} {p:>7g} {clean_ms:>10.3f} {faulty_ms:>12.3f} {faulty_ms / clean_ms:>6.3f}x"
            )


if __name__ == "__main__":
    main()
