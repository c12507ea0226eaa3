r"""Accuracy and latency of a model under bit flips, over sweeps of BER or write voltage.

Statistics. Each sweep point is evaluated ``repeats`` times on the same test images, every
batch with a fresh flip seed derived from the run's coordinates — campaign seed, point, chip,
repeat, batch (:mod:`xnorfault.campaign`), so that any split of the campaign over processes,
shards or a Ray cluster gives the same numbers. The point reports the mean accuracy, the sample standard deviation and the 95 %
confidence interval of the mean, :math:`\bar a \pm t_{0.975,\,n-1}\, s/\sqrt{n}` (Student's t):
the flip noise on these images. Beside it, ``test_set_ci95`` is the test set's own sampling
error (Clopper–Pearson over the N images) and ``drop_ci95`` the interval of the drop against
the error-free run that holds both (paired per image, :func:`xnorfault.statistics.paired_drop`);
``--max-drop`` decides on ``drop_ci95``. The error-free baseline is the same images with every
rate 0 (deterministic).

Write-voltage sweeps map each voltage through :class:`xnorfault.mram.MTJ` to the flip rates of
both polarities (+1 stored as P: :math:`p_{+\to-} = \mathrm{WER}_{AP\to P}`), and report write
energy and endurance there. With chips (:mod:`xnorfault.mram.chips`) every voltage is evaluated
on each of N chips whose cells differ, and the point reports the distribution across chips and
the yield (:func:`chip_summary`). Imports numpy and scipy only (plus the backend's runtime).
"""

from __future__ import annotations

import csv
import io
import math
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xnorfault.contract import PREPROCESSING_KEY, SOURCE_RUN_KEY
from xnorfault.data.labels import check_labels
from xnorfault.errors import XnorfaultError
from xnorfault.faults import (
    FaultPoint,
    FaultSource,
    FaultSpec,
    FlipRates,
    WriteModel,
    fault_points,
)
from xnorfault.generator import run_seed
from xnorfault.mram.device import CONVENTIONAL_WER
from xnorfault.statistics import binomial_interval, half_width, paired_drop, runs_needed


def summarise(values) -> dict:
    """Mean, sample std and 95 % t-interval of the mean of repeated accuracies."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if values.size < 2:
        return {
            "accuracy_mean": mean,
            "accuracy_std": 0.0,
            "ci95": [mean, mean],
            "repeats": int(values.size),
        }
    half = half_width(values)
    return {
        "accuracy_mean": mean,
        "accuracy_std": float(values.std(ddof=1)),
        "ci95": [mean - half, mean + half],
        "repeats": int(values.size),
    }


class Campaign:
    """Runs a backend over a test set; every batch run gets the next seed of the campaign."""

    def __init__(
        self,
        backend,
        images: np.ndarray,
        labels: np.ndarray,
        seed: int,
        batch_size: int = 256,
        labels_source: str = "test labels",
    ):
        check_inputs(images, labels)
        images = backend.conform(images)
        # one image through the model before the long work: it runs at all, and its output
        # width is the number of classes the labels must index
        num_classes = int(np.asarray(backend.run(images[:1], {}, 0)).shape[-1])
        check_labels(labels, num_classes, labels_source)
        self.backend = backend
        self.images = images
        self.labels = labels
        self.seed = seed
        self.batch_size = batch_size
        self.counter = 0

    def accuracy(self, rates: dict[str, FlipRates]) -> float:
        return float(self.correct(rates).mean())

    def correct(self, rates: dict[str, FlipRates], seed: int | None = None) -> np.ndarray:
        """Whether each test image is classified right in one run under ``rates`` (bool).
        With ``seed`` (a job's, :func:`xnorfault.campaign.job_seed`) batch b runs with
        :func:`run_seed` (seed, b); without, each batch takes the campaign's next seed."""
        hits = []
        for index, start in enumerate(range(0, len(self.labels), self.batch_size)):
            batch_seed = self.next_seed() if seed is None else run_seed(seed, index)
            logits = self.backend.run(
                self.images[start : start + self.batch_size], rates, batch_seed
            )
            hits.append(logits.argmax(axis=1) == self.labels[start : start + self.batch_size])
        return np.concatenate(hits)

    def next_seed(self) -> int:
        """The flip seed of the campaign's next batch run."""
        seed = run_seed(self.seed, self.counter)
        self.counter += 1
        return seed

    def latency(
        self, rates: dict[str, FlipRates], batch: int, iterations: int, warmup: int = 3
    ) -> dict:
        """Latency of batches of ``batch`` test images (repeated when the test set is
        smaller): the deployed model's own (the graph without flips) and, side by side, the
        simulation's overhead under ``rates``, each simulated run with the campaign's next seed
        (:meth:`~xnorfault.runtimes.base.Backend.model_latency`)."""
        reps = math.ceil(batch / len(self.images))
        images = np.concatenate([self.images] * reps)[:batch] if reps > 1 else self.images[:batch]
        return self.backend.model_latency(images, rates, iterations, self.next_seed, warmup)


def check_inputs(images: np.ndarray, labels: np.ndarray) -> None:
    """The test set itself, with a clear error: at least one image, one label per image, no
    NaN or infinite pixel (its fit to the model's input is the backend's
    :meth:`~xnorfault.runtimes.base.Backend.conform`)."""
    if images.shape[:1] == (0,) or labels.size == 0:
        raise XnorfaultError("the test set holds no images: give at least one image and label")
    if images.ndim < 2:
        raise XnorfaultError(
            f"test images x have shape {images.shape}: expected one image per row (N, C, H, W)"
        )
    if labels.shape != (images.shape[0],):
        raise XnorfaultError(f"{images.shape[0]} test images but labels of shape {labels.shape}")
    if not np.issubdtype(images.dtype, np.number):
        raise XnorfaultError(f"test images are {images.dtype}: give numbers (float32 or uint8)")
    finite = np.isfinite(images).all(axis=tuple(range(1, images.ndim)))
    if not finite.all():
        bad = np.flatnonzero(~finite)
        shown = ", ".join(str(i) for i in bad[:5]) + (", …" if bad.size > 5 else "")
        raise XnorfaultError(
            f"test images {shown} hold NaN or infinite pixels ({bad.size} of {len(images)}): mend or drop them"
        )


def evaluate(
    campaign: Campaign,
    points: list[FaultPoint],
    repeats: int,
    latency_batches=(),
    latency_iterations: int = 20,
    per_layer: bool = False,
    progress=None,
    chips=None,
    max_drop: float | None = None,
    target_ci: float | None = None,
    max_repeats: int = 200,
    execute=None,
) -> dict:
    """Baseline, then every point: accuracy statistics, optional latency and per-site
    sensitivity; with ``chips`` (a :class:`~xnorfault.mram.chips.ChipPopulation`) each voltage
    point is evaluated on every chip. The runs are the campaign's jobs
    (:mod:`xnorfault.campaign`), seeded by their coordinates; ``execute(jobs, advance)`` runs
    them elsewhere (worker processes, Ray) and returns their results, else they run here."""
    from xnorfault.campaign import JobRunner, plan_of, run_jobs

    sites = campaign.backend.sites
    runner = JobRunner(campaign, points, chips)
    plan = plan_of(points, repeats, chips, sites if per_layer else ())
    if target_ci is not None:
        outcomes = sized_outcomes(runner, plan, target_ci, max_repeats, progress)
    else:
        jobs = plan.jobs()
        task = progress.add_task("evaluating", total=len(jobs)) if progress else None
        advance = (lambda: progress.advance(task)) if progress else None
        if execute is not None:
            outcomes = execute(jobs, advance)
        else:
            outcomes = run_jobs(jobs, runner, advance=advance)
    result = assemble(points, outcomes, repeats, sites, chips, max_drop, per_layer, target_ci)
    for point, entry in zip(points, result["points"], strict=True):
        if latency_batches:
            everywhere = {site: point.spec.activation_rates(site) for site in sites}
            entry["latency"] = {
                str(b): campaign.latency(everywhere, b, latency_iterations) for b in latency_batches
            }
    result["test_images"] = int(len(campaign.labels))
    return result


def assemble(
    points: list[FaultPoint],
    outcomes: dict,
    repeats: int,
    sites: list[str],
    chips=None,
    max_drop: float | None = None,
    per_layer: bool = False,
    target_ci: float | None = None,
) -> dict:
    """The ``evaluate`` result from the jobs' results (``outcomes``: :class:`~xnorfault.campaign.Job`
    → which images each run got right): the baseline, per point the mean, std and 95 %
    interval over repeats with the test-set and paired-drop intervals (or, with chips, the
    distribution over chips, :func:`chip_summary`), and the per-site sensitivity."""
    from xnorfault.campaign import Job

    clean = outcomes[Job(-1, -1, 0)]
    baseline = float(clean.mean())
    results = []
    for index, point in enumerate(points):
        result = {
            "label": point.label,
            "ber": point.ber,
            "voltage": point.voltage,
            "pulse": point.pulse,
            "p_flip_pos_to_neg": point.rates.pos_to_neg,
            "p_flip_neg_to_pos": point.rates.neg_to_pos,
            **point.extra,
        }
        if chips is not None:
            accuracies = [
                float(np.mean([outcomes[Job(index, c, r)].mean() for r in range(repeats)]))
                for c in range(chips.count)
            ]
            result.update(chip_summary(accuracies, chips, point, repeats, baseline, max_drop))
        else:
            runs = []
            while Job(index, -1, len(runs)) in outcomes:
                runs.append(outcomes[Job(index, -1, len(runs))])
            result.update(summarise([float(run.mean()) for run in runs]))
            result.update(uncertainty_sources(clean, runs, result["accuracy_mean"]))
            if target_ci is not None:
                half = (result["ci95"][1] - result["ci95"][0]) / 2
                result["target_ci"] = {"half_width": target_ci, "met": bool(half <= target_ci)}
        result["accuracy_drop"] = baseline - result["accuracy_mean"]
        if per_layer:
            result["per_layer"] = {
                site: summarise(
                    [float(outcomes[Job(index, -1, r, site)].mean()) for r in range(repeats)]
                )
                for site in sites
            }
        if point.spec.layers:
            everywhere = {site: point.spec.activation_rates(site) for site in sites}
            result["per_site_rates"] = {site: r.to_dict() for site, r in everywhere.items()}
        results.append(result)
    return {"baseline_accuracy": baseline, "points": results, "sites": sites}


def sized_outcomes(runner, plan, target: float, max_repeats: int, progress=None) -> dict:
    r"""The jobs of a campaign sized by ``--target-ci``: per point, repeats (at least 2)
    until the 95 % t-interval's half-width of the accuracy is ≤ ``target`` or ``max_repeats``
    runs are made — ``repeats`` first, then, from their spread s, the
    :math:`\lceil (t_{0.975,n-1}\,s/W)^2\rceil` runs the half-width W needs
    (:func:`xnorfault.statistics.runs_needed`), checked again until it holds. Repeat r of a
    point is the same job (same seed) as in a campaign of fixed repeats."""
    from xnorfault.campaign import Job

    outcomes = {Job(-1, -1, 0): runner.run(Job(-1, -1, 0))}
    task = progress.add_task("evaluating", total=len(plan.keys)) if progress else None
    for index in range(len(plan.keys)):
        runs: list[np.ndarray] = []

        def more(count: int, index: int = index, runs: list = runs) -> None:
            for repeat in range(len(runs), len(runs) + count):
                job = Job(index, -1, repeat)
                outcomes[job] = runner.run(job)
                runs.append(outcomes[job])

        more(min(max(plan.repeats, 2), max_repeats))
        while half_width([r.mean() for r in runs]) > target and len(runs) < max_repeats:
            accuracies = [float(r.mean()) for r in runs]
            needed = min(max_repeats, max(runs_needed(accuracies, target), len(runs) + 1))
            more(needed - len(runs))
        for site in plan.per_layer_sites:
            for repeat in range(plan.repeats):
                job = Job(index, -1, repeat, site)
                outcomes[job] = runner.run(job)
        if progress:
            progress.advance(task)
    return outcomes


def uncertainty_sources(clean: np.ndarray, runs: list[np.ndarray], accuracy: float) -> dict:
    """The uncertainty of a point beyond its flip-noise interval (``ci95``, over repeats on
    these images): ``test_set_ci95``, the accuracy's Clopper–Pearson interval over the N test
    images (the test set's own sampling error), and ``drop_ci95``, the interval of the drop
    against the error-free run on the same images that holds both sources
    (:func:`xnorfault.statistics.paired_drop`)."""
    count = len(clean)
    paired = paired_drop(clean, runs)
    return {
        "test_set_ci95": binomial_interval(round(accuracy * count), count),
        "drop_ci95": [paired["low"], paired["high"]],
    }


def chip_summary(
    accuracies: list[float],
    chips,
    point: FaultPoint,
    repeats: int,
    baseline: float,
    max_drop: float | None = None,
) -> dict:
    r"""One voltage point over the chips of ``chips``, from each chip's accuracy :math:`a_k`
    (the mean of its ``repeats`` runs with its per-address rates):

    - ``chips``: the per-chip accuracies, in chip order;
    - ``accuracy_mean``, ``accuracy_std``, ``ci95``: mean, sample std and 95 % t-interval of
      the mean over chips (the chip population's mean accuracy);
    - ``chip_accuracy``: mean, 5th percentile (linear interpolation between order statistics)
      and worst chip;
    - ``yield`` (with ``max_drop``): the share of chips with :math:`a_k \ge a_0 - \text{drop}`
      (:math:`a_0` the error-free baseline), and ``yield_ci95``, its Clopper–Pearson 95 %
      interval — chips are independent draws of the population;
    - ``population_p_flip_*``: the population's exact mean rates
      (:meth:`~xnorfault.mram.MTJ.population_wer`) and ``chip_mean_p_flip_*`` the drawn cells'
      mean, which converges to it.
    """
    from xnorfault.mram.chips import chip_rates

    pos_total, neg_total = 0.0, 0.0
    for chip in chips.chips():
        rates = chip_rates(chip, chips.table, point.voltage)
        pos_total += sum(float(r.pos_to_neg.sum()) for r in rates.values())
        neg_total += sum(float(r.neg_to_pos.sum()) for r in rates.values())
    values = np.asarray(accuracies)
    result = summarise(values)
    result["repeats"] = repeats
    result["chips"] = list(accuracies)
    result["chip_accuracy"] = {
        "count": int(values.size),
        "mean": float(values.mean()),
        "p5": float(np.percentile(values, 5)),
        "worst": float(values.min()),
    }
    device = chips.device
    result["population_p_flip_pos_to_neg"] = float(
        device.population_wer(point.voltage, point.pulse, "ap_to_p")
    )
    result["population_p_flip_neg_to_pos"] = float(
        device.population_wer(point.voltage, point.pulse, "p_to_ap")
    )
    cells = chips.cells * chips.count
    result["chip_mean_p_flip_pos_to_neg"] = pos_total / cells
    result["chip_mean_p_flip_neg_to_pos"] = neg_total / cells
    if max_drop is not None:
        within = int(np.sum(values >= baseline - max_drop))
        result["yield"] = within / values.size
        result["yield_ci95"] = binomial_interval(within, values.size)
    else:
        result["yield"] = None
    return result


@dataclass(frozen=True)
class EvaluationRequest:
    """What ``xnorfault evaluate`` asks: a model, a test set, where the fault rates come from
    (``None``: the rates injected into the model), and how to run and time it."""

    model: Path
    data: str
    source: FaultSource | None = None
    repeats: int = 20
    batch_size: int | None = None  # default: the target's, else 256
    latency_batches: tuple[int, ...] | None = None  # default: the target's, else none
    latency_iterations: int = 20
    threads: int | None = None
    backend: str = "auto"
    lce_benchmark_binary: Path | None = None
    lce_model: Path | None = None
    target: str | None = None
    seed: int = 0
    limit: int | None = None
    max_drop: float | None = None
    per_layer: bool = False
    output: str | None = None  # the logits' graph output, for a model with several
    layout: str | None = None  # nchw / nhwc of the model's image input, when not detected
    write: WriteModel | None = None  # the write model; None: the model's own (iid if clean)
    chips: int | None = None  # chips drawn from the device's variation, each its own cells
    chip_seed: int = 0
    target_ci: float | None = None  # repeats added until each interval's half-width is ≤ this
    max_repeats: int = 200
    # binary weights kept in MRAM (xnorfault.mram.weights): the memory, the ages to evaluate
    # (each a point, on every chip), and the device whose cells hold the weights
    weight_memory: object = None
    ages: tuple[float, ...] = ()
    weight_device: object = None
    # where the campaign's jobs run (xnorfault.campaign): worker processes or Ray actors, and
    # a campaign folder (out) for shards (shard: (I, N)) and merge
    workers: int = 1
    executor: str = "local"
    address: str | None = None
    out: Path | None = None
    shard: tuple[int, int] | None = None
    merge: bool = False

    def open_runner(self):
        """A worker's :class:`~xnorfault.campaign.JobRunner` (:func:`open_job_runner`)."""
        return open_job_runner(self)[0]


def sweep_points(source: FaultSource | None, backend) -> list[FaultPoint]:
    """The points of an evaluation: those of ``source`` — voltages from the highest (safest)
    down — or, without one, the rates injected into the model."""
    if source is not None:
        points = fault_points(source)
        if source.voltages:
            points.sort(key=lambda point: point.voltage, reverse=True)
        return points
    injected = dict(backend.injected_rates)
    rates = next(iter(injected.values()), FlipRates())
    if any(other != rates for other in injected.values()):
        # rates of their own per site (e.g. 'xnorfault optimize -o'): one point, as injected
        return [FaultPoint("injected", FaultSpec.from_rates(rates, layers=injected))]
    if rates.is_symmetric:
        return fault_points(FaultSource(bers=(rates.pos_to_neg,)))
    return [FaultPoint("injected", FaultSpec.from_rates(rates))]


def resolved(request: EvaluationRequest):
    """``request`` with the target profile's threads, batch size and latency batches filled
    in, and the profile (``None`` without ``--target``)."""
    from dataclasses import replace

    from xnorfault.targets import load_target

    profile = load_target(request.target) if request.target is not None else None
    threads, batch_size, latency_batches = (
        request.threads,
        request.batch_size,
        request.latency_batches,
    )
    if profile is not None:
        threads = threads or profile.threads
        batch_size = batch_size or profile.batch_size
        if latency_batches is None:
            latency_batches = tuple(profile.latency_batches)
    return profile, replace(
        request,
        threads=threads,
        batch_size=batch_size or 256,
        latency_batches=tuple(latency_batches or ()),
    )


def _open(request: EvaluationRequest):
    from xnorfault.runtimes import open_backend

    return open_backend(
        request.model,
        request.backend,
        request.threads,
        request.lce_benchmark_binary,
        request.lce_model,
        request.output,
        request.layout,
        request.write,
        rate_maps=bool(request.chips) and _varied_voltage_point(request),
    )


def open_context(request: EvaluationRequest, runner):
    """The campaign (test set, batch size, seed), the sweep's points and the chips of a
    request on an open backend ``runner``."""
    images, labels = load_test_set(request.data, runner, request.limit)
    points = sweep_points(request.source, runner)
    chips = None
    if request.chips and request.weight_memory is None:
        from xnorfault.mram.chips import ChipPopulation

        source = request.source
        chips = ChipPopulation.build(
            source.device,
            {site: runner.site_addresses.get(site) for site in runner.sites},
            request.chips,
            request.chip_seed,
            source.pulse,
            source.voltages,
        )
    campaign = Campaign(
        runner, images, labels, request.seed, request.batch_size, f"{request.data}: labels (y)"
    )
    return campaign, points, chips


def open_job_runner(request: EvaluationRequest):
    """A worker's :class:`~xnorfault.campaign.JobRunner` for a resolved request (its backend
    stays open for the worker's life), and the backend."""
    from xnorfault.campaign import JobRunner

    runner = _open(request)
    campaign, points, chips = open_context(request, runner)
    return JobRunner(campaign, points, chips), runner


def run_evaluation(request: EvaluationRequest, progress=None) -> dict:
    """Evaluate ``request``: open its backend, load the test set, run the baseline and every
    point (:func:`evaluate`), and describe the backend, machine, target and device with the
    result; with ``max_drop`` also the lowest voltage (or highest BER) within that drop.
    With ``workers``/``executor`` the jobs run in worker processes or on Ray; with ``out`` they
    are kept in a campaign folder (only shard ``shard`` of them run here; ``merge`` runs none)
    and the result is assembled once every job is there. ``progress``: a rich ``Progress``,
    shown only while the jobs run (not while the backend and test set load, whose errors
    should stand alone)."""
    from xnorfault.targets import machine_description

    if request.merge:
        request = campaign_request(request.out, request)
    check_chip_request(request)
    check_campaign_request(request)
    if request.weight_memory is not None:
        check_weight_request(request)
    profile, request = resolved(request)
    with _open(request) as runner:
        chips = None
        campaign, points, chips = open_context(request, runner)
        if request.weight_memory is not None:
            result = _run_weight_evaluation(request, campaign, points, progress)
        else:
            if request.out is not None:
                result = _run_in_folder(request, campaign, points, chips, progress)
                if "campaign_incomplete" in result:
                    return result
            else:
                execute = None
                if request.workers > 1 or request.executor != "local":
                    from xnorfault.campaign import run_jobs

                    def execute(jobs, advance):
                        return run_jobs(
                            jobs,
                            None,
                            request,
                            request.workers,
                            request.executor,
                            request.address,
                            advance,
                        )

                with progress if progress is not None else nullcontext():
                    result = evaluate(
                        campaign,
                        points,
                        request.repeats,
                        request.latency_batches,
                        request.latency_iterations,
                        request.per_layer,
                        progress,
                        chips,
                        request.max_drop,
                        request.target_ci,
                        request.max_repeats,
                        execute,
                    )
        result["backend"] = runner.describe()
        source_run = _source_run(runner.metadata)
        if source_run is not None:
            result["source_run"] = source_run
        if chips is not None:
            result["chip_draw"] = chips.describe()
        if runner.data_input is not None:
            result["model"] = _model_facts(request.model, runner)
    result["latency_batches"] = list(request.latency_batches)
    result["seed"] = request.seed
    result["batch_size"] = request.batch_size
    result["machine"] = machine_description()
    if request.workers > 1 or request.executor != "local":
        result["executor"] = {
            "executor": request.executor,
            "workers": request.workers,
            "address": request.address,
        }
    if profile is not None:
        result["target"] = profile.to_dict()
    result["data"] = request.data
    device = request.source.device if request.source is not None else None
    if device is not None:
        result["device"] = device.to_dict()
    if request.weight_memory is not None:
        if request.max_drop is not None:
            result["max_drop"] = longest_age_within(result, request.max_drop)
        return result
    if request.max_drop is not None:
        result["max_drop"] = (
            lowest_voltage_within(result, request.max_drop, device)
            if request.source is not None and request.source.voltages
            else highest_ber_within(result, request.max_drop)
        )
    return result


def check_campaign_request(request: EvaluationRequest) -> None:
    """Workers, Ray and campaign folders run planned jobs: one-line errors for what they
    cannot plan (``--target-ci`` sizes as it goes), time (latency: one process) or hold."""
    split = request.workers > 1 or request.executor != "local" or request.out is not None
    if request.workers < 1:
        raise XnorfaultError(f"--workers {request.workers}: give at least 1")
    if request.shard is not None and request.out is None:
        raise XnorfaultError("--shard writes its jobs into a campaign folder: give --out DIR")
    if request.address is not None and request.executor != "ray":
        raise XnorfaultError("--address names a Ray cluster: give --executor ray")
    if not split:
        return
    if request.target_ci is not None:
        raise XnorfaultError(
            "--target-ci decides the repeats as the runs come in: run it in one process "
            "(without --workers, --executor or --out)"
        )
    if request.weight_memory is not None:
        raise XnorfaultError("--age runs in one process: leave out --workers, --executor and --out")
    if request.out is not None and request.latency_batches:
        raise XnorfaultError(
            "latency is timed in one process on one machine: leave --batch out of a campaign "
            "folder (time it with a separate evaluate)"
        )
    if request.backend not in ("auto", "onnxruntime") or request.model.suffix == ".tflite":
        raise XnorfaultError(
            "workers, Ray and campaign folders run ONNX models with onnxruntime: evaluate the "
            ".onnx model"
        )


def _run_in_folder(request, campaign, points, chips, progress) -> dict:
    """Run this shard's unfinished jobs into the campaign folder, each saved as it arrives;
    assemble the result when every job of the campaign is there, else say what is missing."""
    from xnorfault.campaign import CampaignFolder, plan_of, run_jobs, shard_jobs

    folder = CampaignFolder(Path(request.out))
    description = campaign_description(request)
    folder.claim(description)
    stamp = description["fingerprint"]
    count = len(campaign.labels)
    plan = plan_of(
        points, request.repeats, chips, campaign.backend.sites if request.per_layer else ()
    )
    jobs = plan.jobs()
    mine = [] if request.merge else shard_jobs(jobs, *(request.shard or (1, 1)))
    todo = [job for job in mine if not folder.done(job, stamp, count)]
    if todo:
        from xnorfault.campaign import JobRunner

        task = progress.add_task("evaluating", total=len(todo)) if progress else None
        with progress if progress is not None else nullcontext():
            run_jobs(
                todo,
                JobRunner(campaign, points, chips),
                request,
                request.workers,
                request.executor,
                request.address,
                (lambda: progress.advance(task)) if progress else None,
                lambda job, correct: folder.save(job, correct, stamp),
            )
    missing = [job for job in jobs if not folder.done(job, stamp, count)]
    summary = {
        "folder": str(folder.path),
        "jobs": len(jobs),
        "run_here": len(todo),
        "already_done": len(mine) - len(todo),
        "missing": len(missing),
        "shard": list(request.shard) if request.shard else None,
    }
    if missing:
        incomplete = sorted({job.point for job in missing})
        return {
            "campaign_incomplete": True,
            "campaign": summary
            | {"incomplete_points": ["baseline" if i < 0 else points[i].label for i in incomplete]},
        }
    outcomes = {job: folder.load(job, stamp, count) for job in jobs}
    result = assemble(
        points,
        outcomes,
        request.repeats,
        campaign.backend.sites,
        chips,
        request.max_drop,
        request.per_layer,
    )
    result["test_images"] = count
    result["campaign"] = summary
    return result


def campaign_description(request: EvaluationRequest) -> dict:
    """What a campaign folder holds: everything that decides its jobs' results — the model
    and a file test set by path and SHA-256, the fault source, write model, repeats, chips,
    seeds, batch size — and, apart, what only shapes the merged result (``max_drop``)."""
    from xnorfault.campaign import file_digest, fingerprint

    source = request.source
    if source is not None and source.device is not None and source.device.measured is not None:
        raise XnorfaultError(
            "a campaign folder records its device by its parameters: a measured WER table "
            "cannot be recorded; run it in one process"
        )
    data_path = Path(request.data)
    jobs = {
        "model": str(Path(request.model).resolve()),
        "model_sha256": file_digest(Path(request.model)),
        "data": str(data_path.resolve()) if data_path.is_file() else request.data,
        "data_sha256": file_digest(data_path) if data_path.is_file() else None,
        "source": None if source is None else _source_description(source),
        "repeats": request.repeats,
        "seed": request.seed,
        "batch_size": request.batch_size,
        "limit": request.limit,
        "per_layer": request.per_layer,
        "output": request.output,
        "layout": request.layout,
        "write": None if request.write is None else request.write.to_dict(),
        "chips": request.chips,
        "chip_seed": request.chip_seed,
    }
    return {
        "format": 1,
        "jobs": jobs,
        "fingerprint": fingerprint(jobs),
        "max_drop": request.max_drop,
    }


def _source_description(source: FaultSource) -> dict:
    return {
        "bers": list(source.bers),
        "rates": None if source.rates is None else source.rates.to_dict(),
        "voltages": list(source.voltages),
        "pulse": source.pulse,
        "device": None if source.device is None else source.device.to_dict(),
        "write": source.write.to_dict(),
    }


def campaign_request(folder, given: EvaluationRequest) -> EvaluationRequest:
    """``evaluate --merge DIR``: the request a campaign folder recorded (checked: the model
    file still has its digest), with the executor options of ``given``."""
    from dataclasses import replace

    from xnorfault.campaign import CAMPAIGN_FILE, _read_json, file_digest, fingerprint
    from xnorfault.mram.device import MTJ

    path = Path(folder) / CAMPAIGN_FILE
    if not path.is_file():
        raise XnorfaultError(
            f"{folder} holds no {CAMPAIGN_FILE}: give the --out folder of a campaign"
        )
    description = _read_json(path)
    jobs = description.get("jobs")
    if not isinstance(jobs, dict) or fingerprint(jobs) != description.get("fingerprint"):
        raise XnorfaultError(f"{path} is damaged (its fingerprint does not match its contents)")
    model = Path(jobs["model"])
    if not model.is_file() or file_digest(model) != jobs["model_sha256"]:
        raise XnorfaultError(f"the campaign's model {model} is missing or has changed since")
    source = None
    if jobs["source"] is not None:
        raw = jobs["source"]
        device = None
        if raw["device"] is not None:
            fields = {
                k: v
                for k, v in raw["device"].items()
                if k not in ("measured", "weight_memory", "defaulted")
            }
            device = MTJ(**fields)
        source = FaultSource(
            bers=tuple(raw["bers"]),
            rates=None if raw["rates"] is None else FlipRates.from_dict(raw["rates"]),
            voltages=tuple(raw["voltages"]),
            pulse=raw["pulse"],
            device=device,
            write=WriteModel.from_dict(raw["write"]),
        )
    return replace(
        given,
        model=model,
        data=jobs["data"],
        source=source,
        repeats=jobs["repeats"],
        seed=jobs["seed"],
        batch_size=jobs["batch_size"],
        limit=jobs["limit"],
        per_layer=jobs["per_layer"],
        output=jobs["output"],
        layout=jobs["layout"],
        write=None if jobs["write"] is None else WriteModel.from_dict(jobs["write"]),
        chips=jobs["chips"],
        chip_seed=jobs["chip_seed"],
        max_drop=given.max_drop if given.max_drop is not None else description.get("max_drop"),
        out=Path(folder),
        merge=True,
        latency_batches=(),
    )


def _varied_voltage_point(request: EvaluationRequest) -> bool:
    """Whether a weight-memory evaluation's activations need per-address rates: a write
    voltage on a device with cell-to-cell variation (without weights: always, with chips)."""
    if request.weight_memory is None:
        return True
    source = request.source
    return bool(source is not None and source.voltages and source.device.varies)


def check_weight_request(request: EvaluationRequest) -> None:
    """Weight faults: one activation operating point, no per-site or sized repeats, the
    onnxruntime backend (one-line errors, before anything loads)."""
    source = request.source
    if source is not None and len(fault_points(source)) != 1:
        raise XnorfaultError(
            "with --age the sweep runs over ages: give one activation operating point "
            "(one --voltage or --ber), or none for the model's own rates"
        )
    if request.per_layer:
        raise XnorfaultError("--per-layer and --age together: run the layer sensitivity separately")
    if request.target_ci is not None:
        raise XnorfaultError(
            "--target-ci sizes the repeats of plain points; with --age the interval is over chips: raise --chips"
        )
    if request.backend not in ("auto", "onnxruntime") or request.model.suffix == ".tflite":
        from xnorfault.weight_faults import weight_faults_unsupported

        raise weight_faults_unsupported("lce" if request.backend == "auto" else request.backend)


def _run_weight_evaluation(request, campaign, points, progress) -> dict:
    """Every chip at every age (:func:`xnorfault.weight_faults.evaluate_weight_ages`), with
    the activation faults of the one point on top (per-address on a varied device)."""
    from xnorfault.weight_faults import evaluate_weight_ages

    runner = campaign.backend
    point = points[0]
    sites = runner.sites
    everywhere = {site: point.spec.activation_rates(site) for site in sites}
    population = None
    if request.source is not None and _varied_voltage_point(request):
        from xnorfault.mram.chips import ChipPopulation

        population = ChipPopulation.build(
            request.source.device,
            {site: runner.site_addresses.get(site) for site in sites},
            request.chips or 1,
            request.chip_seed,
            request.source.pulse,
            request.source.voltages,
        )

    def activation_rates(index: int):
        if population is None:
            return everywhere
        from xnorfault.mram.chips import chip_rates, draw_chip

        chip = draw_chip(population.device, population.addresses, request.chip_seed, index)
        return chip_rates(chip, population.table, point.voltage)

    clean = campaign.correct({})
    baseline = float(clean.mean())
    count = request.chips or 1
    task = progress.add_task("evaluating", total=count * len(request.ages)) if progress else None
    with progress if progress is not None else nullcontext():
        results = evaluate_weight_ages(
            campaign,
            request.weight_device,
            request.weight_memory,
            list(request.ages),
            count,
            request.chip_seed,
            activation_rates,
            request.repeats,
            baseline,
            request.max_drop,
            (lambda: progress.advance(task)) if progress else None,
        )
    for result in results:
        result.update(
            {
                "activation_point": point.label,
                "ber": point.ber,
                "voltage": point.voltage,
                "pulse": point.pulse,
                "p_flip_pos_to_neg": point.rates.pos_to_neg,
                "p_flip_neg_to_pos": point.rates.neg_to_pos,
            }
        )
    memory, device = request.weight_memory, request.weight_device
    result = {
        "baseline_accuracy": baseline,
        "points": results,
        "sites": sites,
        "test_images": int(len(campaign.labels)),
        "weight_memory": memory.to_dict(device),
        "weight_memory_summary": memory.describe(device),
        "weight_device": device.to_dict(),
        "weight_chips": {"count": count, "seed": request.chip_seed, "varied": device.varies},
    }
    if population is not None:
        result["chip_draw"] = population.describe()
    return result


def longest_age_within(result: dict, max_drop: float) -> dict:
    """The oldest age up to which every age's interval over chips shows the drop below
    ``max_drop`` (ages ascending; :func:`_last_within`): how long the weights may go
    unwritten. ``age`` ``None`` when even the first age is not shown within."""
    chosen = _last_within(result["points"], result["baseline_accuracy"], max_drop)
    answer = {"max_drop": max_drop, "age": None if chosen is None else chosen["age"]}
    if chosen is not None:
        answer["accuracy_mean"] = chosen["accuracy_mean"]
        answer["ci95"] = chosen["ci95"]
        answer["yield"] = chosen.get("yield")
        answer["yield_ci95"] = chosen.get("yield_ci95")
    return answer


def _source_run(metadata) -> dict | None:
    """The training run, point and repeat an exported model came from (its metadata); ``None``
    for a model from elsewhere, or one whose entry is not a JSON object."""
    import json

    try:
        source = json.loads(metadata.get(SOURCE_RUN_KEY, "null"))
    except ValueError:
        return None
    return source if isinstance(source, dict) else None


def check_chip_request(request: EvaluationRequest) -> None:
    """``--chips`` needs a write-voltage sweep on a device with variation, and no per-site
    sensitivity (one-line errors, before anything loads)."""
    if request.target_ci is not None and not 0 < request.target_ci < 1:
        raise XnorfaultError(
            f"--target-ci {request.target_ci:g}: give a half-width of accuracy in (0, 1), e.g. 0.005"
        )
    if not request.chips or request.weight_memory is not None:
        return  # the weights' chips need no activation sweep (check_weight_request)
    if request.target_ci is not None:
        raise XnorfaultError(
            "--target-ci sizes the repeats of plain points; with --chips the interval is over chips: raise --chips"
        )
    source = request.source
    if source is None or not source.voltages:
        raise XnorfaultError(
            "--chips draws cells of an MRAM device: give a write-voltage sweep (--voltage, "
            "--pulse, --mram-device with a [variation] section)"
        )
    from xnorfault.mram.chips import require_variation

    require_variation(source.device)
    if request.per_layer:
        raise XnorfaultError(
            "--per-layer and --chips together would evaluate every site on every chip: run them separately"
        )


def _model_facts(path: Path, runner) -> dict:
    """What ``xnorfault inspect`` says of the model, as the backend feeds it."""
    from xnorfault.inspection import inspect_model

    report = inspect_model(path, runtime=False)
    report.data_input = runner.data_input.describe()
    report.logits_output = runner.output_name
    facts = report.to_dict()
    facts["summary"] = report.summary()
    return facts


def _shown_within(point: dict, baseline: float, max_drop: float) -> bool:
    """Whether a point's drop is shown below ``max_drop`` by its interval, not its mean: the
    paired interval of the drop (images and flips, ``drop_ci95``) where the point has one, else
    (chips) the interval of the accuracy over chips."""
    if "drop_ci95" in point:
        return point["drop_ci95"][1] < max_drop
    return point["ci95"][0] > baseline - max_drop


def _last_within(points: list[dict], baseline: float, max_drop: float) -> dict | None:
    """The last of ``points`` (ordered from safest to most aggressive) before the first that is
    not shown within ``max_drop`` (:func:`_shown_within`)."""
    chosen = None
    for point in points:
        if not _shown_within(point, baseline, max_drop):
            break
        chosen = point
    return chosen


def lowest_voltage_within(result: dict, max_drop: float, device=None) -> dict | None:
    """The lowest swept write voltage whose drop, and that of every higher swept voltage, is
    shown within ``max_drop`` of the error-free baseline by its 95 % interval
    (:func:`_shown_within`), with its energy saving and endurance
    gain (E-model) against the conventional operating point: WER 1e-6 in both write directions
    at the same pulse (:meth:`xnorfault.mram.MTJ.conventional_voltage`, Table I)."""
    voltage_points = sorted(
        (p for p in result["points"] if p.get("voltage") is not None), key=lambda p: -p["voltage"]
    )
    if not voltage_points:
        return None
    chosen = _last_within(voltage_points, result["baseline_accuracy"], max_drop)
    if chosen is None:
        return {
            "max_drop": max_drop,
            "voltage": None,
            "reason": "even the highest swept voltage loses more than the allowed drop",
        }
    answer = {
        "max_drop": max_drop,
        "voltage": chosen["voltage"],
        "pulse": chosen["pulse"],
        "accuracy_mean": chosen["accuracy_mean"],
        "p_flip_pos_to_neg": chosen["p_flip_pos_to_neg"],
        "p_flip_neg_to_pos": chosen["p_flip_neg_to_pos"],
    }
    if chosen.get("yield") is not None:
        answer["yield"] = chosen["yield"]
        answer["yield_ci95"] = chosen["yield_ci95"]
        answer["chip_accuracy"] = chosen["chip_accuracy"]
    if device is not None:
        try:
            reference = float(device.conventional_voltage(chosen["pulse"], CONVENTIONAL_WER))
        except XnorfaultError:
            reference = None
        if reference is not None:
            answer["reference_voltage"] = reference
            answer["reference_wer"] = CONVENTIONAL_WER
            answer["energy_saving"] = 1 - float(
                device.write_energy(chosen["voltage"], chosen["pulse"])
                / device.write_energy(reference, chosen["pulse"])
            )
            answer["endurance_gain"] = float(
                device.endurance_gain(chosen["voltage"], chosen["pulse"], reference)
            )
            answer["outlasts_service_life"] = bool(
                device.outlasts_service_life(chosen["voltage"], chosen["pulse"])
            )
    return answer


def highest_ber_within(result: dict, max_drop: float) -> dict | None:
    """The highest swept BER whose accuracy (and that of every lower BER) is shown within the
    drop by its 95 % interval."""
    ber_points = sorted(
        (p for p in result["points"] if p.get("ber") is not None), key=lambda p: p["ber"]
    )
    chosen = _last_within(ber_points, result["baseline_accuracy"], max_drop)
    if not ber_points:
        return None
    return {
        "max_drop": max_drop,
        "ber": None if chosen is None else chosen["ber"],
        "accuracy_mean": None if chosen is None else chosen["accuracy_mean"],
    }


def load_test_set(spec: str, backend, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Test images and labels: a preprocessed ``.npz`` (``x``, ``y``; from ``xnorfault export
    --testset``), or a dataset spec preprocessed as the model's metadata says (needs torch)."""
    from pathlib import Path

    if spec.endswith(".npz"):
        images, labels = read_test_npz(Path(spec))
    else:
        images, labels = _preprocess_dataset(spec, backend)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    check_labels(labels, None, "test labels")  # their range is checked against the model
    return images, labels.astype(np.int64)


def read_test_npz(path) -> tuple[np.ndarray, np.ndarray]:
    """Images ``x`` and labels ``y`` of a preprocessed test set, read without pickles; a
    missing, empty, truncated or foreign file is a one-line error."""
    import zipfile
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise XnorfaultError(f"test set {path} not found")
    if path.stat().st_size == 0:
        raise XnorfaultError(
            f"test set {path} is empty (0 bytes): write it again with 'xnorfault export --testset'"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            if not hasattr(data, "files") or "x" not in data.files or "y" not in data.files:
                raise XnorfaultError(
                    f"{path} lacks the arrays x and y (write it with 'xnorfault export --testset')"
                )
            return data["x"], data["y"]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        if isinstance(error, XnorfaultError):
            raise
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise XnorfaultError(f"{path} is not a readable .npz file ({reason})") from None


def _preprocess_dataset(spec: str, backend) -> tuple[np.ndarray, np.ndarray]:
    import json

    preprocessing = backend.metadata.get(PREPROCESSING_KEY)
    if preprocessing is None:
        raise XnorfaultError(
            "this model carries no xnorfault preprocessing metadata: give the test set as a preprocessed .npz"
        )
    try:
        import torch
    except ImportError:
        raise XnorfaultError(
            f"reading the dataset {spec!r} needs the train extra (torch); on this machine pass the .npz written by 'xnorfault export --testset'"
        ) from None
    from xnorfault.data import load_dataset
    from xnorfault.training.runner import BatchMaker

    settings = json.loads(preprocessing)
    size = int(backend.input_shape[-1])
    dataset = load_dataset(spec, image_size=size)
    dataset.mean, dataset.std = settings["mean"], settings["std"]
    maker = BatchMaker(dataset, size, torch.device("cpu"))
    images, labels = [], []
    with torch.no_grad():
        for x, y in maker.batches(dataset.test, 512):
            images.append(x.numpy())
            labels.append(y.numpy())
    return np.concatenate(images).astype(np.float32), np.concatenate(labels)


CSV_COLUMNS = [
    "label",
    "ber",
    "voltage",
    "pulse",
    "p_flip_pos_to_neg",
    "p_flip_neg_to_pos",
    "accuracy_mean",
    "accuracy_std",
    "ci95_low",
    "ci95_high",
    "repeats",
    "accuracy_drop",
    "write_energy",
    "endurance_cycles",
    "chip_p5",
    "chip_worst",
    "yield",
]

# a weight-memory evaluation (``--age``) adds these
WEIGHT_CSV_COLUMNS = ["age", "p_wrong_pos", "p_wrong_neg", "wrong_share", "expected_wrong_share"]


def point_rows(result: dict) -> tuple[list[str], list[dict]]:
    """The points of an evaluation result as flat rows (one per point; the interval split in
    ``ci95_low``/``ci95_high``, the chips' 5th percentile and worst, each batch size's latency
    as ``latency_bB_KEY``) and their column names: the ``--csv`` file and
    :meth:`xnorfault.api.Evaluation.to_dataframe`."""
    latency_keys = sorted(
        {
            f"latency_b{b}_{k}"
            for p in result["points"]
            for b in p.get("latency", {})
            for k in ("p50_ms", "p90_ms", "p99_ms", "throughput_per_s")
        }
    )
    weights = "weight_memory" in result
    extra = WEIGHT_CSV_COLUMNS if weights else []
    rows = []
    for point in result["points"]:
        row = dict(point)
        row["ci95_low"], row["ci95_high"] = point["ci95"]
        if weights:
            row["p_wrong_pos"] = point["weight_error"]["pos"]
            row["p_wrong_neg"] = point["weight_error"]["neg"]
        if "chip_accuracy" in point:
            row["chip_p5"] = point["chip_accuracy"]["p5"]
            row["chip_worst"] = point["chip_accuracy"]["worst"]
        for b, values in point.get("latency", {}).items():
            for key, value in values.items():
                row[f"latency_b{b}_{key}"] = value
        columns = CSV_COLUMNS + extra + latency_keys
        rows.append({key: row.get(key) for key in columns})
    return CSV_COLUMNS + extra + latency_keys, rows


def points_csv(result: dict) -> str:
    """``evaluate --csv``: :func:`point_rows` as CSV (empty cells where a point lacks a field)."""
    columns, rows = point_rows(result)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
