"""Latency of an injected model relative to the clean one, in onnxruntime.

Run: python benchmarks/flip_overhead.py [--threads 1] [--rounds 7]

Binarized LeNet-4 (28x28, random weights with realistic batch-norm statistics) exported to
ONNX, then injected at p in {0.001, 0.01, 0.1} under the write models ``iid`` (every write
fails at its rate) and ``previous`` (a write fails only where it must switch the cell; the
batch is the write stream), and on one chip of the ``paper-varied`` device (``chip``: per-address
rates, written at the voltage whose nominal WER is p; candidates are drawn at the chip's largest
rate and thinned). For batch 1 and 256 the clean and the injected sessions run interleaved
(clean, iid, previous, chip, clean, ...) with a fresh ``flip_seed`` per run; the script prints
median latencies and the injected/clean ratios.
Aims (iid): <= 1.05x at batch 256 for p <= 0.01, <= 1.10x at p = 0.1, <= 1.20x at batch 1.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import onnxruntime as ort
import torch

from xnorfault.exporters.onnx import export_onnx
from xnorfault.faults import FlipRates, WriteModel
from xnorfault.graph.generator import run_seed
from xnorfault.graph.rewrite import inject_flips
from xnorfault.models import create_model
from xnorfault.mram import load_device
from xnorfault.mram.chips import cell_wer_table, chip_rates, draw_chip
from xnorfault.runtimes.onnxruntime import site_addresses

PULSE = 10e-9


def chip_feeds(injected, p: float) -> tuple[dict, float]:
    """The rate inputs of one chip of the paper-varied device at the voltage of nominal WER p,
    and the chip's largest rate."""
    import json

    device = load_device("paper-varied")
    voltage = float(device.voltage_for_wer(p, PULSE))
    sites = json.loads(
        dict((m.key, m.value) for m in injected.metadata_props)["xnorfault.injected"]
    )["sites"]
    chip = draw_chip(device, site_addresses(injected, sites), 0, 0)
    rates = chip_rates(chip, cell_wer_table(device, PULSE, (voltage,)), voltage)
    feeds = {}
    for site, maps in rates.items():
        feeds[f"p_flip_pos.{site}"] = maps.pos_to_neg
        feeds[f"p_flip_neg.{site}"] = maps.neg_to_pos
    return feeds, max(float(m.pos_to_neg.max()) for m in rates.values())


def exported(name: str, channels: int, size: int):
    """A binarized network with realistic batch-norm statistics (five training-mode batches of
    random images), exported to ONNX."""
    torch.manual_seed(0)
    network = create_model(name, num_classes=10, in_channels=channels, input_size=size)
    network.train()
    with torch.no_grad():
        for _ in range(5):
            network(torch.randn(64, channels, size, size))
    return export_onnx(network.eval())


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
    clean = exported("lenet4", 1, 28)
    clean_session = make_session(clean, args.threads)
    rng = np.random.default_rng(0)
    print(
        f"binarized LeNet-4, onnxruntime {ort.__version__}, {args.threads} thread(s), medians of interleaved runs"
    )
    print(
        f"{'batch':>6} {'p':>7} {'clean ms':>10} {'iid ms':>8} {'iid':>7} {'previous ms':>12} "
        f"{'previous':>9} {'chip ms':>8} {'chip':>7} {'chip max p':>11}"
    )
    for batch, runs in ((1, 400), (256, 12)):
        x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
        for p in (0.001, 0.01, 0.1):
            models = [
                inject_flips(clean, FlipRates.symmetric(p), write=WriteModel(model))
                for model in ("iid", "previous")
            ]
            models.append(inject_flips(clean, FlipRates(), rate_maps=True))
            sessions = [make_session(model, args.threads) for model in models]
            extra = [{}, {}, chip_feeds(models[2], p)[0]]
            largest = chip_feeds(models[2], p)[1]
            times = [[], [], [], []]
            for _ in range(3):  # warm-up
                clean_session.run(None, {"input": x})
                for faulty, feeds in zip(sessions, extra, strict=True):
                    faulty.run(None, {"input": x, "flip_seed": np.array(0), **feeds})
            for run in range(runs * args.rounds):
                seed = np.array(run_seed(1, run))
                start = time.perf_counter()
                clean_session.run(None, {"input": x})
                times[0].append(time.perf_counter() - start)
                for index, (faulty, feeds) in enumerate(zip(sessions, extra, strict=True), start=1):
                    start = time.perf_counter()
                    faulty.run(None, {"input": x, "flip_seed": seed, **feeds})
                    times[index].append(time.perf_counter() - start)
            clean_ms, iid_ms, previous_ms, chip_ms = (statistics.median(t) * 1e3 for t in times)
            print(
                f"{batch:>6} {p:>7g} {clean_ms:>10.3f} {iid_ms:>8.3f} {iid_ms / clean_ms:>6.3f}x "
                f"{previous_ms:>12.3f} {previous_ms / clean_ms:>8.3f}x {chip_ms:>8.3f} "
                f"{chip_ms / clean_ms:>6.3f}x {largest:>11.3g}"
            )


if __name__ == "__main__":
    main()
