r"""The least activation-write energy per inference within an accuracy budget: one MRAM write
voltage and pulse per binary site (``xnorfault optimize``, :func:`optimize`).

**Energy model.** Per inference, site s writes :math:`n_s` bits — the elements of one image's
activation there, from the graph's shapes — each at

.. math:: E(V_s, \tau_s) = V_s^2\,\tau_s / R

with R the resistance the write starts from, averaged over writes of +1 and −1
(:meth:`~xnorfault.mram.MTJ.write_energy`; PAPER §III). The activation-write energy per
inference is :math:`E_{tot} = \sum_s n_s\,E(V_s, \tau_s)`, reported in joules and against (a) the
conventional point — WER :math:`10^{-6}` in both write directions
(:meth:`~xnorfault.mram.MTJ.conventional_voltage`) at the candidate pulse where it costs least —
and (b) the best single operating point shared by all sites, searched and verified the same way.

**Search.** The test set is split in halves by a seeded permutation: the search sees only the
*search* half and the verification only the *held-out* half, so the search cannot fit its own
noise.

1. *Candidates*: every (V, τ) of the voltage grid and the pulses, reduced to the chain of points
   that no other point beats in both energy and WER (the larger of the two directions),
   ordered from the most energy (safest) to the least.
2. *Sensitivity*: the accuracy drop on the search half with one site faulty (the others clean)
   at about ten chain points whose WERs are log-spaced in :math:`[10^{-5}, 0.5]`, ``repeats``
   runs each, from low WER up and stopping once the drop exceeds four budgets, then three
   bisections (in log WER) of the step where the drop crosses the budget. The drops are
   made non-decreasing in WER (isotonic regression, scipy) and interpolated linearly in log WER;
   below the first point they are taken proportional to the WER (to the number of flips).
3. *Allocation*: drops are taken to add across sites, :math:`\hat d = \sum_s d_s(c_s)`. From
   every site at the safest point, a greedy walk moves at each step the one site, to whichever
   cheaper point, that saves the most energy per unit of predicted drop. The walk does not
   depend on the budget, so a budget picks the last allocation of the walk predicted within it,
   and a tighter budget never an allocation that spends less. One point shared by all sites is
   searched alike, on the drop curve measured with every site faulty.
4. *Verification* on the held-out half, ``verify_repeats`` runs. Per image, :math:`\delta_i` =
   1 if it is right without errors, less the share of runs in which it is right; the drop is
   :math:`\bar\delta` and its upper confidence bound
   :math:`\bar\delta + t_{1-\alpha/K,\,N-1}\,s_\delta/\sqrt N` (images and flips both vary;
   :math:`\alpha = 1 -` ``confidence``). An answer holds when that bound is within the budget.
   Candidates are the allocations predicted within the budget, half, a quarter (and, per site,
   an eighth) of it; drops need not add across sites, so each candidate's bound is first
   computed the same way on the search half, and only those within the budget there (and, per
   site, cheaper than the shared answer) are verified, cheapest first, until one holds; the
   shared point finally falls back to the safest point of the range, and none holding is an
   error (the range cannot reach the budget). At most K = 4 verifications per answer
   (Bonferroni).

The per-site answer is kept only when one holds; otherwise every site takes the shared point,
so the answer never spends more than the best shared point.

**Runs.** Every run over a half is a job (:class:`SearchRun`) whose flip seed derives from its
coordinates — half, each site's rates (or, on a chip, each site's operating point), chip and
repeat — through :func:`xnorfault.evaluation.jobs.job_seed`, never from the order of the search. So a
measurement repeated alone gives the same numbers, and a measurement's repeats (and the chips'
runs) can run in worker processes or on Ray actors (:class:`~xnorfault.evaluation.executors.JobExecutor`,
``workers``, ``executor``) with the same answer as one process. Imports numpy and scipy (and
the backend's runtime; Ray only for ``executor="ray"``).
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import isotonic_regression

from xnorfault.errors import XnorfaultError
from xnorfault.faults import FlipRates, WriteModel
from xnorfault.mram.device import CONVENTIONAL_WER
from xnorfault.statistics import binomial_interval, paired_drop
from xnorfault.units import format_duration, format_voltage, parse_duration, parse_voltage

SENSITIVITY_LEVELS = 10  # chain points measured per site
LOWEST_WER, HIGHEST_WER = 1e-5, 0.5  # the WERs the sensitivity curves span
STOP_FACTOR = 4.0  # a curve stops once its drop exceeds this many budgets
REFINEMENTS = 3  # bisections of a curve where its drop crosses the budget
# candidates: the allocations predicted within these shares of the budget (the shared point
# then falls back to the safest one): at most four verifications per answer (Bonferroni K)
BUDGET_FRACTIONS = (1.0, 0.5, 0.25, 0.125)
SHARED_FRACTIONS = (1.0, 0.5, 0.25)
VERIFICATIONS = 4
SHARED = "\x00shared"  # the shared point's curve, beside the sites' (no site has this name)
VOLTAGE_STEP = 0.01  # V, of a range given without a step
PULSE_COUNT = 5  # log-spaced pulses of a range given without a step
OPERATING_POINTS_FORMAT = "xnorfault-operating-points/1"


@dataclass(frozen=True)
class WritePoint:
    """One write voltage and pulse, its WER per direction and energy per bit."""

    voltage: float
    pulse: float
    wer_p_to_ap: float  # writing −1: the rate of −1 → +1
    wer_ap_to_p: float  # writing +1: the rate of +1 → −1
    energy_per_bit: float

    @property
    def rates(self) -> FlipRates:
        return FlipRates(self.wer_ap_to_p, self.wer_p_to_ap)

    @property
    def wer(self) -> float:
        return max(self.wer_p_to_ap, self.wer_ap_to_p)

    def to_dict(self) -> dict:
        return {
            "voltage": self.voltage,
            "pulse": self.pulse,
            "wer_p_to_ap": self.wer_p_to_ap,
            "wer_ap_to_p": self.wer_ap_to_p,
        }


def candidate_chain(device, voltages, pulses) -> list[WritePoint]:
    """Every (voltage, pulse) pair, less those another pair beats in both energy per bit and
    WER; from the most energy to the least (WER rising)."""
    points = []
    volts = np.asarray(voltages, dtype=float)
    for pulse in pulses:
        p_to_ap = np.atleast_1d(device.wer(volts, pulse, "p_to_ap"))
        ap_to_p = (
            p_to_ap if device.symmetric else np.atleast_1d(device.wer(volts, pulse, "ap_to_p"))
        )
        energy = np.atleast_1d(device.write_energy(volts, pulse))
        points += [
            WritePoint(float(v), float(pulse), float(a), float(b), float(e))
            for v, a, b, e in zip(volts, p_to_ap, ap_to_p, energy, strict=True)
        ]
    # by rising energy, a point survives only if its WER is below that of every cheaper point
    points.sort(key=lambda p: (p.energy_per_bit, p.wer))
    chain: list[WritePoint] = []
    for point in points:
        if not chain or point.wer < chain[-1].wer:
            chain.append(point)
    return chain[::-1]


@dataclass
class DropCurve:
    """Accuracy drop against WER of one site (or of all sites sharing a point), measured on the
    search half at ``wers``; ``drops`` the isotonic fit of ``measured``."""

    wers: np.ndarray
    measured: np.ndarray
    drops: np.ndarray

    @classmethod
    def fit(cls, wers, measured) -> DropCurve:
        wers, measured = np.asarray(wers, float), np.asarray(measured, float)
        drops = np.clip(isotonic_regression(measured, increasing=True).x, 0.0, None)
        return cls(wers, measured, drops)

    def at(self, wer: float) -> float:
        """The predicted drop at ``wer``; infinite beyond the measured WERs."""
        if wer > self.wers[-1] * (1 + 1e-9):
            return math.inf
        if wer <= self.wers[0]:
            return float(self.drops[0] * wer / self.wers[0])
        return float(np.interp(math.log(wer), np.log(self.wers), self.drops))

    def to_dict(self) -> dict:
        return {
            "wers": self.wers.tolist(),
            "measured_drops": self.measured.tolist(),
            "fitted_drops": self.drops.tolist(),
        }


@dataclass(frozen=True)
class Allocation:
    """A chain index per site, its energy per inference and predicted drop."""

    levels: tuple[int, ...]
    energy: float
    predicted_drop: float


def allocation_path(
    drop_tables: list[np.ndarray], bits: list[int], energy_per_bit: np.ndarray
) -> list[Allocation]:
    """The greedy walk from every site at the safest point (index 0): each step moves the site,
    to the cheaper point, that saves the most energy per unit of added predicted drop (moves
    adding none first, the largest saving among those; among equal ratios the smallest step). ``drop_tables[s][k]``: site s's
    predicted drop at chain point k (infinite where not measured)."""
    levels = [0] * len(bits)

    def snapshot() -> Allocation:
        energy = sum(n * energy_per_bit[k] for n, k in zip(bits, levels, strict=True))
        drop = sum(table[k] for table, k in zip(drop_tables, levels, strict=True))
        return Allocation(tuple(levels), float(energy), float(drop))

    path = [snapshot()]
    while True:
        best = None
        for site, (table, n) in enumerate(zip(drop_tables, bits, strict=True)):
            here = levels[site]
            saved = n * (energy_per_bit[here] - energy_per_bit[here + 1 :])
            added = np.maximum(table[here + 1 :] - table[here], 0.0)
            usable = np.isfinite(added) & (saved > 0)
            for offset in np.flatnonzero(usable):
                free = added[offset] <= 1e-12
                # nine significant digits: rounding noise must not split equal ratios
                ratio = math.inf if free else float(f"{saved[offset] / added[offset]:.9g}")
                # equal ratios: a free move goes as far as it can, a costly one the least far
                # (the walk then passes through every allocation a budget may pick)
                key = (ratio, saved[offset] if free else -added[offset])
                if best is None or key > best[0]:
                    best = (key, site, here + 1 + int(offset))
        if best is None:
            return path
        _, site, level = best
        levels[site] = level
        path.append(snapshot())


def choose(path: list[Allocation], budget: float) -> int:
    """Index of the last allocation of ``path`` predicted within ``budget`` (0 if none)."""
    chosen = 0
    for index, allocation in enumerate(path):
        if allocation.predicted_drop <= budget:
            chosen = index
        else:
            break
    return chosen


def sample_levels(chain: list[WritePoint]) -> list[int]:
    """Chain indices whose WERs are closest to log-spaced targets in [1e-5, 0.5]."""
    wers = np.array([p.wer for p in chain])
    positive = wers > 0
    low = max(LOWEST_WER, float(wers[positive].min())) if positive.any() else LOWEST_WER
    high = min(HIGHEST_WER, float(wers.max()))
    targets = [high] if high <= low else np.geomspace(low, high, SENSITIVITY_LEVELS)
    safe = np.log(np.maximum(wers, 1e-300))
    return sorted({int(np.argmin(np.abs(safe - math.log(t)))) for t in targets})


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
    from xnorfault.evaluation.jobs import job_seed

    return job_seed(seed, run.key, run)


def _rates_tuple(rates: dict[str, FlipRates]) -> tuple:
    return tuple((site, r.pos_to_neg, r.neg_to_pos) for site, r in sorted(rates.items()))


@dataclass(frozen=True)
class OptimizeRequest:
    """What a worker of the search opens (:class:`~xnorfault.evaluation.executors.JobExecutor`): the
    model, the test set and its split, the device and chip seed of the chip runs."""

    model: Path
    data: str
    seed: int
    batch_size: int
    repeats: int
    threads: int | None = None
    limit: int | None = None
    output: str | None = None
    layout: str | None = None
    write: WriteModel | None = None
    device: object = None
    chip_seed: int = 0
    rate_maps: bool = False
    workers: int = 1
    executor: str = "local"
    address: str | None = None

    def open_backend(self):
        from xnorfault.runtimes import open_backend

        return open_backend(
            Path(self.model),
            "onnxruntime",
            self.threads,
            None,
            None,
            self.output,
            self.layout,
            self.write,
            rate_maps=self.rate_maps,
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
        from xnorfault.evaluation.runner import TestSetRunner
        from xnorfault.evaluation.testset import load_test_set

        images, labels = load_test_set(str(request.data), backend, request.limit)
        if len(labels) < 4:
            raise XnorfaultError(
                f"{len(labels)} test images: optimize splits them into a search and a held-out half; give at least 4"
            )
        order = np.random.default_rng(request.seed).permutation(len(labels))
        half = len(labels) // 2
        source = f"{request.data}: labels (y)"
        halves = {
            name: TestSetRunner(
                backend, images[ids], labels[ids], request.seed, request.batch_size, source
            )
            for name, ids in (("search", order[:half]), ("held-out", order[half:]))
        }
        return cls(request, halves, {s: backend.site_addresses.get(s) for s in backend.sites})

    def rates(self, run: SearchRun) -> dict:
        if run.chip < 0:
            return {site: FlipRates(p, n) for site, p, n in run.rates}
        if self._chip is None or self._chip[0] != (run.points, run.chip):
            from xnorfault.mram.chips import cell_wer_table, draw_chip, site_rates

            device = self.request.device
            chip = draw_chip(device, self.addresses, self.request.chip_seed, run.chip)
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
        return test_runner.correct(self.rates(run), seed=run_seed_of(self.request.seed, run))


class _Search:
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


def _measure_curves(
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


def verify(search, half: str, clean, rates, repeats: int, alpha: float) -> dict:
    r"""The drop on the images of ``half`` (the held-out half, or the search half when
    screening) under ``rates``: per image
    :math:`\delta_i` = clean correct − share of ``repeats`` runs correct, the mean and its
    one-sided upper :math:`1-\alpha` t-bound (:func:`xnorfault.statistics.paired_drop`)."""
    runs = search.runs(half, rates, repeats)
    paired = paired_drop(clean, runs, 1 - alpha, one_sided=True)
    return {
        "accuracy_mean": float(np.mean(runs)),
        "baseline_accuracy": float(np.mean(clean)),
        "drop": paired["drop"],
        "drop_upper": paired["high"],
        "confidence_each": 1 - alpha,
        "images": paired["images"],
        "repeats": repeats,
    }


def _settle(path, candidates, budget, check, fallback: bool):
    """Verify ``candidates`` (indices into ``path``, fixed by the search alone) in turn, then,
    with ``fallback``, the safest allocation; the first that holds and every verification."""
    tried: dict[int, dict] = {}
    order = list(dict.fromkeys(candidates)) + ([0] if fallback else [])
    for index in order:
        if index in tried:
            continue
        tried[index] = check(path[index])
        if tried[index]["drop_upper"] <= budget:
            return index, tried
    return None, tried


@dataclass
class OptimizationResult:
    """What :func:`optimize` found; :meth:`to_dict` is the ``--json`` object."""

    max_drop: float
    sites: list[dict]
    energy_per_inference: float
    shared: dict
    conventional: dict | None
    verification: dict
    evaluations: int
    images_inferred: int
    per_site_kept: bool
    device: object
    write: WriteModel
    search: dict = field(default_factory=dict)
    pareto: dict = field(default_factory=dict)
    model_path: str | None = None
    chips: dict | None = None

    def to_dict(self) -> dict:
        data = {
            "max_drop": self.max_drop,
            "sites": self.sites,
            "energy_per_inference": self.energy_per_inference,
            "shared": self.shared,
            "conventional": self.conventional,
            "verification": self.verification,
            "evaluations": self.evaluations,
            "images_inferred": self.images_inferred,
            "per_site_kept": self.per_site_kept,
            "device": self.device.to_dict(),
            "write_model": self.write.to_dict(),
            "search": self.search,
            "pareto": self.pareto,
            "model": self.model_path,
            "chips": self.chips,
        }
        if self.conventional:
            data["energy_vs_conventional"] = (
                self.energy_per_inference / self.conventional["energy_per_inference"]
            )
        data["energy_vs_shared"] = self.energy_per_inference / self.shared["energy_per_inference"]
        return data

    @property
    def rates(self) -> dict[str, FlipRates]:
        return {s["site"]: FlipRates(s["wer_ap_to_p"], s["wer_p_to_ap"]) for s in self.sites}

    def operating_points(self) -> dict:
        """Per site: voltage and pulse (what :func:`write_operating_points` writes)."""
        return {s["site"]: {"voltage": s["voltage"], "pulse": s["pulse"]} for s in self.sites}

    def plot(self, path) -> Path:
        """Draw energy per inference against the predicted drop (per-site and shared fronts,
        the answer, the conventional point), as ``optimize --plot`` does; returns the path."""
        from xnorfault.io import check_figure_output
        from xnorfault.plots import plot_pareto

        path = Path(path)
        check_figure_output(path, "plot")
        return plot_pareto(self.to_dict(), path)

    def save_model(self, source, path) -> Path:
        """Write ``source`` (the model optimised) injected with each site's chosen rates, its
        metadata recording the operating points."""
        from xnorfault.graph.rewrite import inject_flips, load_model, save_model

        injected = inject_flips(
            load_model(source),
            self.rates,
            source={
                "optimize": {
                    "device": self.device.name,
                    "max_drop": self.max_drop,
                    "operating_points": self.operating_points(),
                }
            },
            write=self.write,
        )
        return save_model(injected, Path(path))


def operating_points_toml(result: OptimizationResult) -> str:
    """A TOML file of per-site operating points (``xnorfault deploy --operating-points``)."""
    lines = [
        "# Per-site MRAM write operating points found by 'xnorfault optimize'.",
        f"# Budget: accuracy drop <= {result.max_drop:g}; held-out upper "
        f"{result.verification['confidence']:.3g} bound on {result.verification['images']} images: "
        f"{result.verification['drop_upper']:.4f}.",
        f'format = "{OPERATING_POINTS_FORMAT}"',
        f'device = "{result.device.name}"',
        f'write_model = "{result.write.model}"',
        f'initial_state = "{result.write.initial_state}"',
        "",
    ]
    for site in result.sites:
        name = site["site"].replace("\\", "\\\\").replace('"', '\\"')
        lines += [
            f'[sites."{name}"]',
            f'voltage = "{site["voltage"] * 1e3:.1f}mV"',
            f'pulse = "{site["pulse"] * 1e9:.4g}ns"',
            "",
        ]
    return "\n".join(lines)


def read_operating_points(path) -> dict[str, tuple[float, float]]:
    """Per-site (voltage, pulse) of an operating-points TOML, validated (an untrusted file:
    parsed by tomllib, nothing executed; every value checked)."""
    path = Path(path)
    if not path.is_file():
        raise XnorfaultError(f"operating points {path} not found")
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise XnorfaultError(f"{path} is not valid TOML ({error})") from None
    if document.get("format") != OPERATING_POINTS_FORMAT:
        raise XnorfaultError(
            f'{path}: not an operating-points file (format = "{OPERATING_POINTS_FORMAT}" '
            "expected; write one with 'xnorfault optimize --operating-points')"
        )
    sites = document.get("sites")
    if not isinstance(sites, dict) or not sites:
        raise XnorfaultError(f"{path}: no [sites.NAME] tables with voltage and pulse")
    points = {}
    for name, entry in sites.items():
        if not isinstance(entry, dict) or set(entry) != {"voltage", "pulse"}:
            raise XnorfaultError(f"{path}: [sites.{name}] takes exactly voltage and pulse")
        try:
            points[name] = (parse_voltage(entry["voltage"]), parse_duration(entry["pulse"]))
        except (TypeError, ValueError, XnorfaultError) as error:
            raise XnorfaultError(f"{path}: [sites.{name}]: {error}") from None
    return points


def parse_voltage_range(text: str | None, device, pulses) -> np.ndarray:
    """``--voltage``: ``LOW:HIGH`` (steps of 10 mV), ``LOW:HIGH:STEP`` or a list; by default
    from the larger critical voltage to the conventional point's voltage at the longest pulse
    (or the breakdown voltage)."""
    from xnorfault.units import parse_list

    if text is None:
        low = max(device.critical_voltage(d) for d in ("p_to_ap", "ap_to_p"))
        try:
            high = float(device.conventional_voltage(max(pulses)))
        except XnorfaultError:
            high = device.vbd
        values = np.arange(math.floor(low * 100) / 100, high + 1e-9, VOLTAGE_STEP)
    elif text.count(":") == 1:
        low, high = (parse_voltage(part) for part in text.split(":"))
        if not 0 < low < high:
            raise XnorfaultError(f"--voltage {text}: give LOW:HIGH with 0 < LOW < HIGH")
        values = np.arange(low, high + 1e-9, VOLTAGE_STEP)
    else:
        values = np.asarray(parse_list(text, parse_voltage), dtype=float)
    if np.any(values <= 0) or np.any(values > device.vbd):
        raise XnorfaultError(
            f"--voltage {text}: voltages must lie in (0, {format_voltage(device.vbd)}], the "
            f"breakdown voltage of device '{device.name}'"
        )
    return np.unique(np.round(values, 6))


def parse_pulse_range(text: str) -> list[float]:
    """``--pulse``: one pulse, a list, ``LOW:HIGH`` (five log-spaced pulses) or
    ``LOW:HIGH:STEP``."""
    from xnorfault.units import parse_list

    if text.count(":") == 1:
        low, high = (parse_duration(part) for part in text.split(":"))
        if not 0 < low < high:
            raise XnorfaultError(f"--pulse {text}: give LOW:HIGH with 0 < LOW < HIGH")
        return [float(p) for p in np.geomspace(low, high, PULSE_COUNT)]
    pulses = [float(p) for p in parse_list(text, parse_duration)]
    if any(p <= 0 for p in pulses):
        raise XnorfaultError(f"--pulse {text}: pulses must be positive")
    return sorted(set(pulses))


def optimize(
    model,
    data,
    max_drop: float,
    *,
    mram_device="paper",
    pulses: str | list[float] = "10ns",
    voltages: str | list[float] | None = None,
    write: WriteModel | None = None,
    confidence: float = 0.95,
    repeats: int = 3,
    verify_repeats: int = 10,
    seed: int = 0,
    threads: int | None = None,
    batch_size: int = 256,
    limit: int | None = None,
    output: str | None = None,
    layout: str | None = None,
    progress=None,
    chips: int | None = None,
    chip_seed: int = 0,
    workers: int = 1,
    executor: str = "local",
    address: str | None = None,
) -> OptimizationResult:
    """Per-site write voltages and pulses that spend the least activation-write energy per
    inference while the accuracy drop on held-out images stays within ``max_drop`` with
    ``confidence`` (the module says how). ``model``: an ONNX file (clean or injected);
    ``data``: its test set (``.npz`` of ``x``, ``y``); ``mram_device``: a preset name, a device file
    or an :class:`~xnorfault.mram.MTJ`; ``pulses`` and ``voltages`` as ``--pulse`` and
    ``--voltage`` (or lists of seconds and volts). With ``chips`` (a device with
    ``[variation]``), the answer is also run on that many chips of chip seed ``chip_seed``
    (:func:`chip_report`). Every run's flips are seeded by its coordinates (half, rates,
    chip, repeat: :class:`SearchRun`), so ``workers`` processes or Ray actors
    (``executor="ray"``, ``address``: a cluster) find the same answer as one process.

    >>> result = optimize(model, testset, 0.05, verify_repeats=2)
    >>> [site["site"] for site in result.sites]
    ['act1', 'act2']
    >>> result.energy_per_inference < result.conventional["energy_per_inference"]
    True
    >>> result.verification["drop_upper"] <= 0.05
    True
    >>> result.plot(workdir / "pareto.png").name
    'pareto.png'
    """
    from xnorfault.evaluation.executors import JobExecutor
    from xnorfault.mram import MTJ, load_device

    if not 0 < max_drop < 1:
        raise XnorfaultError(f"--max-drop {max_drop:g}: give a drop between 0 and 1, e.g. 0.01")
    if not 0.5 <= confidence < 1:
        raise XnorfaultError(f"--confidence {confidence:g}: give a level in [0.5, 1), e.g. 0.95")
    if repeats < 1 or verify_repeats < 2:
        raise XnorfaultError("--repeats must be at least 1 and --verify-repeats at least 2")
    if workers < 1:
        raise XnorfaultError(f"--workers {workers}: give at least 1")
    if address is not None and executor != "ray":
        raise XnorfaultError("--address names a Ray cluster: give --executor ray")
    mtj = mram_device if isinstance(mram_device, MTJ) else load_device(mram_device)
    if chips:
        from xnorfault.mram.chips import require_variation

        require_variation(mtj)
    pulse_list = parse_pulse_range(pulses) if isinstance(pulses, str) else sorted(set(pulses))
    voltage_grid = (
        parse_voltage_range(voltages, mtj, pulse_list)
        if voltages is None or isinstance(voltages, str)
        else np.asarray(sorted(set(voltages)), dtype=float)
    )
    write = write or WriteModel()
    request = OptimizeRequest(
        Path(model),
        str(data),
        seed,
        batch_size,
        repeats,
        threads,
        limit,
        output,
        layout,
        write,
        mtj,
        chip_seed,
        bool(chips),
        workers,
        executor,
        address,
    )
    with (
        request.open_backend() as backend,
        JobExecutor(None, request, workers, executor, address) as pool,
    ):
        runner = SearchRunner.build(request, backend)
        pool.runner = runner
        heldout_count = len(runner.halves["held-out"].labels)
        resolution = 1 / heldout_count
        if max_drop < resolution:
            raise XnorfaultError(
                f"--max-drop {max_drop:g} is below one held-out image (1/{heldout_count} = "
                f"{resolution:.4f}): the verification cannot resolve it; give more test images or a larger budget"
            )
        sites = list(backend.sites)
        bits = [backend.site_addresses.get(site) for site in sites]
        if any(not n for n in bits):
            unknown = [s for s, n in zip(sites, bits, strict=True) if not n]
            raise XnorfaultError(
                f"the bits per image of site(s) {', '.join(unknown)} are not fixed (a dynamic "
                "dimension besides the batch): export the model with fixed image dimensions"
            )
        chain = candidate_chain(mtj, voltage_grid, pulse_list)
        energy_per_bit = np.array([p.energy_per_bit for p in chain])
        levels = sample_levels(chain)
        search = _Search(runner, pool)
        search_clean = search.correct("search", {})
        search_baseline = float(search_clean.mean())
        heldout_clean = search.correct("held-out", {})
        measured_together = {site: (lambda point, site=site: {site: point.rates}) for site in sites}
        if len(sites) > 1:
            measured_together[SHARED] = lambda point: {site: point.rates for site in sites}
        task = (
            progress.add_task(
                "searching", total=len(measured_together) * (len(levels) + REFINEMENTS)
            )
            if progress is not None
            else None
        )
        step = (lambda: progress.advance(task)) if progress is not None else None
        curves = _measure_curves(
            search, search_baseline, measured_together, levels, chain, repeats, max_drop, step
        )
        if progress is not None:
            progress.update(task, completed=len(measured_together) * (len(levels) + REFINEMENTS))
        shared_curve = curves.pop(SHARED, None) or curves[sites[0]]
        wers = [p.wer for p in chain]
        tables = [np.array([curves[s].at(w) for w in wers]) for s in sites]
        path = allocation_path(tables, bits, energy_per_bit)
        shared_table = np.array([shared_curve.at(w) for w in wers])
        shared_path = [
            Allocation(
                tuple([k] * len(sites)),
                float(sum(bits) * energy_per_bit[k]),
                float(shared_table[k]),
            )
            for k in range(len(chain))
            if np.isfinite(shared_table[k])
        ]
        alpha = (1 - confidence) / VERIFICATIONS

        def rates_of(allocation: Allocation) -> dict[str, FlipRates]:
            return {s: chain[k].rates for s, k in zip(sites, allocation.levels, strict=True)}

        def check(allocation: Allocation) -> dict:
            return verify(
                search, "held-out", heldout_clean, rates_of(allocation), verify_repeats, alpha
            )

        screened: dict[tuple, dict] = {}

        def screen(candidate_path, fractions, cheaper_than=math.inf) -> list[int]:
            """The candidates whose drop bound, as the verification computes it but on the
            search half, is within the budget (search data only)."""
            kept = []
            for fraction in fractions:
                index = choose(candidate_path, max_drop * fraction)
                allocation = candidate_path[index]
                if allocation.energy >= cheaper_than or index in kept:
                    continue
                if allocation.levels not in screened:
                    screened[allocation.levels] = {
                        "energy_per_inference": allocation.energy,
                        "predicted_drop": allocation.predicted_drop,
                        **verify(
                            search, "search", search_clean, rates_of(allocation), repeats, alpha
                        ),
                    }
                if screened[allocation.levels]["drop_upper"] <= max_drop:
                    kept.append(index)
            return kept

        shared_index, shared_tried = _settle(
            shared_path, screen(shared_path, SHARED_FRACTIONS), max_drop, check, fallback=True
        )
        if shared_index is None:
            safest = shared_tried[0]
            raise XnorfaultError(
                f"even the safest point of the range ({format_voltage(chain[0].voltage)}, "
                f"{format_duration(chain[0].pulse)}, WER {chain[0].wer:.2g}) loses more than "
                f"--max-drop {max_drop:g} on the held-out images (upper bound "
                f"{safest['drop_upper']:.4f}): raise the top of --voltage, lengthen --pulse or "
                "allow a larger drop"
            )
        index, tried = None, {}
        if len(sites) > 1:
            # drops need not add across sites: candidates are screened by their joint drop
            candidates = screen(path, BUDGET_FRACTIONS, shared_path[shared_index].energy)
            index, tried = _settle(path, candidates, max_drop, check, fallback=False)
        shared_allocation = shared_path[shared_index]
        per_site_kept = index is not None and path[index].energy < shared_allocation.energy
        allocation = path[index] if per_site_kept else shared_allocation
        verification = tried[index] if per_site_kept else shared_tried[shared_index]
        described = backend.describe()
        chip_results = None
        if chips:
            chosen = {s: chain[k] for s, k in zip(sites, allocation.levels, strict=True)}
            chip_results = chip_report(
                search, heldout_clean, chosen, chips, chip_seed, repeats, max_drop
            )
    site_rows = []
    for site, n, level in zip(sites, bits, allocation.levels, strict=True):
        point = chain[level]
        energy = n * point.energy_per_bit
        site_rows.append(
            {
                "site": site,
                **point.to_dict(),
                "bits_per_image": int(n),
                "energy_per_bit": point.energy_per_bit,
                "energy_per_inference": energy,
                "energy_share": energy / allocation.energy,
                "predicted_drop": float(curves[site].at(point.wer)),
            }
        )
    shared_point = chain[shared_allocation.levels[0]]
    conventional = _conventional(mtj, pulse_list, sum(bits))
    verification = {
        **verification,
        "confidence": confidence,
        "verifications": VERIFICATIONS,
        "search_baseline_accuracy": search_baseline,
    }
    return OptimizationResult(
        max_drop=max_drop,
        sites=site_rows,
        energy_per_inference=allocation.energy,
        shared={
            **shared_point.to_dict(),
            "energy_per_inference": shared_allocation.energy,
            "verification": shared_tried[shared_index],
        },
        conventional=conventional,
        verification=verification,
        evaluations=search.evaluations,
        images_inferred=search.images,
        per_site_kept=per_site_kept,
        device=mtj,
        write=write,
        search={
            "search_images": int(len(search_clean)),
            "heldout_images": int(len(heldout_clean)),
            "seed": seed,
            "seeds": "by coordinates (half, rates or chip points, chip, repeat)",
            "repeats": repeats,
            "verify_repeats": verify_repeats,
            "candidates": len(chain),
            "pulses": pulse_list,
            "voltages": [float(voltage_grid.min()), float(voltage_grid.max())],
            "curves": {site: curves[site].to_dict() for site in sites},
            "shared_curve": shared_curve.to_dict(),
            "screened_on_search_half": list(screened.values()),
            "verifications": {
                "per_site": [
                    {"energy_per_inference": path[i].energy, **v} for i, v in tried.items()
                ],
                "shared": [
                    {"energy_per_inference": shared_path[i].energy, **v}
                    for i, v in shared_tried.items()
                ],
            },
            "backend": described,
        },
        pareto={
            "per_site": [[a.energy, a.predicted_drop] for a in path],
            "shared": [[a.energy, a.predicted_drop] for a in shared_path],
        },
        model_path=str(model),
        chips=chip_results,
    )


def chip_report(
    search: _Search,
    clean,
    points: dict,
    count: int,
    seed: int,
    repeats: int,
    max_drop: float,
) -> dict:
    """The answer on ``count`` chips (:mod:`xnorfault.mram.chips`) of chip seed ``seed``: each
    site's cells at its own operating point (``points``: site → :class:`WritePoint`),
    ``repeats`` runs per chip on the held-out half. Reports every chip's drop, their mean and
    worst, and the yield — the share of chips within ``max_drop`` — with its Clopper–Pearson
    95 % interval. A report on the answer (searched at the nominal WERs), not a constraint of
    the search."""
    described = tuple((site, p.voltage, p.pulse) for site, p in points.items())
    per_chip = search.chip_runs(described, count, repeats)
    drops = [float(clean.mean() - np.mean([run.mean() for run in runs])) for runs in per_chip]
    within = int(np.sum(np.asarray(drops) <= max_drop))
    return {
        "count": count,
        "seed": seed,
        "repeats": repeats,
        "drops": drops,
        "mean_drop": float(np.mean(drops)),
        "worst_drop": float(np.max(drops)),
        "yield": within / count,
        "yield_ci95": binomial_interval(within, count),
    }


def _conventional(device, pulses, bits: int) -> dict | None:
    """The conventional point: WER 1e-6 in both directions at the candidate pulse where its
    energy per inference is least (``None`` where no pulse reaches it below breakdown)."""
    best = None
    for pulse in pulses:
        try:
            voltage = float(device.conventional_voltage(pulse))
        except XnorfaultError:
            continue
        energy = bits * float(device.write_energy(voltage, pulse))
        if best is None or energy < best["energy_per_inference"]:
            best = {
                "voltage": voltage,
                "pulse": pulse,
                "wer": CONVENTIONAL_WER,
                "energy_per_inference": energy,
            }
    return best


__all__ = [
    "Allocation",
    "DropCurve",
    "OptimizationResult",
    "WritePoint",
    "allocation_path",
    "candidate_chain",
    "operating_points_toml",
    "optimize",
    "read_operating_points",
]
