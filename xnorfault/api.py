"""The Python API: the functions the command line calls, for notebooks and scripts.

Everything here is re-exported at the package top level (``xnorfault.evaluate``, …) and imported
only when first used. The deployed half — :func:`fault_source`, :func:`inspect`, :func:`inject`,
:func:`evaluate`, the MRAM model — needs numpy, scipy, onnx and onnxruntime only; :func:`train`
and :func:`export_onnx` import torch and brevitas when called.

The examples in the docstrings run as doctests (``make test``) with ``workdir`` a fresh folder,
``run`` a tiny run of LeNet-4 on the embedded digits at BER 0 and 0.05, ``model`` its BER-0.05
network exported to ONNX and ``testset`` that export's test split.

Fault rates are given as on the command line, as strings (``ber="0:0.08:0.02"``,
``voltage="0.45:0.85:0.05"``, ``pulse="10ns"``) or as numbers and sequences of numbers in SI
units (``voltage=[0.45, 0.5]``, ``pulse=10e-9``); errors are :class:`xnorfault.errors.XnorfaultError`
with the same one-line message the command line prints.

>>> import xnorfault
>>> source = xnorfault.fault_source(voltage=[0.5, 0.6], pulse="10ns")
>>> [round(v, 2) for v in source.voltages], source.pulse
([0.5, 0.6], 1e-08)
>>> round(float(source.device.wer(0.5, 10e-9)), 4)  # the paper's MTJ, writing −1 (P→AP)
0.0216
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from inspect import Parameter, Signature, signature
from numbers import Real
from pathlib import Path
from typing import Any

from xnorfault.errors import XnorfaultError
from xnorfault.evaluation.request import request_options
from xnorfault.fault_options import SWEEP_FAULT_OPTIONS, write_model_of
from xnorfault.fault_options import fault_source as fault_source_of_options
from xnorfault.faults import FaultSource, fault_points
from xnorfault.inputs import on_disk, speaks_of_parameters
from xnorfault.mram.weights import WEIGHT_OPTIONS
from xnorfault.units import parse_shard

FaultValue = str | float | Sequence[float] | None


def _as_text(value: FaultValue, name: str, unit: str = "") -> str | None:
    """A fault value as the command line's text: numbers in SI units (written with ``unit``,
    which a duration needs), lists comma-separated."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Real):
        return repr(float(value)) + unit
    if isinstance(value, Iterable) and not isinstance(value, bytes | dict):
        values = list(value)  # a list, a tuple, a numpy array (np.linspace)
        if values and all(isinstance(v, Real) for v in values):
            return ",".join(repr(float(v)) + unit for v in values)
    raise XnorfaultError(
        f"{name} takes a number, a list of numbers or a string such as '0.45:0.85:0.05', "
        f"not {type(value).__name__}"
    )


@speaks_of_parameters
def fault_source(
    *,
    ber: FaultValue = None,
    p_flip_pos: float | str | None = None,
    p_flip_neg: float | str | None = None,
    voltage: FaultValue = None,
    pulse: float | str | None = None,
    mram_device: Any = "paper",
    write_model: str | None = None,
    initial_state: str | None = None,
    voltage_schedule: FaultValue = None,
    ramp: bool = False,
    single: bool = False,
) -> FaultSource | None:
    """Where fault rates come from, as ``--ber``, ``--p-flip-pos/--p-flip-neg``, ``--voltage``
    with ``--pulse`` and ``--mram-device``, ``--voltage-schedule``, ``--schedule ramp`` and
    ``--write-model``/``--initial-state`` give them: one source at most (``None`` when none is
    given). ``mram_device`` is a preset name, a device TOML path or an
    :class:`xnorfault.mram.MTJ`; ``single`` asks for one value, not a sweep (what
    :func:`inject` needs).

    >>> fault_source(ber=[0, 0.02]).bers
    (0.0, 0.02)
    >>> fault_source(p_flip_pos=0.03).rates
    FlipRates(pos_to_neg=0.03, neg_to_pos=0.0)
    """
    from xnorfault.mram import MTJ

    own_device = mram_device if isinstance(mram_device, MTJ) else None
    source = fault_source_of_options(
        ber=_as_text(ber, "ber"),
        p_flip_pos=_as_text(p_flip_pos, "p_flip_pos"),
        p_flip_neg=_as_text(p_flip_neg, "p_flip_neg"),
        voltage=_as_text(voltage, "voltage"),
        pulse=_as_text(pulse, "pulse", "s"),
        mram_device="paper" if own_device is not None else str(mram_device),
        voltage_schedule=_as_text(voltage_schedule, "voltage_schedule"),
        ramp=ramp,
        single=single,
        write=write_model_of(write_model, initial_state),
    )
    if source is not None and own_device is not None and source.device is not None:
        source = replace(source, device=own_device)
    return source


# The fault keywords the functions share with :func:`fault_source`.
_FAULT_KEYWORDS = (
    "ber",
    "p_flip_pos",
    "p_flip_neg",
    "voltage",
    "voltage_schedule",
    "pulse",
    "mram_device",
    "ramp",
    "write_model",
    "initial_state",
)


def _fault_keywords(arguments: dict) -> dict:
    """The fault keywords among a function's arguments (its ``locals()``)."""
    return {key: arguments[key] for key in _FAULT_KEYWORDS if key in arguments}


def _source(fault: FaultSource | None, given: dict, single: bool = False) -> FaultSource | None:
    """``fault`` or the source the keywords describe (not both); a write model given as
    keywords applies to ``fault`` too."""
    if fault is None:
        return fault_source(**given, single=single)
    rate_keys = ("ber", "p_flip_pos", "p_flip_neg", "voltage", "pulse", "voltage_schedule")
    named = [k for k in rate_keys if given.get(k) is not None]
    if named:
        raise XnorfaultError(
            f"give the faults either as fault= or as keywords ({', '.join(named)}), not both"
        )
    write = write_model_of(given.get("write_model"), given.get("initial_state"))
    return fault if write is None else replace(fault, write=write)


@speaks_of_parameters
def inspect(model, *, output_name: str | None = None, layout: str | None = None):
    """What xnorfault sees in an ONNX model (``xnorfault inspect``): its inputs and outputs,
    the image input it feeds and the output it reads (``output_name``, where the model has
    several; ``layout``, where its input shape does not tell), every binary activation site with its
    bits per image, binary weights, QONNX quantizers and what becomes of them, and whether
    onnxruntime runs the injected model. Returns an :class:`xnorfault.graph.inspection.ModelReport`
    (``.sites``, ``.summary()``, ``.to_dict()``).

    >>> report = inspect(model)
    >>> [(site.name, site.elements_per_image) for site in report.sites]
    [('act1', 2880), ('act2', 800)]
    >>> report.activation_bits_per_image
    3680
    """
    from xnorfault.runtimes.inspection import inspect_model

    with on_disk(model) as (path, _):
        report = inspect_model(path, output_name, layout)
    if path != model:
        report.model = "(in memory)"
    return report


@dataclass
class Injection:
    """What :func:`inject` wrote: the model file(s), its sites and default rates, the fault
    source, the seed input and write model, and the inspection report of the clean model."""

    output: Path
    files: list[Path]
    sites: list[str]
    rates: dict
    source: dict
    seed_input: str
    write_model: dict
    report: Any

    def to_dict(self) -> dict:
        """The ``--json`` object of ``xnorfault inject``."""
        return {
            "output": str(self.output),
            "files": [str(path) for path in self.files],
            "site_names": self.sites,
            "rates": self.rates,
            "source": self.source,
            "seed_input": self.seed_input,
            "write_model": self.write_model,
            "model": self.report.to_dict(),
        }


@speaks_of_parameters
def inject(
    model,
    output: str | Path,
    *,
    fault: FaultSource | None = None,
    ber: float | str | None = None,
    p_flip_pos: float | str | None = None,
    p_flip_neg: float | str | None = None,
    voltage: float | str | None = None,
    pulse: float | str | None = None,
    mram_device: Any = "paper",
    write_model: str | None = None,
    initial_state: str | None = None,
    layers: Sequence[str] | None = None,
) -> Injection:
    """Insert bit flips at every binary activation of an ONNX model (``xnorfault inject``) and
    write it to ``output``: the rates become graph inputs (``p_flip_pos.SITE``,
    ``p_flip_neg.SITE``) defaulting to the values given, ``flip_seed`` seeds the draw.
    ``layers`` names the sites to inject (default: all).

    >>> injection = inject(model, workdir / "faulty.onnx", voltage=0.5, pulse="10ns")
    >>> injection.sites
    ['act1', 'act2']
    >>> round(injection.rates["act1"]["pos_to_neg"], 4)  # WER of the paper's MTJ at 0.5 V, 10 ns
    0.0216
    """
    from xnorfault.graph.contract import INJECTED_KEY
    from xnorfault.graph.inspection import inspect_graph
    from xnorfault.graph.rewrite import inject_flips, load_model, metadata, save_model
    from xnorfault.io import check_output_file

    source = _source(fault, _fault_keywords(locals()), single=True)
    if source is None:
        raise XnorfaultError(
            "give one of --ber, --p-flip-pos/--p-flip-neg, or --voltage with --pulse"
        )
    (point,) = fault_points(source)
    output = check_output_file(output, "--output")
    if isinstance(model, str | Path):
        from xnorfault.graph.rewrite import model_files
        from xnorfault.io import refuse_inputs_as_outputs

        # -o may be the model itself (replaced whole, data included); not its data file
        inputs = {k: v for k, v in model_files(model).items() if k != Path(model)}
        refuse_inputs_as_outputs(
            {"--output": output, "--output's data file": output.with_name(f"{output.name}.data")},
            inputs,
        )
    with on_disk(model) as (path, _):
        clean = load_model(path)
    report = inspect_graph(clean)
    injected = inject_flips(clean, point.spec, sites=None if layers is None else list(layers))
    written = save_model(injected, output)
    info = json.loads(metadata(injected)[INJECTED_KEY])
    return Injection(
        output=output,
        files=list(written),
        sites=info["sites"],
        rates=info["rates"],
        source=point.spec.source,
        seed_input=info["seed_input"],
        write_model=info["write"],
        report=report,
    )


class Evaluation(Mapping):
    """The result of :func:`evaluate`: a read-only mapping of the JSON object that
    ``xnorfault evaluate --json`` prints (``points``, ``baseline_accuracy``, ``max_drop``, …),
    with :meth:`to_dataframe` and :meth:`plot`."""

    def __init__(self, result: dict, device=None):
        from xnorfault.schemas import document

        # the --json document: its header, every field present (null where it does not apply)
        self._result = document("evaluate", result)
        self._device = device

    def __getitem__(self, key: str):
        return self._result[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._result)

    def __len__(self) -> int:
        return len(self._result)

    def __repr__(self) -> str:
        if not self.complete:
            campaign = self._result["campaign"]
            return f"Evaluation(campaign {campaign['folder']}: {campaign['missing']} of {campaign['jobs']} jobs missing)"
        return (
            f"Evaluation({len(self.points)} points, {self['test_images']} test images, "
            f"error-free accuracy {self.baseline_accuracy:.4f})"
        )

    @property
    def complete(self) -> bool:
        """False for a shard of a campaign folder whose other jobs are not all there yet
        (then only :attr:`campaign` is set)."""
        return self._result.get("campaign_incomplete") is None

    @property
    def campaign(self) -> dict | None:
        """A campaign folder's state: ``folder``, ``jobs``, ``run_here``, ``already_done``,
        ``missing`` (and ``incomplete_points`` while jobs are missing); ``None`` without one."""
        return self._result.get("campaign")

    @property
    def points(self) -> list[dict]:
        """One dict per sweep point: rates, ``accuracy_mean``, ``ci95``, ``accuracy_drop``,
        and (where measured) ``test_set_ci95``, ``drop_ci95``, MRAM figures, chips, latency."""
        return self._result.get("points") or []

    @property
    def baseline_accuracy(self) -> float | None:
        """Accuracy on the same images with every flip rate at zero."""
        return self._result.get("baseline_accuracy")

    def to_dict(self) -> dict:
        """The ``--json`` object (a deep copy)."""
        return copy.deepcopy(self._result)

    def to_dataframe(self):
        """The points as a pandas DataFrame, one row per point, with the columns of
        ``evaluate --csv`` (needs pandas: ``pip install pandas``)."""
        try:
            import pandas
        except ImportError:
            raise XnorfaultError(
                "to_dataframe needs pandas: pip install pandas (or use .points)"
            ) from None
        from xnorfault.evaluation.results import point_rows

        columns, rows = point_rows(self._result)
        return pandas.DataFrame(rows, columns=columns)

    def plot(self, path: str | Path | None = None, kind: str = "sweep"):
        """The figure ``evaluate --plot`` draws, as a matplotlib Figure (a notebook shows it),
        saved to ``path`` when given: ``kind="sweep"``, accuracy against write voltage (over the
        WER and the write energy in joules) or BER, with the intervals, the error-free line
        and the budget; ``"per_layer"``, the per-site sensitivity (``per_layer=True``);
        ``"yield"``, the chip yield against voltage (``chips`` and ``max_drop``)."""
        from xnorfault.io import check_figure_output
        from xnorfault.plots import plot_evaluation, plot_per_layer, plot_yield

        drawers = {"sweep": plot_evaluation, "per_layer": plot_per_layer, "yield": plot_yield}
        if kind not in drawers:
            raise XnorfaultError(f"unknown kind {kind!r}: use {', '.join(map(repr, drawers))}")
        if kind == "per_layer" and not any(p.get("per_layer") for p in self.points):
            raise XnorfaultError("kind='per_layer' needs an evaluation with per_layer=True")
        if kind == "yield" and not any(p.get("yield") is not None for p in self.points):
            raise XnorfaultError("kind='yield' needs an evaluation with chips and max_drop")
        if path is not None:
            path = check_figure_output(Path(path), "path")
        if kind == "sweep":
            return plot_evaluation(self._result, path, self._device)
        return drawers[kind](self._result, path)


def evaluate(
    model=None,
    data=None,
    *,
    fault: FaultSource | None = None,
    merge: str | Path | None = None,
    log: Sequence[str] | None = None,
    progress: bool = False,
    **options: Any,
) -> Evaluation:
    """Accuracy (mean, std, 95 % interval over repeats) of a model under bit flips, swept over
    BER or MRAM write voltage, against the error-free baseline (``xnorfault evaluate``).
    ``model`` is an ONNX model (injected, or clean and injected in memory) or an LCE
    ``.tflite``; ``data`` a test set ``.npz`` from :func:`export_onnx` or a dataset spec
    (which needs torch). The keywords are the command's options; ``age`` (with the weight
    memory's keywords: ``temperature`` in kelvin or ``"85C"``, ``weight_voltage``,
    ``weight_pulse``, ``weight_erased``, ``read_voltage``, ``read_pulse``, ``read_direction``,
    ``reads_per_inference``, ``inferences``) keeps the binary weights in MRAM on ``chips``
    chips (:mod:`xnorfault.mram.weights`), one point per age; ``workers`` (processes) or
    ``executor="ray"`` (``address``: a cluster; else a local instance) run the campaign's jobs
    elsewhere, with the same result (:mod:`xnorfault.evaluation.jobs`); ``out`` keeps them in a campaign
    folder, of which ``shard="I/N"`` runs one slice, and ``merge=FOLDER`` (no model, no data)
    assembles a folder's result (:meth:`Evaluation.campaign` says what is still missing);
    ``log=["mlflow"]`` also
    records the sweep as an MLflow run (:func:`xnorfault.tracking.log_evaluation_to_mlflow`;
    the store ``MLFLOW_TRACKING_URI``, by default ``mlflow.db`` beside the model);
    ``progress`` shows a progress bar.

    >>> sweep = evaluate(model, testset, ber=[0, 0.5], repeats=2)
    >>> [point["ber"] for point in sweep.points]
    [0.0, 0.5]
    >>> sweep.points[0]["accuracy_mean"] == sweep.baseline_accuracy  # BER 0 flips nothing
    True
    >>> sweep.points[1]["accuracy_mean"] < sweep.baseline_accuracy  # random activations
    True
    >>> sweep.to_dataframe()[["ber", "accuracy_mean"]].shape
    (2, 2)
    >>> figure = sweep.plot(workdir / "sweep.png")  # a matplotlib Figure, saved as well
    >>> (workdir / "sweep.png").is_file(), figure.axes[0].get_xlabel()
    (True, 'bit-error rate of the binary activations')
    """
    from xnorfault.evaluation.request import (
        EvaluationRequest,
        FaultOptions,
        WeightMemoryOptions,
    )
    from xnorfault.evaluation.run import run_evaluation
    from xnorfault.progress import progress_bar

    given = dict(_EVALUATE_SIGNATURE.bind(model, data, **_renamed(options)).arguments)
    fault_keywords = {key: given.pop(key) for key in SWEEP_FAULT_OPTIONS if key in given}
    weight_keywords = {key: given.pop(key) for key in _WEIGHT_KEYWORDS if key in given}
    given.pop("model", None), given.pop("data", None)
    if merge is not None:
        if model is not None or data is not None:
            raise XnorfaultError(
                "--merge reads the model and test set its campaign folder recorded: give no model or --data"
            )
        model, data, given["out"] = "(from the campaign folder)", "", merge
    elif model is None or data is None:
        raise XnorfaultError("give the model and --data (or --merge FOLDER)")
    source = _source(fault, fault_keywords)
    mram_device = fault_keywords.get("mram_device", "paper")
    weights = _weight_memory(source, mram_device, weight_keywords)
    # None: the write model the injected model records (or iid)
    write = write_model_of(fault_keywords.get("write_model"), fault_keywords.get("initial_state"))
    trackers = _evaluation_trackers(log)
    kept = merge is not None or given.get("out") is not None or bool(trackers)
    with on_disk(model, data, kept=kept) as (model_path, data_path):
        request = EvaluationRequest.from_options(
            Path(model_path),
            str(data_path),
            faults=FaultOptions(source=source, write=write),
            weights=WeightMemoryOptions()
            if weights is None
            else WeightMemoryOptions(memory=weights[0], ages=tuple(weights[1]), device=weights[2]),
            merge=merge is not None,
            **given,
        )
        result = run_evaluation(request, progress_bar(disabled=not progress))
    if model_path != model and result.get("backend"):
        result["backend"]["model"] = "(in memory)"
        if result.get("model"):
            result["model"]["model"] = "(in memory)"
    if data_path != data:
        result["data"] = "(arrays)"
    if "mlflow" in trackers and "campaign_incomplete" not in result:
        from xnorfault.tracking import log_evaluation_to_mlflow

        model_path = Path(result["backend"].get("model") or str(model))
        result["mlflow_run_id"] = log_evaluation_to_mlflow(result, model_path.parent)
    return Evaluation(result, None if source is None else source.device)


# keywords renamed with the command line's options (for one release)
_RENAMED_KEYWORDS = {"limit": "limit_test", "output": "output_name"}


def _renamed(options: dict) -> dict:
    """``options`` with the old keywords of :data:`_RENAMED_KEYWORDS` in their new names, with a
    :class:`DeprecationWarning` for each."""
    import warnings

    renamed = dict(options)
    for old, new in _RENAMED_KEYWORDS.items():
        if old in renamed and new not in renamed:
            warnings.warn(f"evaluate({old}=...) is now {new}=...", DeprecationWarning, stacklevel=3)
            renamed[new] = renamed.pop(old)
    return renamed


_WEIGHT_KEYWORDS = ("age", *WEIGHT_OPTIONS)


def _evaluate_signature() -> Signature:
    """:func:`evaluate`'s signature as a notebook shows it: the model and test set, the fault
    keywords of :func:`fault_source`, the weight memory's, and every option of
    :class:`~xnorfault.evaluation.request.EvaluationRequest` with its default, so that an
    option added to the request is a keyword here without a line of this module."""
    keyword = Parameter.KEYWORD_ONLY
    own = signature(evaluate).parameters
    faults = signature(fault_source).parameters
    parameters = [own["model"], own["data"], own["fault"]]
    parameters += [faults[name] for name in SWEEP_FAULT_OPTIONS]
    parameters += [
        Parameter(name, keyword, default=None, annotation="FaultValue") for name in _WEIGHT_KEYWORDS
    ]
    parameters += [
        Parameter(name, keyword, default=option.default, annotation=option.annotation)
        for name, option in request_options().items()
    ]
    parameters += [own["merge"], own["log"], own["progress"]]
    return Signature(parameters, return_annotation="Evaluation")


_EVALUATE_SIGNATURE = evaluate.__signature__ = _evaluate_signature()
evaluate = speaks_of_parameters(evaluate)


def _weight_memory(source, mram_device, keywords: dict):
    """``(memory, ages, device)`` of the weight-memory keywords (``age`` and
    :data:`~xnorfault.mram.weights.WEIGHT_OPTIONS`), or ``None`` without ``age``; the device is
    the fault source's, else ``mram_device``."""
    from xnorfault.mram import MTJ, load_device
    from xnorfault.mram.weights import WEIGHT_OPTIONS, weight_memory_options

    age = keywords.get("age")
    options = {name: keywords.get(name) for name in WEIGHT_OPTIONS}
    if age is None and not any(v is not None for v in options.values()):
        return None
    if source is not None and source.device is not None:
        device = source.device
    elif isinstance(mram_device, MTJ):
        device = mram_device
    else:
        device = load_device(mram_device)
    memory, ages = weight_memory_options(device, age, **options)
    return memory, ages, device


def _evaluation_trackers(log) -> tuple[str, ...]:
    """``evaluate --log``: MLflow only (a sweep is not a curve over steps of training), checked
    to be installed before the sweep runs."""
    from xnorfault.tracking import check_available, parse_trackers

    if "tensorboard" in parse_trackers(log):
        raise XnorfaultError(
            "evaluate --log takes mlflow (TensorBoard follows training: train --log)"
        )
    trackers = check_available(log)
    return trackers


@speaks_of_parameters
def export_onnx(
    run: str | Path,
    output: str | Path,
    *,
    point: str | None = None,
    repeat: int = 0,
    testset: str | Path | None = None,
    min_agreement: float = 0.99,
    accept_low_parity: bool = False,
) -> dict:
    """Export a trained network of a run directory to standard ONNX (``xnorfault export``),
    checking parity with the trained network on its test split first: below ``min_agreement``
    (the share of test images given the trained network's class) nothing is written, unless
    ``accept_low_parity`` (written, the shortfall in its metadata). ``testset`` also writes the
    preprocessed test split as ``.npz``. Returns the summary (``binary_sites``,
    ``argmax_agreement``, ``parity``, ``onnx_test_accuracy``, …). Needs torch and brevitas.

    >>> summary = export_onnx(run, workdir / "clean.onnx", point="ber=0")
    >>> summary["binary_sites"], summary["argmax_agreement"]
    (['act1', 'act2'], 1.0)
    """
    from xnorfault.exporters.onnx import check_min_agreement, export_run
    from xnorfault.io import check_output_file

    check_min_agreement(min_agreement)
    output = Path(output)
    from xnorfault.io import refuse_inputs_as_outputs, run_files

    refuse_inputs_as_outputs({"--output": output, "--testset": testset}, run_files(run))
    if output.suffix != ".onnx":
        raise XnorfaultError(f"--output {output} should end in .onnx for --format onnx")
    check_output_file(output, "--output")
    if testset is not None:
        testset = Path(testset)
        if testset.suffix != ".npz":
            raise XnorfaultError(f"--testset {testset} should end in .npz")
        check_output_file(testset, "--testset")
    return export_run(Path(run), output, point, repeat, testset, min_agreement, accept_low_parity)


@speaks_of_parameters
def train(
    out: str | Path,
    *,
    model: str = "lenet4",
    data: str = "digits",
    fault: FaultSource | None = None,
    ber: FaultValue = None,
    p_flip_pos: float | str | None = None,
    p_flip_neg: float | str | None = None,
    voltage: FaultValue = None,
    voltage_schedule: FaultValue = None,
    pulse: float | str | None = None,
    mram_device: Any = "paper",
    ramp: bool = False,
    write_model: str | None = None,
    initial_state: str | None = None,
    layer_ber: Mapping[str, float] | None = None,
    weight_ber: float | None = None,
    test_ber: float | None = None,
    gradient: str = "straight_through",
    epochs: int = 1,
    repeats: int = 1,
    seed: int = 1,
    batch_size: int = 128,
    lr: float | None = None,
    weight_decay: float | None = None,
    milestones: Sequence[int] | None = None,
    weight_scaling: str = "channel",
    input_size: int | None = None,
    limit_train: int | None = None,
    limit_test: int | None = None,
    extra: bool = False,
    classes: int | None = None,
    subset_seed: int = 0,
    device: str = "auto",
    shard: str | tuple[int, int] | None = None,
    sync_bn: bool = False,
    log: Sequence[str] | None = None,
    progress: bool = False,
) -> dict | None:
    """Train binarized networks with random bit errors in their binary activations and record
    the error-free test accuracy after every epoch (``xnorfault train``), into the run
    directory ``out`` (an existing run of the same configuration resumes). Without fault
    keywords the network trains at BER 0. ``layer_ber`` overrides the BER per site
    (``{"act1": 0}``); ``device`` is the torch device (``auto``, ``cpu``, ``cuda:N``);
    ``shard`` = ``"I/N"`` or (I, N) runs the I-th of N slices of the jobs, counted from 1 as in
    :func:`evaluate` (default: all). ``log`` mirrors
    the per-epoch metrics into ``"tensorboard"`` and/or ``"mlflow"``
    (:mod:`xnorfault.tracking`). Returns the run record
    (``points``, each with its ``repeats`` and their per-epoch ``epochs``) — ``None`` on a
    torchrun process other than the first. Needs torch and brevitas.

    >>> record = train(workdir / "tiny", ber=[0, 0.1], limit_train=128, limit_test=64)
    >>> [(point["point"], point["complete_repeats"]) for point in record["points"]]
    [('ber=0', 1), ('ber=0.1', 1)]
    >>> 0 <= record["points"][0]["final_test_accuracy_mean"] <= 1
    True
    """
    from xnorfault.data import load_dataset
    from xnorfault.faults import FaultSpec, FlipRates, WriteModel
    from xnorfault.models import model_info
    from xnorfault.progress import progress_bar
    from xnorfault.training.runner import Distributed, Run, TrainConfig, resolve_device
    from xnorfault.units import parse_rate

    source = _source(fault, _fault_keywords(locals()))
    if source is None:
        source = fault_source(
            ber=0.0, ramp=ramp, write_model=write_model, initial_state=initial_state
        )
    from xnorfault.tracking import check_available

    trackers = check_available(log)
    shard_index, shard_count = (1, 1) if shard is None else parse_shard(shard)
    if gradient not in GRADIENTS:
        raise XnorfaultError(f"unknown gradient {gradient!r}: use {' or '.join(GRADIENTS)}")
    if weight_scaling not in WEIGHT_SCALINGS:
        raise XnorfaultError(
            f"unknown weight scaling {weight_scaling!r}: use {' or '.join(WEIGHT_SCALINGS)}"
        )
    info = model_info(model)
    layers = {
        site: FlipRates.symmetric(parse_rate(rate, f"--layer-ber {site}"))
        for site, rate in (layer_ber or {}).items()
    }
    weights = (
        None if weight_ber is None else FlipRates.symmetric(parse_rate(weight_ber, "--weight-ber"))
    )
    points = fault_points(source, epochs=epochs, layers=layers, weights=weights)
    compute_device = resolve_device(device)
    dist = Distributed.from_environment(compute_device, sync_bn)
    compute_device = dist.device(compute_device)
    dataset = load_dataset(
        data,
        image_size=input_size or info.nominal_input_size,
        extra=extra,
        classes=classes,
        subset_seed=subset_seed,
    )
    config = TrainConfig(
        model=model,
        data=data,
        epochs=epochs,
        seed=seed,
        batch_size=batch_size,
        learning_rate=lr,
        weight_decay=weight_decay,
        milestones=None if milestones is None else list(milestones),
        gradient=gradient,
        weight_scaling=weight_scaling,
        input_size=input_size,
        limit_train=limit_train,
        limit_test=limit_test,
        test_fault=None
        if test_ber is None
        else FaultSpec.from_ber(parse_rate(test_ber, "--test-ber")).to_dict(),
        data_options={"extra": extra, "classes": classes, "subset_seed": subset_seed},
        write_model=None if source.write == WriteModel() else source.write.to_dict(),
    )
    run = Run(
        Path(out),
        config,
        dataset,
        points,
        repeats,
        compute_device,
        dist,
        (shard_index - 1, shard_count),  # the runner counts its slices from 0
    )
    if dist.is_main:
        run.prepare_folder()  # refuses a folder of another run before any progress output
        if trackers:  # only in a folder that is this run's
            from xnorfault.tracking import TrainingTracker

            run.tracker = TrainingTracker(out, trackers)
    with progress_bar(disabled=not progress or not dist.is_main) as bar:
        record = run.run(bar)
    return record if dist.is_main else None


GRADIENTS = ("straight_through", "flipped")
WEIGHT_SCALINGS = ("channel", "tensor")


__all__ = [
    "Evaluation",
    "Injection",
    "evaluate",
    "export_onnx",
    "fault_source",
    "inject",
    "inspect",
    "train",
]
