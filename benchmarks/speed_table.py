"""The project's speed aims, every row measured side by side in one run.

Run: python benchmarks/speed_table.py [--quick]   (``make benchmarks``)

Each row is a ratio of medians of two (or more) variants run interleaved in one process, the
order rotated every round, so that machine drift and cache effects hit every variant alike. An
A/A row (the same variant twice) shows how large a ratio the noise alone makes.

* Training step (Brevitas, batch 128, Adam): BER p flips on every binary activation ÷ flips
  off, for LeNet-4 (28×28, Fashion-MNIST when installed, else digits) at BER 0.01, 0.04, 0.16
  and for NiN (32×32×3, random images, batch 64) at the same three; ``--weight-ber 0.04`` ÷ off.
* Injected ÷ clean onnxruntime latency (one thread, LeNet-4 with realistic batch-norm
  statistics, iid write model): batch 256 at p = 0.001, 0.01 and 0.1; batch 1 at p = 0.01;
  NiN at batch 1 and 32 (p = 0.01).
* A 10-voltage × 10-repeat sweep through ``xnorfault.evaluation`` ÷ the clean inference of the
  same batches (450 images, two threads).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F
from flip_overhead import exported, make_session

from xnorfault.data import load_dataset
from xnorfault.faults import FaultSource, FaultSpec, FlipRates
from xnorfault.graph.generator import run_seed
from xnorfault.graph.rewrite import inject_flips
from xnorfault.models import create_model
from xnorfault.training.faults import configure_faults
from xnorfault.training.runner import BatchMaker


def interleaved(variants: dict, rounds: int) -> dict[str, float]:
    """Median seconds of each variant (a callable timing one unit of work), run in rotated
    order: round r, unit i starts with variant (i + r) mod n."""
    names = list(variants)
    times = {name: [] for name in names}
    for round_index in range(rounds):
        for unit in range(len(names)):
            for offset in range(len(names)):
                name = names[(unit + offset + round_index) % len(names)]
                times[name].append(variants[name]())
    return {name: statistics.median(values) for name, values in times.items()}


# --- training ---------------------------------------------------------------------------------


def _trainer(model_name: str, spec: FaultSpec, batches, **shape):
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=10, **shape)
    configure_faults(model, spec, 0, torch.Generator().manual_seed(1))
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    state = {"next": 0}

    def step() -> float:
        images, labels = batches[state["next"] % len(batches)]
        state["next"] += 1
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()
        return time.perf_counter() - start

    return step


def training_rows(quick: bool) -> list[tuple[str, str, float]]:
    from xnorfault.data.datasets import DEBIAN_FASHION_MNIST

    data = "fashion-mnist" if DEBIAN_FASHION_MNIST.is_dir() else "digits"
    dataset = load_dataset(data)
    maker = BatchMaker(dataset, 28, torch.device("cpu"))
    order = np.random.default_rng(0).permutation(len(dataset.train))[: 12 * 128]
    batches = list(maker.batches(dataset.train, 128, order))
    shape = {"in_channels": 1, "input_size": 28}
    lenet = {
        "off": _trainer("lenet4", FaultSpec(), batches, **shape),
        "off (A/A)": _trainer("lenet4", FaultSpec(), batches, **shape),
        **{
            f"BER {ber:g}": _trainer("lenet4", FaultSpec.from_ber(ber), batches, **shape)
            for ber in (0.01, 0.04, 0.16)
        },
        "weight BER 0.04": _trainer(
            "lenet4", FaultSpec(weights=FlipRates.symmetric(0.04)), batches, **shape
        ),
    }
    for step in lenet.values():  # warm-up
        step()
    median = interleaved(lenet, 3 if quick else 12)
    rows = [
        (f"training step, LeNet-4 b128, {name} / flips off", aim, median[name] / median["off"])
        for name, aim in (
            ("off (A/A)", "noise"),
            ("BER 0.01", "≤ 1.03 (aim 1.02)"),
            ("BER 0.04", "≤ 1.03 (aim 1.02)"),
            ("BER 0.16", "≤ 1.03 (aim 1.02)"),
            ("weight BER 0.04", "≤ 1.05"),
        )
    ]
    generator = torch.Generator().manual_seed(0)
    cifar = [
        (torch.randn(64, 3, 32, 32, generator=generator), torch.randint(0, 10, (64,)))
        for _ in range(4)
    ]
    nin_shape = {"in_channels": 3, "input_size": 32}
    nin = {
        "off": _trainer("nin", FaultSpec(), cifar, **nin_shape),
        **{
            f"BER {ber:g}": _trainer("nin", FaultSpec.from_ber(ber), cifar, **nin_shape)
            for ber in (0.01, 0.04, 0.16)
        },
    }
    for step in nin.values():
        step()
    median = interleaved(nin, 1 if quick else 3)  # a NiN step takes ~2.4 s on two cores
    rows += [
        (f"training step, NiN b64, {name} / flips off", "≤ 1.03", median[name] / median["off"])
        for name in ("BER 0.01", "BER 0.04", "BER 0.16")
    ]
    return rows


# --- onnxruntime latency ------------------------------------------------------------------------


def latency_ratio(clean, p: float, batch: int, runs: int, shape) -> float:
    injected = inject_flips(clean, FlipRates.symmetric(p))
    sessions = {"clean": make_session(clean, 1), "injected": make_session(injected, 1)}
    images = np.random.default_rng(0).standard_normal((batch, *shape)).astype(np.float32)
    counter = {"seed": 0}

    def timed(name):
        def run() -> float:
            feeds = {"input": images}
            if name == "injected":
                counter["seed"] += 1
                feeds["flip_seed"] = np.array(run_seed(1, counter["seed"]))
            start = time.perf_counter()
            sessions[name].run(None, feeds)
            return time.perf_counter() - start

        return run

    variants = {name: timed(name) for name in sessions}
    for run in variants.values():
        run()
    median = interleaved(variants, runs)
    return median["injected"] / median["clean"]


def latency_rows(quick: bool) -> list[tuple[str, str, float]]:
    scale = 4 if quick else 1
    lenet = exported("lenet4", 1, 28)
    rows = [
        (
            f"injected / clean latency, LeNet-4 batch 256, p = {p:g}",
            aim,
            latency_ratio(lenet, p, 256, 12 // scale, (1, 28, 28)),
        )
        for p, aim in ((0.001, "≤ 1.05"), (0.01, "≤ 1.05"), (0.1, "≤ 1.10"))
    ]
    rows.append(
        (
            "injected / clean latency, LeNet-4 batch 1, p = 0.01",
            "≤ 1.20",
            latency_ratio(lenet, 0.01, 1, 400 // scale, (1, 28, 28)),
        )
    )
    nin = exported("nin", 3, 32)
    for batch, runs in ((1, 200), (32, 20)):
        rows.append(
            (
                f"injected / clean latency, NiN batch {batch}, p = 0.01",
                "report",
                latency_ratio(nin, 0.01, batch, runs // scale, (3, 32, 32)),
            )
        )
    return rows


# --- a voltage sweep ----------------------------------------------------------------------------


def sweep_row(quick: bool) -> tuple[str, str, float]:
    from xnorfault.evaluation.jobs import plan_of
    from xnorfault.evaluation.request import sweep_points
    from xnorfault.evaluation.run import evaluate
    from xnorfault.evaluation.runner import TestSetRunner
    from xnorfault.mram import load_device
    from xnorfault.runtimes.onnxruntime import OnnxRuntimeBackend

    lenet = exported("lenet4", 1, 28)
    rng = np.random.default_rng(0)
    images = rng.standard_normal((450, 1, 28, 28)).astype(np.float32)
    labels = rng.integers(0, 10, 450)
    repeats = 3 if quick else 10
    voltages = tuple(np.linspace(0.40, 0.85, 10))
    clean = make_session(lenet, 2)
    batches = [images[i : i + 256] for i in range(0, len(images), 256)]
    with OnnxRuntimeBackend(lenet, threads=2) as backend:
        points = sweep_points(
            FaultSource(voltages=voltages, pulse=10e-9, device=load_device("paper")), None
        )
        test_runner = TestSetRunner(backend, images, labels, seed=0, batch_size=256)
        runs = len(plan_of(points, repeats).jobs()) * len(batches)

        def sweep() -> float:
            start = time.perf_counter()
            evaluate(test_runner, points, repeats)
            return time.perf_counter() - start

        def inference() -> float:
            start = time.perf_counter()
            for index in range(runs):
                clean.run(None, {"input": batches[index % len(batches)]})
            return time.perf_counter() - start

        median = interleaved({"sweep": sweep, "clean": inference}, 1 if quick else 2)
    return (
        f"10-voltage x {repeats}-repeat sweep / the clean inference it contains",
        "≤ 1.15",
        median["sweep"] / median["clean"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    args = parser.parse_args()
    start = time.perf_counter()
    rows = training_rows(args.quick) + latency_rows(args.quick) + [sweep_row(args.quick)]
    print(
        f"xnorfault speed table: torch {torch.__version__}, onnxruntime {ort.__version__}, "
        f"{torch.get_num_threads()} torch threads; ratios of medians, interleaved"
    )
    width = max(len(name) for name, _, _ in rows)
    print(f"| {'figure':{width}} | aim | measured |")
    print(f"|{'-' * (width + 2)}|---|---|")
    for name, aim, ratio in rows:
        print(f"| {name:{width}} | {aim} | {ratio:.3f}× |")
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
