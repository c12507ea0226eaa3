r"""Accuracy and latency of a model under bit flips, over sweeps of BER or write voltage.

Statistics. Each sweep point is evaluated ``repeats`` times on the same test images, every
batch with a fresh flip seed derived from the run's coordinates — campaign seed, point, chip,
repeat, batch (:mod:`xnorfault.evaluation.jobs`), so that any split of the campaign over processes,
shards or a Ray cluster gives the same numbers. The point reports the mean accuracy, the sample standard deviation and the 95 %
confidence interval of the mean, :math:`\bar a \pm t_{0.975,\,n-1}\, s/\sqrt{n}` (Student's t,
clipped to [0, 1]): the flip noise on these images. Beside it, ``test_set_ci95`` is the test set's own sampling
error (Clopper–Pearson over the N images) and ``drop_ci95`` the interval of the drop against
the error-free run that holds both (paired per image, :func:`xnorfault.statistics.paired_drop`);
``--max-drop`` decides on ``drop_ci95``. The error-free baseline is the same images with every
rate 0 (deterministic).

Write-voltage sweeps map each voltage through :class:`xnorfault.mram.MTJ` to the flip rates of
both polarities (+1 stored as P: :math:`p_{+\to-} = \mathrm{WER}_{AP\to P}`), and report write
energy and endurance there. With chips (:mod:`xnorfault.mram.chips`) every voltage is evaluated
on each of N chips whose cells differ, and the point reports the distribution across chips and
the yield (:func:`xnorfault.evaluation.results.chip_summary`). Imports numpy and scipy only (plus
the backend's runtime).
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from xnorfault.evaluation.campaign import campaign_request, run_in_folder
from xnorfault.evaluation.executors import run_jobs
from xnorfault.evaluation.jobs import Job, JobRunner, plan_of
from xnorfault.evaluation.request import (
    EvaluationRequest,
    check_campaign_request,
    check_chip_request,
    check_sizes,
    check_weight_request,
    open_context,
    open_job_runner,
    open_request_backend,
    resolved,
)
from xnorfault.evaluation.results import (
    assemble,
    highest_ber_within,
    longest_age_within,
    lowest_voltage_within,
)
from xnorfault.evaluation.runner import TestSetRunner
from xnorfault.evaluation.weight_ages import run_weight_evaluation
from xnorfault.faults import FaultPoint
from xnorfault.graph.contract import SOURCE_RUN_KEY
from xnorfault.graph.inspection import inspect_graph
from xnorfault.statistics import half_width, runs_needed
from xnorfault.targets import machine_description


def evaluate(
    test_runner: TestSetRunner,
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
    (:mod:`xnorfault.evaluation.jobs`), seeded by their coordinates; ``execute(jobs, advance)`` runs
    them elsewhere (worker processes, Ray) and returns their results, else they run here."""
    sites = test_runner.backend.sites
    runner = JobRunner(test_runner, points, chips)
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
                str(b): test_runner.latency(everywhere, b, latency_iterations)
                for b in latency_batches
            }
    result["test_images"] = int(len(test_runner.labels))
    return result


def sized_outcomes(runner, plan, target: float, max_repeats: int, progress=None) -> dict:
    r"""The jobs of a campaign sized by ``--target-ci``: per point, repeats (at least 2)
    until the 95 % t-interval's half-width of the accuracy is ≤ ``target`` or ``max_repeats``
    runs are made — ``repeats`` first, then, from their spread s, the
    :math:`\lceil (t_{0.975,n-1}\,s/W)^2\rceil` runs the half-width W needs
    (:func:`xnorfault.statistics.runs_needed`), checked again until it holds. Repeat r of a
    point is the same job (same seed) as in a campaign of fixed repeats."""
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


def run_evaluation(request: EvaluationRequest, progress=None) -> dict:
    """Evaluate ``request``: open its backend, load the test set, run the baseline and every
    point (:func:`evaluate`), and describe the backend, machine, target and device with the
    result; with ``max_drop`` also the lowest voltage (or highest BER) within that drop.
    With ``workers``/``executor`` the jobs run in worker processes or on Ray; with ``out`` they
    are kept in a campaign folder (only shard ``shard`` of them run here; ``merge`` runs none)
    and the result is assembled once every job is there. ``progress``: a rich ``Progress``,
    shown only while the jobs run (not while the backend and test set load, whose errors
    should stand alone)."""
    if request.execution.merge:
        request = campaign_request(request.execution.out, request)
    check_sizes(request)
    check_chip_request(request)
    check_campaign_request(request)
    if request.weights.memory is not None:
        check_weight_request(request)
    profile, request = resolved(request)
    with open_request_backend(request) as runner:
        chips = None
        test_runner, points, chips = open_context(request, runner)
        if request.weights.memory is not None:
            result = run_weight_evaluation(request, test_runner, points, progress)
        else:
            if request.execution.out is not None:
                result = run_in_folder(request, test_runner, points, chips, progress)
                if "campaign_incomplete" in result:
                    return result
            else:
                execute = None
                if request.execution.workers > 1 or request.execution.executor != "local":

                    def execute(jobs, advance):
                        return run_jobs(
                            jobs,
                            None,
                            request,
                            request.execution.workers,
                            request.execution.executor,
                            request.execution.address,
                            advance,
                        )

                with progress if progress is not None else nullcontext():
                    result = evaluate(
                        test_runner,
                        points,
                        request.repeats,
                        request.latency.batches,
                        request.latency.iterations,
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
        _add_energy_per_inference(result)
    result["latency_batches"] = list(request.latency.batches)
    result["seed"] = request.seed
    result["batch_size"] = request.batch_size
    result["machine"] = machine_description()
    if request.execution.workers > 1 or request.execution.executor != "local":
        result["executor"] = {
            "executor": request.execution.executor,
            "workers": request.execution.workers,
            "address": request.execution.address,
        }
    if profile is not None:
        result["target"] = profile.to_dict()
    result["data"] = request.data
    device = request.faults.source.device if request.faults.source is not None else None
    if device is not None:
        result["device"] = device.to_dict()
    if request.weights.memory is not None:
        if request.max_drop is not None:
            result["max_drop"] = longest_age_within(result, request.max_drop)
        return result
    if request.max_drop is not None:
        result["max_drop"] = (
            lowest_voltage_within(result, request.max_drop, device)
            if request.faults.source is not None and request.faults.source.voltages
            else highest_ber_within(result, request.max_drop)
        )
    return result


def _add_energy_per_inference(result: dict) -> None:
    r"""Each MRAM point's activation-write energy per inference (J), as ``optimize`` counts it:
    :math:`E_{inf} = N_{bits}\,E_{bit}`, every activation bit of an image written once at the
    point's voltage and pulse, each write costing ``write_energy`` (:math:`V^2\tau/R`, the mean
    of both directions: the current flows whether the cell switches or not). ``None`` where
    the model's bits per image are unknown (a symbolic dimension)."""
    bits = (result.get("model") or {}).get("activation_bits_per_image")
    for point in result.get("points", []):
        if point.get("write_energy") is not None:
            point["energy_per_inference"] = None if bits is None else point["write_energy"] * bits


def _source_run(metadata) -> dict | None:
    """The training run, point and repeat an exported model came from (its metadata); ``None``
    for a model from elsewhere, or one whose entry is not a JSON object."""
    try:
        source = json.loads(metadata.get(SOURCE_RUN_KEY, "null"))
    except ValueError:
        return None
    return source if isinstance(source, dict) else None


def _model_facts(path: Path, runner) -> dict:
    """What ``xnorfault inspect`` says of the model, as the backend feeds it."""
    report = inspect_graph(path)
    report.data_input = runner.data_input.describe()
    report.logits_output = runner.output_name
    return report.to_dict()


__all__ = ["evaluate", "open_context", "open_job_runner", "run_evaluation", "sized_outcomes"]
