"""Applying drawn flip positions in training: negated where they lie, or through ±1 factors.

Run: python benchmarks/flip_apply.py [--rounds 11]

``xnorfault.models.flips.apply_flips`` negates the values at the positions where they lie
(``index_select``, ``index_copy_``) when the positions are at most ``SPARSE_SHARE`` of the
elements of a tensor of at least ``SPARSE_MIN_ELEMENTS``, and otherwise fills a ±1 factor per element (``fill_``, ``index_fill_``) and multiplies
the tensor by it. This times both on the same positions (a Poissonised draw at rate p, repeats
included) in place on a binary tensor, interleaved in rotated order, for LeNet-4's first
activation at batch 128 (368,640 elements) and NiN's largest at batch 64 (12,582,912), and
prints the median of each and their ratio (both ways forced here, whatever the tensor's size);
the crossover on the large tensor sets ``SPARSE_SHARE``. On the small one the flip alone is
faster sparse too, but by a tenth of a millisecond that training steps did not show.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from speed_table import interleaved

from xnorfault.models import flips


def timed(share: float, values: torch.Tensor, positions: torch.Tensor, scratch: torch.Tensor):
    """One timed ``apply_flips`` on a fresh copy of ``values``, with ``SPARSE_SHARE`` = share."""

    def run() -> float:
        flips.SPARSE_SHARE, flips.SPARSE_MIN_ELEMENTS = share, 0
        fresh = values.clone()
        start = time.perf_counter()
        flips.apply_flips(fresh, positions, "straight_through", scratch, in_place=True)
        return time.perf_counter() - start

    return run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=11, help="rotated rounds (default 11)")
    args = parser.parse_args()
    chosen = flips.SPARSE_SHARE, flips.SPARSE_MIN_ELEMENTS
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; SPARSE_SHARE = "
        f"{chosen[0]:.4f}, SPARSE_MIN_ELEMENTS = {chosen[1]:,}; medians of {args.rounds} "
        "rotated rounds"
    )
    print("| elements | p | positions / elements | where they lie | ±1 factors | ratio |")
    print("|---|---|---|---|---|---|")
    generator = torch.Generator().manual_seed(0)
    for count in (368_640, 12_582_912):
        values = torch.where(torch.rand(count, generator=generator) < 0.5, 1.0, -1.0)
        scratch = torch.empty(count)
        for p in (0.001, 0.01, 0.02, 0.03, 0.04, 0.16):
            hits = int(torch.poisson(torch.tensor(count * -math.log1p(-p)), generator=generator))
            positions = torch.randint(0, count, (hits,), generator=generator)
            median = interleaved(
                {
                    "sparse": timed(1.0, values, positions, scratch),
                    "factors": timed(0.0, values, positions, scratch),
                },
                args.rounds,
            )
            print(
                f"| {count:,} | {p:g} | {hits / count:.4f} | {median['sparse'] * 1e3:.3f} ms | "
                f"{median['factors'] * 1e3:.3f} ms | {median['sparse'] / median['factors']:.2f} |"
            )
    flips.SPARSE_SHARE, flips.SPARSE_MIN_ELEMENTS = chosen


if __name__ == "__main__":
    main()
