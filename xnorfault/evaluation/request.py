"""What ``xnorfault evaluate`` asks (:class:`EvaluationRequest`), its checks before anything
loads (one-line errors), the target profile's defaults filled in, and the sweep's points.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, NamedTuple

from xnorfault.errors import XnorfaultError
from xnorfault.evaluation.executors import threads_per_worker
from xnorfault.evaluation.jobs import JobRunner
from xnorfault.evaluation.runner import TestSetRunner
from xnorfault.evaluation.testset import load_test_set
from xnorfault.faults import FaultPoint, FaultSource, FaultSpec, FlipRates, WriteModel, fault_points
from xnorfault.io import file_digest
from xnorfault.mram.chips import ChipPopulation, require_variation
from xnorfault.mram.device_file import device_from_dict
from xnorfault.runtimes import open_backend
from xnorfault.runtimes.base import weight_faults_unsupported
from xnorfault.targets import load_target
from xnorfault.units import parse_count, parse_drop, parse_list, parse_shard


def _option(
    default: Any,
    name: str | None = None,
    convert: Callable | None = None,
    accepts: str | None = None,
):
    """A field the user sets: ``name`` is its keyword in :func:`xnorfault.evaluate` and its
    parameter in ``xnorfault evaluate`` (default: the field's own name); ``convert`` turns a
    value given (text, a number, an enum member, a list) into the field's, ``None`` staying
    ``None``; ``accepts`` is the type the API takes where it is wider than the field's.
    Adding an option is adding such a field (and its ``--flag`` on the command line)."""
    return field(default=default, metadata={"option": name, "convert": convert, "accepts": accepts})


def _text(value: Any) -> str:
    return str(value.value if hasattr(value, "value") else value)


def _batch_sizes(value: str | Sequence[int]) -> tuple[int, ...]:
    if isinstance(value, str):
        return tuple(parse_list(value, lambda text: parse_count(text, "--latency-batches size")))
    return tuple(int(size) for size in value)


@dataclass(frozen=True)
class FaultOptions:
    """Where the fault rates come from (``source``; ``None``: the rates injected into the
    model), the write model (``None``: the model's own, iid if clean), and the chips drawn from
    the device's variation (each its own cells; ``chip_seed`` draws them)."""

    source: FaultSource | None = None
    write: WriteModel | None = None
    chips: int | None = _option(None)
    chip_seed: int = _option(0, convert=int)


@dataclass(frozen=True)
class RuntimeOptions:
    """How the model runs: the backend and its threads, the LCE benchmark binary and model, a
    target profile (its threads, batch size and latency batches fill what is not given), and for
    a model brought from elsewhere the logits' graph output and the image input's layout."""

    backend: str = _option("auto", convert=_text)
    threads: int | None = _option(None)
    lce_benchmark_binary: Path | None = _option(None, convert=Path, accepts="str | Path | None")
    lce_model: Path | None = _option(None, convert=Path, accepts="str | Path | None")
    target: str | None = _option(None, convert=str)
    output: str | None = _option(None, "output_name")
    layout: str | None = _option(None, convert=_text)


@dataclass(frozen=True)
class LatencyOptions:
    """The batch sizes timed (``None``: the target's, else none) and the runs per batch size."""

    batches: tuple[int, ...] | None = _option(
        None, "latency_batches", _batch_sizes, "Sequence[int] | str | None"
    )
    iterations: int = _option(20, "latency_iterations")


@dataclass(frozen=True)
class WeightMemoryOptions:
    """Binary weights kept in MRAM (:mod:`xnorfault.mram.weights`): the memory, the ages
    evaluated (each a point, on every chip) and the device whose cells hold the weights."""

    memory: object = None
    ages: tuple[float, ...] = ()
    device: object = None


@dataclass(frozen=True)
class ExecutionOptions:
    """Where the campaign's jobs run (:mod:`xnorfault.evaluation.executors`): worker processes
    or Ray actors (``address``: a cluster), and a campaign folder ``out`` for shards (``shard``:
    (I, N)) and ``merge``."""

    workers: int = _option(1, convert=int)
    executor: str = _option("local", convert=_text)
    address: str | None = _option(None)
    out: Path | None = _option(None, convert=Path, accepts="str | Path | None")
    shard: tuple[int, int] | None = _option(
        None, convert=parse_shard, accepts="str | tuple[int, int] | None"
    )
    merge: bool = False


@dataclass(frozen=True)
class EvaluationRequest:
    """What ``xnorfault evaluate`` asks, filled alike by the command line and the Python API:
    a model and a test set, the statistics (repeats, seed, batch size, a limit of images,
    per-site sensitivity, the drop budget, sized repeats) and the option groups — faults,
    runtime, latency, weight memory, execution.

    :meth:`to_dict` describes what decides the jobs' results — the campaign fingerprint a
    campaign folder records — and :meth:`from_dict` rebuilds the request from it."""

    model: Path
    data: str
    faults: FaultOptions = field(default_factory=FaultOptions)
    repeats: int = _option(20)
    seed: int = _option(0)
    batch_size: int | None = _option(None)  # default: the target's, else 256
    limit: int | None = _option(None, "limit_test")
    per_layer: bool = _option(False)
    max_drop: float | None = _option(None, convert=parse_drop, accepts="float | str | None")
    # repeats added until each interval's half-width is ≤ this
    target_ci: float | None = _option(None)
    max_repeats: int = _option(200)
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)
    latency: LatencyOptions = field(default_factory=LatencyOptions)
    weights: WeightMemoryOptions = field(default_factory=WeightMemoryOptions)
    execution: ExecutionOptions = field(default_factory=ExecutionOptions)

    @classmethod
    def from_options(
        cls,
        model: Path,
        data: str,
        *,
        faults: FaultOptions,
        weights: WeightMemoryOptions,
        merge: bool = False,
        **options: Any,
    ) -> EvaluationRequest:
        """The request of the options given by name (those of :func:`request_options`), each
        converted by its field and put in its group; the fault source, write model and weight
        memory come built (they gather several options, shared with other commands)."""
        known = request_options()
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise XnorfaultError(
                f"unknown evaluation option {unknown[0]!r}: known are {', '.join(known)}"
            )
        groups: dict[str | None, dict] = {group: {} for group, _ in _GROUPS}
        for name, value in options.items():
            option = known[name]
            if value is not None and option.convert is not None:
                value = option.convert(value)
            groups[option.group][option.field] = value
        return cls(
            model=Path(model),
            data=str(data),
            faults=replace(faults, **groups["faults"]),
            runtime=RuntimeOptions(**groups["runtime"]),
            latency=LatencyOptions(**groups["latency"]),
            weights=weights,
            execution=ExecutionOptions(merge=merge, **groups["execution"]),
            **groups[None],
        )

    def open_runner(self):
        """A worker's :class:`~xnorfault.evaluation.jobs.JobRunner` (:func:`open_job_runner`)."""
        return open_job_runner(self)[0]

    def for_workers(self, workers: int) -> EvaluationRequest:
        """The request each of ``workers`` processes opens: the threads shared out among them,
        its jobs run in that process."""
        threads = threads_per_worker(self.runtime.threads, workers)
        return replace(
            self,
            runtime=replace(self.runtime, threads=threads),
            execution=replace(self.execution, workers=1, executor="local"),
        )

    def to_dict(self) -> dict:
        """Everything that decides the jobs' results, as plain JSON: the model and a file test
        set by path and SHA-256, the fault source, write model, chips, repeats, seeds, batch
        size, limit, per-site sensitivity, output and layout (the campaign fingerprint's
        contents; the executor, latency and budget shape no job)."""
        source, faults = self.faults.source, self.faults
        if source is not None and source.device is not None and source.device.measured is not None:
            raise XnorfaultError(
                "a campaign folder records its device by its parameters: a measured WER table "
                "cannot be recorded; run it in one process"
            )
        data_path = Path(self.data)
        return {
            "model": str(Path(self.model).resolve()),
            "model_sha256": file_digest(Path(self.model)),
            "data": str(data_path.resolve()) if data_path.is_file() else self.data,
            "data_sha256": file_digest(data_path) if data_path.is_file() else None,
            "source": None if source is None else _source_dict(source),
            "repeats": self.repeats,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "limit": self.limit,
            "per_layer": self.per_layer,
            "output": self.runtime.output,
            "layout": self.runtime.layout,
            "write": None if faults.write is None else faults.write.to_dict(),
            "chips": faults.chips,
            "chip_seed": faults.chip_seed,
        }

    @classmethod
    def from_dict(cls, data: dict, given: EvaluationRequest) -> EvaluationRequest:
        """The request :meth:`to_dict` described, with ``given``'s budget (where the description
        has none of its own, ``given.max_drop`` else ``None``) and its runtime threads and
        execution; the model must still have its digest."""
        model = Path(data["model"])
        if not model.is_file() or file_digest(model) != data["model_sha256"]:
            raise XnorfaultError(f"the campaign's model {model} is missing or has changed since")
        return replace(
            given,
            model=model,
            data=data["data"],
            faults=FaultOptions(
                source=None if data["source"] is None else _source_from_dict(data["source"]),
                write=None if data["write"] is None else WriteModel.from_dict(data["write"]),
                chips=data["chips"],
                chip_seed=data["chip_seed"],
            ),
            repeats=data["repeats"],
            seed=data["seed"],
            batch_size=data["batch_size"],
            limit=data["limit"],
            per_layer=data["per_layer"],
            runtime=replace(given.runtime, output=data["output"], layout=data["layout"]),
            latency=LatencyOptions(batches=()),
        )


def _source_dict(source: FaultSource) -> dict:
    return {
        "bers": list(source.bers),
        "rates": None if source.rates is None else source.rates.to_dict(),
        "voltages": list(source.voltages),
        "pulse": source.pulse,
        "device": None if source.device is None else source.device.to_dict(),
        "write": source.write.to_dict(),
    }


def _source_from_dict(raw: dict) -> FaultSource:
    return FaultSource(
        bers=tuple(raw["bers"]),
        rates=None if raw["rates"] is None else FlipRates.from_dict(raw["rates"]),
        voltages=tuple(raw["voltages"]),
        pulse=raw["pulse"],
        device=None if raw["device"] is None else device_from_dict(raw["device"]),
        write=WriteModel.from_dict(raw["write"]),
    )


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
    profile = load_target(request.runtime.target) if request.runtime.target is not None else None
    threads, batch_size, latency_batches = (
        request.runtime.threads,
        request.batch_size,
        request.latency.batches,
    )
    if profile is not None:
        threads = threads or profile.threads
        batch_size = batch_size or profile.batch_size
        if latency_batches is None:
            latency_batches = tuple(profile.latency_batches)
    return profile, replace(
        request,
        runtime=replace(request.runtime, threads=threads),
        batch_size=batch_size or 256,
        latency=replace(request.latency, batches=tuple(latency_batches or ())),
    )


# The most of each count a request may ask: beyond, the arrays it allocates (repeats × images,
# chips × cells, a batch's activations) or the threads it starts exhaust the machine before
# any result; each is far above what a sweep needs.
LIMITS = {
    "--repeats": 100_000,
    "--max-repeats": 100_000,
    "--chips": 100_000,
    "--batch-size": 1 << 20,
    "--latency-batches size": 1 << 16,
    "--latency-iterations": 1_000_000,
    "--threads": 1024,
    "--workers": 1024,
}


def check_sizes(request: EvaluationRequest) -> None:
    """Every count of the request at least 1 and at most its :data:`LIMITS`, before anything
    is allocated (a ``--repeats`` of 10⁹ was a MemoryError, ``--threads 100000`` a crash)."""
    counts = {
        "--repeats": [request.repeats],
        "--max-repeats": [request.max_repeats],
        "--chips": [request.faults.chips],
        "--batch-size": [request.batch_size],
        "--latency-batches size": list(request.latency.batches or ()),
        "--latency-iterations": [request.latency.iterations],
        "--threads": [request.runtime.threads],
        "--workers": [request.execution.workers],
    }
    for option, values in counts.items():
        for value in values:
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise XnorfaultError(f"{option} takes a whole number, not {value!r}")
            if not 1 <= value <= LIMITS[option]:
                raise XnorfaultError(
                    f"{option} {value} is outside 1 to {LIMITS[option]:,}: give a count in that "
                    "range (--target-ci sizes repeats to an interval)"
                    if option in ("--repeats", "--max-repeats")
                    else f"{option} {value} is outside 1 to {LIMITS[option]:,}: give a count in that range"
                )


def check_campaign_request(request: EvaluationRequest) -> None:
    """Workers, Ray and campaign folders run planned jobs: one-line errors for what they
    cannot plan (``--target-ci`` sizes as it goes), time (latency: one process) or hold."""
    split = (
        request.execution.workers > 1
        or request.execution.executor != "local"
        or request.execution.out is not None
    )
    if request.execution.workers < 1:
        raise XnorfaultError(f"--workers {request.execution.workers}: give at least 1")
    if request.execution.shard is not None and request.execution.out is None:
        raise XnorfaultError("--shard writes its jobs into a campaign folder: give --out DIR")
    if request.execution.address is not None and request.execution.executor != "ray":
        raise XnorfaultError("--address names a Ray cluster: give --executor ray")
    if not split:
        return
    if request.target_ci is not None:
        raise XnorfaultError(
            "--target-ci decides the repeats as the runs come in: run it in one process "
            "(without --workers, --executor or --out)"
        )
    if request.weights.memory is not None:
        raise XnorfaultError("--age runs in one process: leave out --workers, --executor and --out")
    if request.execution.out is not None and request.latency.batches:
        raise XnorfaultError(
            "latency is timed in one process on one machine: leave --latency-batches out of a campaign "
            "folder (time it with a separate evaluate)"
        )
    if request.runtime.backend not in ("auto", "onnxruntime") or request.model.suffix == ".tflite":
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
    if not request.faults.chips or request.weights.memory is not None:
        return  # the weights' chips need no activation sweep (check_weight_request)
    if request.target_ci is not None:
        raise XnorfaultError(
            "--target-ci sizes the repeats of plain points; with --chips the interval is over chips: raise --chips"
        )
    source = request.faults.source
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
    if request.weights.memory is None:
        return True
    source = request.faults.source
    return bool(source is not None and source.voltages and source.device.varies)


def check_weight_request(request: EvaluationRequest) -> None:
    """Weight faults: one activation operating point, no per-site or sized repeats, the
    onnxruntime backend (one-line errors, before anything loads)."""
    source = request.faults.source
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
    if request.runtime.backend not in ("auto", "onnxruntime") or request.model.suffix == ".tflite":
        raise weight_faults_unsupported(
            "lce" if request.runtime.backend == "auto" else request.runtime.backend
        )


def open_request_backend(request: EvaluationRequest):
    """The backend of a resolved request: its model on its backend, threads, output, layout and
    write model, with per-address rate inputs where chips need them."""
    return open_backend(
        request.model,
        request.runtime.backend,
        request.runtime.threads,
        request.runtime.lce_benchmark_binary,
        request.runtime.lce_model,
        request.runtime.output,
        request.runtime.layout,
        request.faults.write,
        rate_maps=bool(request.faults.chips) and needs_rate_maps(request),
    )


def open_context(request: EvaluationRequest, runner):
    """The campaign (test set, batch size, seed), the sweep's points and the chips of a
    request on an open backend ``runner``."""
    images, labels = load_test_set(request.data, runner, request.limit)
    points = sweep_points(request.faults.source, runner)
    chips = None
    if request.faults.chips and request.weights.memory is None:
        source = request.faults.source
        chips = ChipPopulation.build(
            source.device,
            {site: runner.site_addresses.get(site) for site in runner.sites},
            request.faults.chips,
            request.faults.chip_seed,
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
    "check_sizes",
    "check_weight_request",
    "needs_rate_maps",
    "resolved",
    "sweep_points",
]


class RequestOption(NamedTuple):
    """One option of :class:`EvaluationRequest`: where it goes (``group``: the request's
    attribute holding its option group, ``None``: the request itself; ``field``), its default
    and type (as written in the dataclass) and its conversion."""

    group: str | None
    field: str
    default: Any
    annotation: str
    convert: Callable | None


_GROUPS: tuple[tuple[str | None, type], ...] = (
    (None, EvaluationRequest),
    ("faults", FaultOptions),
    ("runtime", RuntimeOptions),
    ("latency", LatencyOptions),
    ("execution", ExecutionOptions),
)


def request_options() -> dict[str, RequestOption]:
    """The options of an evaluation by their name in the API and the command line, read from
    the fields of the request and its groups marked as options."""
    options = {}
    for group, cls in _GROUPS:
        for item in fields(cls):
            if "option" not in item.metadata:
                continue
            name = item.metadata["option"] or item.name
            options[name] = RequestOption(
                group,
                item.name,
                item.default,
                item.metadata["accepts"] or str(item.type),
                item.metadata["convert"],
            )
    return options
