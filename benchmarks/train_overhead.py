"""Cost of bit flips during training, and of Brevitas against a plain-PyTorch twin.

Run: python benchmarks/train_overhead.py [--data fashion-mnist] [--rounds 3] [--batches 20]

Binarized LeNet-4, batch 128, measured side by side in one process, interleaved with the order
rotated every round (``speed_table.interleaved``) so that machine drift and cache effects hit
every variant alike; prints median time per training step and ratios:

* flips on (BER 0.04, the exact sparse Poissonised draw) vs off — aim ≤ 1.02×;
* flips drawn densely (``rand < p`` per element) vs off — the cost the sparse draw avoids;
* Brevitas LeNet-4 (per-tensor constant scale, and XNOR-Net per-channel mean|W|) vs a
  plain-PyTorch binarized twin with a hand-written sign/STE.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from speed_table import interleaved
from torch import nn

from xnorfault.data import load_dataset
from xnorfault.faults import FaultSpec
from xnorfault.models import create_model
from xnorfault.models import flips as flips_module
from xnorfault.training.faults import configure_faults
from xnorfault.training.runner import BatchMaker


class _SignSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x >= 0, 1.0, -1.0)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1)


class PlainBinaryLeNet4(nn.Module):
    """The same network without Brevitas: sign with clipped STE, weights sign(W)·mean|W|."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.bn1 = nn.BatchNorm2d(20, eps=1e-4)
        self.bn2 = nn.BatchNorm2d(20, eps=1e-4)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.bn3 = nn.BatchNorm1d(800, eps=1e-4)
        self.fc1 = nn.Linear(800, 500)
        self.fc2 = nn.Linear(500, 10)

    @staticmethod
    def binary_weight(weight):
        alpha = weight.abs().mean(dim=tuple(range(1, weight.dim())), keepdim=True)
        return _SignSTE.apply(weight.clamp(-alpha, alpha) / alpha) * alpha

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = _SignSTE.apply(self.bn2(x))
        x = F.max_pool2d(
            F.relu(F.conv2d(x, self.binary_weight(self.conv2.weight), self.conv2.bias)), 2
        )
        x = _SignSTE.apply(self.bn3(x.flatten(1)))
        x = F.relu(F.linear(x, self.binary_weight(self.fc1.weight), self.fc1.bias))
        return self.fc2(x)


def step_time(model, batches, optimizer) -> float:
    model.train()
    start = time.perf_counter()
    for x, y in batches:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    return (time.perf_counter() - start) / len(batches)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    from xnorfault.data.datasets import DEBIAN_FASHION_MNIST

    parser.add_argument(
        "--data", default="fashion-mnist" if DEBIAN_FASHION_MNIST.is_dir() else "digits"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    torch.manual_seed(0)
    dataset = load_dataset(args.data)
    maker = BatchMaker(dataset, 28, torch.device("cpu"))
    order = np.random.default_rng(0).permutation(len(dataset.train))[: args.batches * 128]
    batches = list(maker.batches(dataset.train, 128, order))

    def variant(weight_scaling: str, ber: float, dense: bool = False):
        model = create_model(
            "lenet4", num_classes=10, in_channels=1, input_size=28, weight_scaling=weight_scaling
        )
        configure_faults(model, FaultSpec.from_ber(ber), 0, torch.Generator().manual_seed(1))
        return model, dense

    variants = {
        "brevitas channel, flips off": variant("channel", 0.0),
        "brevitas channel, BER 0.04 sparse": variant("channel", 0.04),
        "brevitas channel, BER 0.04 dense": variant("channel", 0.04, dense=True),
        "brevitas tensor, flips off": variant("tensor", 0.0),
        "plain pytorch twin": (PlainBinaryLeNet4(), False),
    }
    optimizers = {
        name: torch.optim.Adam(m.parameters(), lr=1e-3) for name, (m, _) in variants.items()
    }
    default_threshold = flips_module.DENSE_THRESHOLD

    def timed(name: str):
        model, dense = variants[name]

        def run() -> float:
            flips_module.DENSE_THRESHOLD = 0.0 if dense else default_threshold
            try:
                return step_time(model, batches, optimizers[name])
            finally:
                flips_module.DENSE_THRESHOLD = default_threshold

        return run

    median = interleaved({name: timed(name) for name in variants}, args.rounds)
    print(
        f"LeNet-4 training step, batch 128, {args.batches} batches x {args.rounds} rotated rounds, "
        f"{torch.get_num_threads()} threads"
    )
    for name, value in median.items():
        print(f"  {name:36s} {value * 1e3:7.2f} ms/step")
    base = median["brevitas channel, flips off"]
    print(
        f"flips on (sparse exact) / off : {median['brevitas channel, BER 0.04 sparse'] / base:.3f}x  (aim <= 1.02)"
    )
    print(
        f"flips on (dense rand<p) / off : {median['brevitas channel, BER 0.04 dense'] / base:.3f}x"
    )
    twin = median["plain pytorch twin"]
    print(f"brevitas per-channel / plain twin : {base / twin:.3f}x")
    print(f"brevitas per-tensor / plain twin  : {median['brevitas tensor, flips off'] / twin:.3f}x")


if __name__ == "__main__":
    main()
