r"""Accuracy and latency of a model under bit flips, over sweeps of BER or write voltage.

Statistics. Each sweep point is evaluated ``repeats`` times on the same test images, every
batch with a fresh flip seed (:func:`xnorfault.generator.run_seed` of the campaign seed and a run
counter). The point reports the mean accuracy, the sample standard deviation and the 95 %
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
the yield (:func:`evaluate_chips`). Imports numpy and scipy only (plus the backend's runtime).
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

    def correct(self, rates: dict[str, FlipRates]) -> np.ndarray:
        """Whether each test image is classified right in one run under ``rates`` (bool)."""
        hits = []
        for start in range(0, len(self.labels), self.batch_size):
            logits = self.backend.run(
                self.images[start : start + self.batch_size], rates, self.next_seed()
            )
            hits.append(logits.argmax(axis=1) == self.labels[start : start + self.batch_size])
        return np.concatenate(hits)

    def repeated(self, rates: dict[str, FlipRates], repeats: int) -> list[float]:
        return [self.accuracy(rates) for _ in range(repeats)]

    def repeated_correct(self, rates: dict[str, FlipRates], repeats: int) -> list[np.ndarray]:
        """Per-image correctness of ``repeats`` runs."""
        return [self.correct(rates) for _ in range(repeats)]

    def next_seed(self) -> int:
        """The flip seed of the campaign's next batch run."""
        seed = run_seed(self.seed, self.counter)
        self.counter += 1
        return seed

    def latency(
        self, rates: dict[str, FlipRates], batch: int, iterations: int, warmup: int = 3
    ) -> dict:
        """The backend's latency statistics of batches of ``batch`` test images (repeated
        when the test set is smaller), each run with the campaign's next seed."""
        reps = math.ceil(batch / len(self.images))
        images = np.concatenate([self.images] * reps)[:batch] if reps > 1 else self.images[:batch]
        return self.backend.latency(images, rates, iterations, self.next_seed, warmup)


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
) -> dict:
    """Baseline, then every point: accuracy statistics, optional latency and per-site
    sensitivity; with ``chips`` (a :class:`~xnorfault.mram.chips.ChipPopulation`) each voltage
    point is evaluated on every chip (:func:`evaluate_chips`)."""
    sites = campaign.backend.sites
    clean = campaign.correct({})
    baseline = float(clean.mean())
    total = len(points) * (chips.count if chips is not None else 1)
    task = progress.add_task("evaluating", total=total) if progress else None
    results = []
    for point in points:
        everywhere = {site: point.spec.activation_rates(site) for site in sites}
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
            advance = (lambda: progress.advance(task)) if progress else None
            result.update(
                evaluate_chips(campaign, chips, point, repeats, baseline, max_drop, advance)
            )
        else:
            if target_ci is not None:
                runs = sized_repeats(campaign, everywhere, repeats, target_ci, max_repeats)
            else:
                runs = campaign.repeated_correct(everywhere, repeats)
            result.update(summarise([float(run.mean()) for run in runs]))
            result.update(uncertainty_sources(clean, runs, result["accuracy_mean"]))
            if target_ci is not None:
                half = (result["ci95"][1] - result["ci95"][0]) / 2
                result["target_ci"] = {"half_width": target_ci, "met": bool(half <= target_ci)}
        result["accuracy_drop"] = baseline - result["accuracy_mean"]
        if latency_batches:
            result["latency"] = {
                str(b): campaign.latency(everywhere, b, latency_iterations) for b in latency_batches
            }
        if per_layer:
            result["per_layer"] = {
                site: summarise(campaign.repeated({site: everywhere[site]}, repeats))
                for site in sites
            }
        if point.spec.layers:
            result["per_site_rates"] = {site: r.to_dict() for site, r in everywhere.items()}
        results.append(result)
        if progress and chips is None:
            progress.advance(task)
    return {
        "baseline_accuracy": baseline,
        "points": results,
        "sites": sites,
        "test_images": int(len(campaign.labels)),
    }


def sized_repeats(
    campaign: Campaign, rates, repeats: int, target: float, max_repeats: int
) -> list[float]:
    r"""Accuracies of repeated runs until the 95 % t-interval's half-width is ≤ ``target`` or
        ``max_repeats`` runs are made: ``repeats`` (at least 2) first, then, from their spread s,
        the :math:`\lceil (t_{0.975,n-1}\,s/W)^2
    ceil` runs the half-width W needs
        (:func:`xnorfault.statistics.runs_needed`), checked again until it holds."""
    runs = campaign.repeated_correct(rates, min(max(repeats, 2), max_repeats))
    while half_width([r.mean() for r in runs]) > target and len(runs) < max_repeats:
        accuracies = [r.mean() for r in runs]
        needed = min(max_repeats, max(runs_needed(accuracies, target), len(runs) + 1))
        runs += campaign.repeated_correct(rates, needed - len(runs))
    return runs


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


def evaluate_chips(
    campaign: Campaign,
    chips,
    point: FaultPoint,
    repeats: int,
    baseline: float,
    max_drop: float | None = None,
    advance=None,
) -> dict:
    r"""One voltage point on every chip of ``chips``: each chip's accuracy (the mean of
    ``repeats`` runs with its per-address rates), their distribution and the yield.

    - ``chips``: the per-chip accuracies :math:`a_k`, in chip order;
    - ``accuracy_mean``, ``accuracy_std``, ``ci95``: mean, sample std and 95 % t-interval of
      the mean over chips (the chip population's mean accuracy);
    - ``chip_accuracy``: mean, 5th percentile (linear interpolation between order statistics)
      and worst chip;
    - ``yield`` (with ``max_drop``): the share of chips with :math:`a_k \ge a_0 - 	ext{drop}`
      (:math:`a_0` the error-free baseline), and ``yield_ci95``, its Clopper–Pearson 95 %
      interval — chips are independent draws of the population;
    - ``population_p_flip_*``: the population's exact mean rates
      (:meth:`~xnorfault.mram.MTJ.population_wer`) and ``chip_mean_p_flip_*`` the drawn cells'
      mean, which converges to it.
    """
    from xnorfault.mram.chips import chip_rates

    accuracies, pos_total, neg_total = [], 0.0, 0.0
    for chip in chips.chips():
        rates = chip_rates(chip, chips.table, point.voltage)
        accuracies.append(float(np.mean(campaign.repeated(rates, repeats))))
        pos_total += sum(float(r.pos_to_neg.sum()) for r in rates.values())
        neg_total += sum(float(r.neg_to_pos.sum()) for r in rates.values())
        if advance is not None:
            advance()
    values = np.asarray(accuracies)
    result = summarise(values)
    result["repeats"] = repeats
    result["chips"] = accuracies
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


def run_evaluation(request: EvaluationRequest, progress=None) -> dict:
    """Evaluate ``request``: open its backend, load the test set, run the baseline and every
    point (:func:`evaluate`), and describe the backend, machine, target and device with the
    result; with ``max_drop`` also the lowest voltage (or highest BER) within that drop.
    ``progress``: a rich ``Progress``, shown only while the points run (not while the
    backend and test set load, whose errors should stand alone)."""
    from xnorfault.runtimes import open_backend
    from xnorfault.targets import load_target, machine_description

    check_chip_request(request)
    if request.weight_memory is not None:
        check_weight_request(request)
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
    with open_backend(
        request.model,
        request.backend,
        threads,
        request.lce_benchmark_binary,
        request.lce_model,
        request.output,
        request.layout,
        request.write,
        rate_maps=bool(request.chips) and _varied_voltage_point(request),
    ) as runner:
        images, labels = load_test_set(request.data, runner, request.limit)
        points = sweep_points(request.source, runner)
        chips = None
        if request.weight_memory is not None:
            result = _run_weight_evaluation(request, runner, images, labels, points, progress)
        elif request.chips:
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
        if request.weight_memory is None:
            campaign = Campaign(
                runner,
                images,
                labels,
                request.seed,
                batch_size or 256,
                f"{request.data}: labels (y)",
            )
            with progress if progress is not None else nullcontext():
                result = evaluate(
                    campaign,
                    points,
                    request.repeats,
                    latency_batches or (),
                    request.latency_iterations,
                    request.per_layer,
                    progress,
                    chips,
                    request.max_drop,
                    request.target_ci,
                    request.max_repeats,
                )
        result["backend"] = runner.describe()
        source_run = _source_run(runner.metadata)
        if source_run is not None:
            result["source_run"] = source_run
        if chips is not None:
            result["chip_draw"] = chips.describe()
        if runner.data_input is not None:
            result["model"] = _model_facts(request.model, runner)
    result["latency_batches"] = list(latency_batches or ())
    result["seed"] = request.seed
    result["machine"] = machine_description()
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
    if request.backend not in ("auto", "onnxruntime"):
        raise XnorfaultError(
            f"weight faults run on ONNX models with the onnxruntime backend, not {request.backend}: "
            "LCE's converter packs binary weights into bitpacked constants xnorfault does not rewrite"
        )
    if request.model.suffix == ".tflite":
        raise XnorfaultError(
            "weight faults run on ONNX models: LCE's converter packs binary weights into "
            "bitpacked constants xnorfault does not rewrite; evaluate the .onnx model"
        )


def _run_weight_evaluation(request, runner, images, labels, points, progress) -> dict:
    """Every chip at every age (:func:`xnorfault.weight_faults.evaluate_weight_ages`), with
    the activation faults of the one point on top (per-address on a varied device)."""
    from xnorfault.weight_faults import evaluate_weight_ages

    campaign = Campaign(
        runner,
        images,
        labels,
        request.seed,
        request.batch_size or 256,
        f"{request.data}: labels (y)",
    )
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
        "test_images": int(len(labels)),
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
