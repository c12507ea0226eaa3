"""What ``xnorfault evaluate`` asks (:class:`EvaluationRequest`), its checks before anything
loads (one-line errors), the target profile's defaults filled in, and the sweep's points.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from xnorfault.errors import XnorfaultError
from xnorfault.evaluation.jobs import JobRunner
from xnorfault.evaluation.runner import TestSetRunner
from xnorfault.evaluation.testset import load_test_set
from xnorfault.faults import FaultPoint, FaultSource, FaultSpec, FlipRates, WriteModel, fault_points
from xnorfault.mram.chips import ChipPopulation, require_variation
from xnorfault.runtimes import open_backend
from xnorfault.runtimes.base import weight_faults_unsupported
from xnorfault.targets import load_target


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
    # where the campaign's jobs run (xnorfault.evaluation.executors): worker processes or Ray actors, and
    # a campaign folder (out) for shards (shard: (I, N)) and merge
    workers: int = 1
    executor: str = "local"
    address: str | None = None
    out: Path | None = None
    shard: tuple[int, int] | None = None
    merge: bool = False

    def open_runner(self):
        """A worker's :class:`~xnorfault.evaluation.jobs.JobRunner` (:func:`open_job_runner`)."""
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
    require_variation(source.device)
    if request.per_layer:
        raise XnorfaultError(
            "--per-layer and --chips together would evaluate every site on every chip: run them separately"
        )


def needs_rate_maps(request: EvaluationRequest) -> bool:
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
        raise weight_faults_unsupported("lce" if request.backend == "auto" else request.backend)


def open_request_backend(request: EvaluationRequest):
    """The backend of a resolved request: its model on its backend, threads, output, layout and
    write model, with per-address rate inputs where chips need them."""
    return open_backend(
        request.model,
        request.backend,
        request.threads,
        request.lce_benchmark_binary,
        request.lce_model,
        request.output,
        request.layout,
        request.write,
        rate_maps=bool(request.chips) and needs_rate_maps(request),
    )


def open_context(request: EvaluationRequest, runner):
    """The campaign (test set, batch size, seed), the sweep's points and the chips of a
    request on an open backend ``runner``."""
    images, labels = load_test_set(request.data, runner, request.limit)
    points = sweep_points(request.source, runner)
    chips = None
    if request.chips and request.weight_memory is None:
        source = request.source
        chips = ChipPopulation.build(
            source.device,
            {site: runner.site_addresses.get(site) for site in runner.sites},
            request.chips,
            request.chip_seed,
            source.pulse,
            source.voltages,
        )
    test_runner = TestSetRunner(
        runner, images, labels, request.seed, request.batch_size, f"{request.data}: labels (y)"
    )
    return test_runner, points, chips


def open_job_runner(request: EvaluationRequest):
    """A worker's :class:`~xnorfault.evaluation.jobs.JobRunner` for a resolved request (its backend
    stays open for the worker's life), and the backend."""
    runner = open_request_backend(request)
    test_runner, points, chips = open_context(request, runner)
    return JobRunner(test_runner, points, chips), runner


__all__ = [
    "open_request_backend",
    "open_context",
    "open_job_runner",
    "EvaluationRequest",
    "check_campaign_request",
    "check_chip_request",
    "check_weight_request",
    "needs_rate_maps",
    "resolved",
    "sweep_points",
]
