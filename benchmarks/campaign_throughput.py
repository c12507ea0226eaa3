"""Throughput of one evaluation campaign run in one process, in worker processes and on Ray.

Run: python benchmarks/campaign_throughput.py [MODEL.onnx TEST.npz] [--repeats 10] [--rounds 2]

The same campaign — a BER sweep (0, 1, 2, 4, 8 %) with ``--repeats`` runs per point on every
test image — evaluated by ``xnorfault.evaluate`` as 1 process × 2 threads, 2 worker processes × 1
thread, and 2 Ray actors × 1 thread on a local Ray instance (when Ray is installed). The rounds
interleave the three; the script prints each one's median wall time (start-up included: process
spawn and model load; Ray's instance start is timed apart), its throughput in images per second
relative to the single process, and checks that all three give identical accuracies. Default
model: the demo's (``make demo`` writes runs/demo/).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

import xnorfault

BERS = [0, 0.01, 0.02, 0.04, 0.08]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="runs/demo/lenet4_ber0.04.onnx")
    parser.add_argument("data", nargs="?", default="runs/demo/test.npz")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    arguments = parser.parse_args()
    if not Path(arguments.model).is_file():
        raise SystemExit(f"{arguments.model} not found: run 'make demo' first, or give a model")
    try:
        import ray

        has_ray = True
    except ImportError:
        has_ray = False
    setups = {
        "1 process x 2 threads": dict(threads=2),
        "2 workers x 1 thread": dict(threads=2, workers=2),
    }
    ray_start = None
    if has_ray:
        import logging

        start = time.perf_counter()
        ray.init(
            num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR
        )
        ray_start = time.perf_counter() - start
        setups["2 Ray actors x 1 thread"] = dict(threads=2, workers=2, executor="ray")
    images = len(np.load(arguments.data)["y"])
    runs = images * (1 + len(BERS) * arguments.repeats)
    times = {name: [] for name in setups}
    accuracies = {}
    for _ in range(arguments.rounds):
        for name, options in setups.items():
            start = time.perf_counter()
            result = xnorfault.evaluate(
                arguments.model, arguments.data, ber=BERS, repeats=arguments.repeats, **options
            )
            times[name].append(time.perf_counter() - start)
            accuracies[name] = [p["accuracy_mean"] for p in result.points]
    if has_ray:
        ray.shutdown()
    reference = statistics.median(times["1 process x 2 threads"])
    print(
        f"campaign: {len(BERS)} BERs x {arguments.repeats} repeats + baseline on {images} images "
        f"= {runs:,} image evaluations; median of {arguments.rounds} interleaved rounds"
    )
    if ray_start is not None:
        print(f"local Ray instance start (once, not in the times below): {ray_start:.1f} s")
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"{name:26s} {median:7.2f} s  {runs / median:9.0f} images/s  "
            f"throughput {reference / median:.2f}x the single process"
        )
    first = next(iter(accuracies.values()))
    same = all(values == first for values in accuracies.values())
    print(f"identical accuracies in every setup: {same}")


if __name__ == "__main__":
    main()
