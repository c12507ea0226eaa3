r"""An evaluation campaign as independent jobs, each seeded by its coordinates.

A campaign is the error-free baseline and, per point, every repeat on every chip (and, with
``--per-layer``, every repeat with one site flipping). Each is a :class:`Job`; a job's result is
which test images it classified right. Its flip seed derives from its coordinates only,

.. math:: s_{job} = \mathrm{mix}(S,\ h(\text{point}, \text{chip}, \text{repeat}, \text{site})),
          \qquad s_{batch\,b} = \mathrm{mix}(s_{job}, b),

(:func:`job_seed`; :math:`S` the campaign seed, :math:`h` a BLAKE2b digest of the point's full
fault spec and the job's indices, mix SplitMix64, :func:`xnorfault.graph.generator.run_seed`),
never from the order in which jobs run. So any split of a campaign — shards into one folder
(:mod:`xnorfault.evaluation.campaign`), worker processes or a Ray cluster
(:mod:`xnorfault.evaluation.executors`) — gives bit-identical accuracies to the plain run, and
a point evaluated alone gives the same numbers as within a sweep. Imports numpy only.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from xnorfault.graph.generator import run_seed
from xnorfault.mram.chips import chip_rates, draw_chip


@dataclass(frozen=True, order=True)
class Job:
    """Coordinates of one run over the test set: ``point`` (index in the sweep, −1 for the
    error-free baseline), ``chip`` (−1 without chips), ``repeat``, and ``site`` (with
    ``--per-layer``: the one site that flips; empty: all)."""

    point: int
    chip: int
    repeat: int
    site: str = ""

    @property
    def name(self) -> str:
        """A file name: ``p3-c-1-r7`` (``-s<site>`` with a site, sanitised)."""
        base = f"p{self.point}-c{self.chip}-r{self.repeat}"
        if not self.site:
            return base
        digest = hashlib.blake2b(self.site.encode(), digest_size=4).hexdigest()
        return f"{base}-s{digest}"

    def to_dict(self) -> dict:
        return {"point": self.point, "chip": self.chip, "repeat": self.repeat, "site": self.site}


def point_key(point) -> str:
    """A stable text for a sweep point: its label, numbers and full fault spec (so the same
    point of the same device has the same seeds in any sweep)."""
    if point is None:
        return "clean"
    return json.dumps(
        [point.label, point.ber, point.voltage, point.pulse, point.spec.to_dict()],
        sort_keys=True,
        default=str,
    )


def job_seed(campaign_seed: int, key: str, job: Job) -> int:
    """The flip seed of ``job`` of the point described by ``key`` (see the module docstring);
    batch b of the job runs with :func:`~xnorfault.graph.generator.run_seed` (this, b)."""
    text = f"{key}|chip={job.chip}|repeat={job.repeat}|site={job.site}".encode()
    digest = int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")
    return run_seed(int(campaign_seed), digest >> 2)


@dataclass
class Plan:
    """The jobs of a campaign, in a fixed order: the baseline, then per point every chip's
    repeats (or the repeats), then the per-site repeats."""

    keys: list[str]
    repeats: int
    chips: int | None = None
    per_layer_sites: list[str] = field(default_factory=list)

    def jobs(self) -> list[Job]:
        jobs = [Job(-1, -1, 0)]
        for index in range(len(self.keys)):
            for chip in range(self.chips) if self.chips else [-1]:
                jobs += [Job(index, chip, r) for r in range(self.repeats)]
            for site in self.per_layer_sites:
                jobs += [Job(index, -1, r, site) for r in range(self.repeats)]
        return jobs


def plan_of(points, repeats: int, chips=None, per_layer_sites=()) -> Plan:
    return Plan(
        [point_key(p) for p in points],
        int(repeats),
        None if chips is None else int(chips.count),
        list(per_layer_sites),
    )


class JobRunner:
    """Runs jobs on one backend: the campaign (test set, batch size, seed), the sweep's points
    and, with chips, the chip population. The last chip's rates are kept, since a chip's
    repeats run one after another."""

    def __init__(self, test_runner, points, chips=None):
        self.test_runner = test_runner
        self.points = points
        self.chips = chips
        self.keys = [point_key(p) for p in points]
        self._chip_rates: tuple[tuple[int, int], dict] | None = None

    def rates(self, job: Job) -> dict:
        if job.point < 0:
            return {}
        point = self.points[job.point]
        sites = self.test_runner.backend.sites
        if job.chip >= 0:
            if self._chip_rates is None or self._chip_rates[0] != (job.point, job.chip):
                chip = draw_chip(self.chips.device, self.chips.addresses, self.chips.seed, job.chip)
                self._chip_rates = (
                    (job.point, job.chip),
                    chip_rates(chip, self.chips.table, point.voltage),
                )
            return self._chip_rates[1]
        everywhere = {site: point.spec.activation_rates(site) for site in sites}
        if job.site:
            return {job.site: everywhere[job.site]}
        return everywhere

    def run(self, job: Job) -> np.ndarray:
        """Which test images ``job`` classifies right (bool, one per image)."""
        key = "clean" if job.point < 0 else self.keys[job.point]
        return self.test_runner.correct(
            self.rates(job), seed=job_seed(self.test_runner.seed, key, job)
        )


def pack_correct(correct: np.ndarray) -> tuple[bytes, int]:
    """Which images a job got right, as bits (for files and the trip back from workers)."""
    return np.packbits(correct.astype(bool)).tobytes(), int(correct.size)


def unpack_correct(packed: bytes, count: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(packed, dtype=np.uint8), count=count).astype(bool)


__all__ = [
    "pack_correct",
    "unpack_correct",
    "Job",
    "JobRunner",
    "Plan",
    "job_seed",
    "plan_of",
    "point_key",
]
