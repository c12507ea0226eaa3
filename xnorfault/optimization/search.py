"""The measurement step of ``xnorfault optimize``: its runs as jobs seeded by their coordinates
(:class:`SearchRun`), the worker that runs them on the two halves of the test set
(:class:`SearchRunner`, opened from an :class:`OptimizeRequest`), and the drop curves measured
side by side on the search half (:func:`measure_curves`). Imports numpy only (plus the
backend's runtime).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from xnorfault.errors import XnorfaultError
from xnorfault.evaluation.executors import threads_per_worker
from xnorfault.evaluation.jobs import job_seed
from xnorfault.evaluation.runner import TestSetRunner
from xnorfault.evaluation.testset import load_test_set
from xnorfault.faults import FlipRates, WriteModel
from xnorfault.mram.chips import cell_wer_table, draw_chip, site_rates
from xnorfault.optimization.allocation import DropCurve
from xnorfault.runtimes import open_backend

STOP_FACTOR = 4.0  # a curve stops once its drop exceeds this many budgets

REFINEMENTS = 3  # bisections of a curve where its drop crosses the budget

SHARED = "\x00shared"  # the shared point's curve, beside the sites' (no site has this name)


@dataclass(frozen=True)
class SearchRun:
    """One run of the search over a half of the test set (a job, :mod:`xnorfault.evaluation.jobs`):
    ``half`` ("search" or "held-out"), ``rates`` per site as ``(site, +1→−1, −1→+1)``, or, on
    chip ``chip`` ≥ 0, each site's operating point ``points`` as ``(site, voltage, pulse)``; and
    its ``repeat``. Its flip seed derives from these coordinates alone (:func:`run_seed_of`),
    so a measurement gives the same numbers whenever, wherever and in whatever company it
    runs."""

    half: str
    repeat: int
    rates: tuple = ()
    points: tuple = ()
    chip: int = -1
    site: str = ""  # all sites flip (the coordinates' field of an evaluation job)

    @property
    def key(self) -> str:
        return json.dumps([self.half, self.rates, self.points], separators=(",", ":"))


def run_seed_of(seed: int, run: SearchRun) -> int:
    """The flip seed of ``run`` in a search of seed ``seed``: :func:`xnorfault.evaluation.jobs.job_seed`
    of its half, rates (or chip points), chip and repeat."""
    return job_seed(seed, run.key, run)


def _rates_tuple(rates: dict[str, FlipRates]) -> tuple:
    return tuple((site, r.pos_to_neg, r.neg_to_pos) for site, r in sorted(rates.items()))


@dataclass(frozen=True)
class SearchOptions:
    """How the answer is searched and verified: the candidate pulses (s) and write voltages (V;
    ``None``: from the larger critical voltage to the conventional point's), the runs per
    measured point (``repeats``) and per verification, the confidence of the held-out bound,
    and the seed of the test set's split and of the flips."""

    pulses: tuple[float, ...] = (10e-9,)
    voltages: tuple[float, ...] | None = None
    repeats: int = 3
    verify_repeats: int = 10
    confidence: float = 0.95
    seed: int = 0


@dataclass(frozen=True)
class MemoryOptions:
    """The activation memory: its MRAM device (an :class:`~xnorfault.mram.MTJ`), the write model,
    and the chips drawn from the device's variation that the answer is also run on."""

    device: object = None
    write: WriteModel = field(default_factory=WriteModel)
    chips: int | None = None
    chip_seed: int = 0


@dataclass(frozen=True)
class RuntimeOptions:
    """How the model runs on onnxruntime: threads, batch size, a limit of test images, and for a
    model brought from elsewhere the logits' graph output and the image input's layout."""

    threads: int | None = None
    batch_size: int = 256
    limit: int | None = None
    output: str | None = None
    layout: str | None = None


@dataclass(frozen=True)
class ExecutionOptions:
    """Where the search's runs go (:mod:`xnorfault.evaluation.executors`): this process,
    ``workers`` processes, or Ray actors (``address``: a cluster)."""

    workers: int = 1
    executor: str = "local"
    address: str | None = None


@dataclass(frozen=True)
class OptimizeRequest:
    """What ``xnorfault optimize`` asks, filled by the command line and the Python API alike: a
    model, its test set and the accuracy budget, with the option groups — search, memory,
    runtime, execution. It is also what a worker of the search opens
    (:class:`~xnorfault.evaluation.executors.JobExecutor`): :meth:`open_runner`."""

    model: Path
    data: str
    max_drop: float
    search: SearchOptions = field(default_factory=SearchOptions)
    memory: MemoryOptions = field(default_factory=MemoryOptions)
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)
    execution: ExecutionOptions = field(default_factory=ExecutionOptions)

    @property
    def repeats(self) -> int:
        """The runs of one measured point: the executors keep them in one chunk."""
        return self.search.repeats

    def check(self) -> None:
        """The request's numbers, before anything loads (one-line errors)."""
        search, execution = self.search, self.execution
        if not 0 < self.max_drop < 1:
            raise XnorfaultError(
                f"--max-drop {self.max_drop:g}: give a drop between 0 and 1, e.g. 0.01"
            )
        if not 0.5 <= search.confidence < 1:
            raise XnorfaultError(
                f"--confidence {search.confidence:g}: give a level in [0.5, 1), e.g. 0.95"
            )
        if search.repeats < 1 or search.verify_repeats < 2:
            raise XnorfaultError("--repeats must be at least 1 and --verify-repeats at least 2")
        if execution.workers < 1:
            raise XnorfaultError(f"--workers {execution.workers}: give at least 1")
        if execution.address is not None and execution.executor != "ray":
            raise XnorfaultError("--address names a Ray cluster: give --executor ray")

    def for_workers(self, workers: int) -> OptimizeRequest:
        """The request each of ``workers`` processes opens: the threads shared out among them,
        its runs made in that process."""
        threads = threads_per_worker(self.runtime.threads, workers)
        return replace(
            self,
            runtime=replace(self.runtime, threads=threads),
            execution=ExecutionOptions(),
        )

    def open_backend(self):
        """The model on onnxruntime, with per-address rate inputs where chips need them."""
        return open_backend(
            Path(self.model),
            "onnxruntime",
            self.runtime.threads,
            None,
            None,
            self.runtime.output,
            self.runtime.layout,
            self.memory.write,
            rate_maps=bool(self.memory.chips),
        )

    def open_runner(self) -> SearchRunner:
        """A worker's runner; its backend stays open for the worker's life."""
        return SearchRunner.build(self, self.open_backend())


class SearchRunner:
    """Runs :class:`SearchRun` jobs on one backend: the two halves of the test set (split by a
    permutation of seed ``seed``) and, for chip runs, the device's chips."""

    def __init__(self, request: OptimizeRequest, halves: dict, addresses: dict):
        self.request = request
        self.halves = halves
        self.addresses = addresses
        self._chip: tuple[tuple, dict] | None = None

    @classmethod
    def build(cls, request: OptimizeRequest, backend) -> SearchRunner:
        seed, runtime = request.search.seed, request.runtime
        images, labels = load_test_set(str(request.data), backend, runtime.limit)
        if len(labels) < 4:
            raise XnorfaultError(
                f"{len(labels)} test images: optimize splits them into a search and a held-out half; give at least 4"
            )
        order = np.random.default_rng(seed).permutation(len(labels))
        half = len(labels) // 2
        source = f"{request.data}: labels (y)"
        halves = {
            name: TestSetRunner(backend, images[ids], labels[ids], seed, runtime.batch_size, source)
            for name, ids in (("search", order[:half]), ("held-out", order[half:]))
        }
        return cls(request, halves, {s: backend.site_addresses.get(s) for s in backend.sites})

    def rates(self, run: SearchRun) -> dict:
        if run.chip < 0:
            return {site: FlipRates(p, n) for site, p, n in run.rates}
        if self._chip is None or self._chip[0] != (run.points, run.chip):
            memory = self.request.memory
            device = memory.device
            chip = draw_chip(device, self.addresses, memory.chip_seed, run.chip)
            pulses = {pulse for _, _, pulse in run.points}
            tables = {
                pulse: cell_wer_table(
                    device, pulse, tuple(sorted({v for _, v, t in run.points if t == pulse}))
                )
                for pulse in pulses
            }
            rates = {
                site: site_rates(chip, site, tables[pulse], voltage)
                for site, voltage, pulse in run.points
            }
            self._chip = ((run.points, run.chip), rates)
        return self._chip[1]

    def run(self, run: SearchRun) -> np.ndarray:
        """Which images of the run's half it classifies right (bool, one per image)."""
        test_runner = self.halves[run.half]
        return test_runner.correct(self.rates(run), seed=run_seed_of(self.request.search.seed, run))


class Search:
    """The runs of a search, as jobs of an executor (this process, workers or Ray): each
    measurement's repeats run together; counts the runs and images."""

    def __init__(self, runner: SearchRunner, executor):
        self.runner = runner
        self.executor = executor
        self.evaluations = 0
        self.images = 0

    def runs(self, half: str, rates: dict, repeats: int) -> list[np.ndarray]:
        """``repeats`` runs of ``half`` under ``rates`` (every site not named is clean)."""
        return self.runs_together([(half, rates)], repeats)[0]

    def runs_together(self, requests: list[tuple[str, dict]], repeats: int) -> list[list]:
        """``repeats`` runs of each (half, rates) of ``requests``, all given to the executor at
        once (workers share them out)."""
        jobs = [
            SearchRun(half, r, _rates_tuple(rates))
            for half, rates in requests
            for r in range(repeats)
        ]
        flat = self._run(jobs)
        return [flat[i * repeats : (i + 1) * repeats] for i in range(len(requests))]

    def chip_runs(self, points: tuple, chips: int, repeats: int) -> list[list[np.ndarray]]:
        """Per chip, ``repeats`` held-out runs at each site's operating point ``points``."""
        jobs = [
            SearchRun("held-out", r, points=points, chip=c)
            for c in range(chips)
            for r in range(repeats)
        ]
        flat = self._run(jobs)
        return [flat[c * repeats : (c + 1) * repeats] for c in range(chips)]

    def _run(self, jobs: list[SearchRun]) -> list[np.ndarray]:
        results = self.executor.run(jobs)
        self.evaluations += len(jobs)
        self.images += sum(len(self.runner.halves[job.half].labels) for job in jobs)
        return [results[job] for job in jobs]

    def correct(self, half: str, rates: dict) -> np.ndarray:
        return self.runs(half, rates, 1)[0]


def _curve_steps(levels, chain, budget):
    """One drop curve on the search half, as a generator: it yields the chain level to measure
    next and is sent that level's drop. The sampled chain ``levels`` from low WER up (stopping
    beyond :data:`STOP_FACTOR` budgets), then :data:`REFINEMENTS` bisections (in log WER) of the
    step where the drop first exceeds the budget, where the choice is made; returns the fitted
    :class:`DropCurve`."""
    measured: dict[int, float] = {}
    for level in levels:
        measured[level] = yield level
        if measured[level] > STOP_FACTOR * budget:
            break
    for _ in range(REFINEMENTS):
        ordered = sorted(measured, key=lambda k: chain[k].wer)
        above = [k for k in ordered if measured[k] > budget]
        if not above or ordered.index(above[0]) == 0:
            break
        low, high = ordered[ordered.index(above[0]) - 1], above[0]
        between = [k for k in range(min(low, high) + 1, max(low, high)) if k not in measured]
        if not between:
            break
        target = math.sqrt(chain[low].wer * chain[high].wer)
        middle = min(between, key=lambda k: abs(math.log(chain[k].wer / target)))
        measured[middle] = yield middle
    ordered = sorted(measured, key=lambda k: chain[k].wer)
    return DropCurve.fit([chain[k].wer for k in ordered], [measured[k] for k in ordered])


def measure_curves(
    search, baseline, rates_at: dict, levels, chain, repeats, budget, step
) -> dict[str, DropCurve]:
    """The drop curves of ``rates_at`` (name → the rates of a chain point), measured side by
    side: each round runs the next level of every unfinished curve together, ``repeats`` runs
    each, so workers get every curve's runs at once. Runs are seeded by their coordinates, so
    the curves equal those measured one after another."""
    curves: dict[str, DropCurve] = {}
    steps = {name: _curve_steps(levels, chain, budget) for name in rates_at}
    pending = {name: next(walk) for name, walk in steps.items()}
    while pending:
        names = list(pending)
        runs = search.runs_together(
            [("search", rates_at[name](chain[pending[name]])) for name in names], repeats
        )
        following = {}
        for name, measured in zip(names, runs, strict=True):
            drop = baseline - float(np.mean([run.mean() for run in measured]))
            if step:
                step()
            try:
                following[name] = steps[name].send(drop)
            except StopIteration as finished:
                curves[name] = finished.value
        pending = following
    return curves


__all__ = [
    "ExecutionOptions",
    "MemoryOptions",
    "RuntimeOptions",
    "SearchOptions",
    "OptimizeRequest",
    "REFINEMENTS",
    "SHARED",
    "Search",
    "SearchRun",
    "SearchRunner",
    "measure_curves",
    "run_seed_of",
]
