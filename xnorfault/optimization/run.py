"""``xnorfault optimize`` in four steps on one backend and executor: **measure** the drop curves
of every site and of the shared point on the search half (:func:`measure`), **allocate** chain
points to sites along the greedy walk (:func:`allocate`), **verify** candidates on the held-out
half until one holds (:func:`settle_answer`), and **report** the answer (:func:`report`). The
package docstring (:mod:`xnorfault.optimization`) states the method.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from xnorfault.errors import XnorfaultError
from xnorfault.evaluation.executors import JobExecutor
from xnorfault.faults import FlipRates, WriteModel
from xnorfault.mram import MTJ, load_device
from xnorfault.mram.chips import require_variation
from xnorfault.optimization.allocation import Allocation, DropCurve, allocation_path, choose
from xnorfault.optimization.candidates import (
    WritePoint,
    candidate_chain,
    conventional_point,
    parse_pulse_range,
    parse_voltage_range,
    sample_levels,
)
from xnorfault.optimization.result import OptimizationResult
from xnorfault.optimization.search import (
    REFINEMENTS,
    SHARED,
    ExecutionOptions,
    MemoryOptions,
    OptimizeRequest,
    RuntimeOptions,
    Search,
    SearchOptions,
    SearchRunner,
    measure_curves,
)
from xnorfault.optimization.verification import (
    BUDGET_FRACTIONS,
    SHARED_FRACTIONS,
    VERIFICATIONS,
    chip_report,
    settle,
    verify,
)
from xnorfault.units import format_duration, format_voltage, parse_drop


def optimize(
    model,
    data,
    max_drop: float | str,
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
    inference while the accuracy drop on held-out images stays within ``max_drop`` (``"1pt"``,
    ``"1%"`` or a fraction such as 0.01) with ``confidence`` (the package says how). ``model``: an ONNX file (clean or injected);
    ``data``: its test set (``.npz`` of ``x``, ``y``); ``mram_device``: a preset name, a device file
    or an :class:`~xnorfault.mram.MTJ`; ``pulses`` and ``voltages`` as ``--pulse`` and
    ``--voltage`` (or lists of seconds and volts). With ``chips`` (a device with
    ``[variation]``), the answer is also run on that many chips of chip seed ``chip_seed``
    (:func:`~xnorfault.optimization.verification.chip_report`). Every run's flips are seeded by
    its coordinates (half, rates, chip, repeat:
    :class:`~xnorfault.optimization.search.SearchRun`), so ``workers`` processes or Ray actors
    (``executor="ray"``, ``address``: a cluster) find the same answer as one process.

    >>> result = optimize(model, testset, 0.05, verify_repeats=2)
    >>> [site["site"] for site in result.sites]
    ['act1', 'act2']
    >>> result.energy_per_inference < result.conventional["energy_per_inference"]
    True
    >>> result.verification["drop_upper"] <= 0.05
    True
    >>> figure = result.plot(workdir / "pareto.png")  # a matplotlib Figure, saved as well
    >>> figure.axes[0].get_xlabel()
    'activation-write energy per inference'
    """
    max_drop = parse_drop(max_drop)
    mtj = mram_device if isinstance(mram_device, MTJ) else load_device(mram_device)
    pulse_list = parse_pulse_range(pulses) if isinstance(pulses, str) else sorted(set(pulses))
    request = OptimizeRequest(
        model=Path(model),
        data=str(data),
        max_drop=max_drop,
        search=SearchOptions(
            pulses=tuple(pulse_list),
            repeats=repeats,
            verify_repeats=verify_repeats,
            confidence=confidence,
            seed=seed,
        ),
        memory=MemoryOptions(
            device=mtj, write=write or WriteModel(), chips=chips, chip_seed=chip_seed
        ),
        runtime=RuntimeOptions(
            threads=threads, batch_size=batch_size, limit=limit, output=output, layout=layout
        ),
        execution=ExecutionOptions(workers=workers, executor=executor, address=address),
    )
    request.check()
    if chips:
        require_variation(mtj)
    if voltages is not None:
        grid = (
            parse_voltage_range(voltages, mtj, pulse_list)
            if isinstance(voltages, str)
            else sorted(set(voltages))
        )
        grid = tuple(float(v) for v in grid)
        request = replace(request, search=replace(request.search, voltages=grid))
    return run_optimization(request, progress, model_path=str(model))


def run_optimization(
    request: OptimizeRequest, progress=None, model_path: str | None = None
) -> OptimizationResult:
    """Optimise ``request``: measure, allocate, verify, report (the package docstring says how)
    over its write voltages (without any: from the larger critical voltage to the conventional
    point's); ``progress``: a rich ``Progress``; ``model_path``: the model as the result names
    it (default: the request's)."""
    search_options, memory, execution = request.search, request.memory, request.execution
    voltage_grid = (
        parse_voltage_range(None, memory.device, list(search_options.pulses))
        if search_options.voltages is None
        else np.asarray(search_options.voltages, dtype=float)
    )
    max_drop = request.max_drop
    with (
        request.open_backend() as backend,
        JobExecutor(
            None, request, execution.workers, execution.executor, execution.address
        ) as pool,
    ):
        runner = SearchRunner.build(request, backend)
        pool.runner = runner
        check_resolution(max_drop, len(runner.halves["held-out"].labels))
        sites = list(backend.sites)
        bits = site_bits(backend, sites)
        chain = candidate_chain(memory.device, voltage_grid, list(search_options.pulses))
        search = Search(runner, pool)
        repeats = search_options.repeats
        measured = measure(search, sites, chain, repeats, max_drop, progress)
        paths = allocate(measured, sites, bits, chain)
        answer = settle_answer(
            search,
            measured,
            paths,
            sites,
            chain,
            max_drop,
            search_options.confidence,
            repeats,
            search_options.verify_repeats,
        )
        described = backend.describe()
        chip_results = None
        if memory.chips:
            chosen = {s: chain[k] for s, k in zip(sites, answer.allocation.levels, strict=True)}
            chip_results = chip_report(
                search,
                measured.heldout_clean,
                chosen,
                memory.chips,
                memory.chip_seed,
                repeats,
                max_drop,
            )
    return report(
        answer,
        measured,
        paths,
        search,
        request,
        sites=sites,
        bits=bits,
        chain=chain,
        voltage_grid=voltage_grid,
        backend_description=described,
        chips=chip_results,
        model_path=str(request.model) if model_path is None else model_path,
    )


def check_resolution(max_drop: float, heldout_count: int) -> None:
    """A budget below one held-out image cannot be verified."""
    resolution = 1 / heldout_count
    if max_drop < resolution:
        raise XnorfaultError(
            f"--max-drop {max_drop:g} is below one held-out image (1/{heldout_count} = "
            f"{resolution:.4f}): the verification cannot resolve it; give more test images or a larger budget"
        )


def site_bits(backend, sites: list[str]) -> list[int]:
    """The bits each site writes per image (its elements, from the graph's shapes)."""
    bits = [backend.site_addresses.get(site) for site in sites]
    if any(not n for n in bits):
        unknown = [s for s, n in zip(sites, bits, strict=True) if not n]
        raise XnorfaultError(
            f"the bits per image of site(s) {', '.join(unknown)} are not fixed (a dynamic "
            "dimension besides the batch): export the model with fixed image dimensions"
        )
    return bits


@dataclass
class Measured:
    """The measure step's outcome: each half's error-free run, the search half's baseline, each
    site's drop curve and the shared point's."""

    search_clean: np.ndarray
    heldout_clean: np.ndarray
    search_baseline: float
    curves: dict[str, DropCurve]
    shared_curve: DropCurve


def measure(search: Search, sites, chain, repeats: int, max_drop: float, progress) -> Measured:
    """Both halves error-free, then the drop curves on the search half of every site alone and,
    with several sites, of all sharing one point, measured side by side."""
    levels = sample_levels(chain)
    search_clean = search.correct("search", {})
    search_baseline = float(search_clean.mean())
    heldout_clean = search.correct("held-out", {})
    measured_together = {site: (lambda point, site=site: {site: point.rates}) for site in sites}
    if len(sites) > 1:
        measured_together[SHARED] = lambda point: {site: point.rates for site in sites}
    total = len(measured_together) * (len(levels) + REFINEMENTS)
    task = progress.add_task("searching", total=total) if progress is not None else None
    step = (lambda: progress.advance(task)) if progress is not None else None
    curves = measure_curves(
        search, search_baseline, measured_together, levels, chain, repeats, max_drop, step
    )
    if progress is not None:
        progress.update(task, completed=total)
    shared_curve = curves.pop(SHARED, None) or curves[sites[0]]
    return Measured(search_clean, heldout_clean, search_baseline, curves, shared_curve)


@dataclass
class Paths:
    """The allocate step's outcome: the greedy walk of per-site allocations and the shared
    points (every site at one chain point), each with its energy and predicted drop."""

    per_site: list[Allocation]
    shared: list[Allocation]


def allocate(measured: Measured, sites, bits, chain: list[WritePoint]) -> Paths:
    """The per-site walk on the sites' drop curves and the shared points on the shared curve."""
    energy_per_bit = np.array([p.energy_per_bit for p in chain])
    wers = [p.wer for p in chain]
    tables = [np.array([measured.curves[s].at(w) for w in wers]) for s in sites]
    path = allocation_path(tables, bits, energy_per_bit)
    shared_table = np.array([measured.shared_curve.at(w) for w in wers])
    shared_path = [
        Allocation(
            tuple([k] * len(sites)),
            float(sum(bits) * energy_per_bit[k]),
            float(shared_table[k]),
        )
        for k in range(len(chain))
        if np.isfinite(shared_table[k])
    ]
    return Paths(path, shared_path)


@dataclass
class Answer:
    """The verify step's outcome: the allocation chosen, its held-out verification, whether the
    per-site answer was kept over the shared one, and every check made."""

    allocation: Allocation
    verification: dict
    per_site_kept: bool
    shared_index: int
    shared_tried: dict[int, dict]
    tried: dict[int, dict]
    screened: dict[tuple, dict]


def settle_answer(
    search: Search,
    measured: Measured,
    paths: Paths,
    sites,
    chain,
    max_drop: float,
    confidence: float,
    repeats: int,
    verify_repeats: int,
) -> Answer:
    """Screen the candidates of each path on the search half, verify the survivors on the
    held-out half, cheapest last, until one holds: first the shared point (falling back to the
    safest), then the per-site allocations cheaper than it; none holding is an error."""
    alpha = (1 - confidence) / VERIFICATIONS

    def rates_of(allocation: Allocation) -> dict[str, FlipRates]:
        return {s: chain[k].rates for s, k in zip(sites, allocation.levels, strict=True)}

    def check(allocation: Allocation) -> dict:
        return verify(
            search, "held-out", measured.heldout_clean, rates_of(allocation), verify_repeats, alpha
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
                        search,
                        "search",
                        measured.search_clean,
                        rates_of(allocation),
                        repeats,
                        alpha,
                    ),
                }
            if screened[allocation.levels]["drop_upper"] <= max_drop:
                kept.append(index)
        return kept

    shared_path, path = paths.shared, paths.per_site
    shared_index, shared_tried = settle(
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
        index, tried = settle(path, candidates, max_drop, check, fallback=False)
    shared_allocation = shared_path[shared_index]
    per_site_kept = index is not None and path[index].energy < shared_allocation.energy
    return Answer(
        allocation=path[index] if per_site_kept else shared_allocation,
        verification=tried[index] if per_site_kept else shared_tried[shared_index],
        per_site_kept=per_site_kept,
        shared_index=shared_index,
        shared_tried=shared_tried,
        tried=tried,
        screened=screened,
    )


def report(
    answer: Answer,
    measured: Measured,
    paths: Paths,
    search: Search,
    request: OptimizeRequest,
    *,
    sites,
    bits,
    chain,
    voltage_grid,
    backend_description: dict,
    chips: dict | None,
    model_path: str,
) -> OptimizationResult:
    """The answer: each site's point, bits and energy; the shared and conventional points; the
    verification; the search's curves, screenings and checks; the energy–drop fronts."""
    allocation = answer.allocation
    options = request.search
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
                "predicted_drop": float(measured.curves[site].at(point.wer)),
            }
        )
    shared_allocation = paths.shared[answer.shared_index]
    shared_point = chain[shared_allocation.levels[0]]
    verification = {
        **answer.verification,
        "confidence": options.confidence,
        "verifications": VERIFICATIONS,
        "search_baseline_accuracy": measured.search_baseline,
    }
    return OptimizationResult(
        max_drop=request.max_drop,
        sites=site_rows,
        energy_per_inference=allocation.energy,
        shared={
            **shared_point.to_dict(),
            "energy_per_inference": shared_allocation.energy,
            "verification": answer.shared_tried[answer.shared_index],
        },
        conventional=conventional_point(request.memory.device, list(options.pulses), sum(bits)),
        verification=verification,
        evaluations=search.evaluations,
        images_inferred=search.images,
        per_site_kept=answer.per_site_kept,
        device=request.memory.device,
        write=request.memory.write,
        search={
            "search_images": int(len(measured.search_clean)),
            "heldout_images": int(len(measured.heldout_clean)),
            "seed": options.seed,
            "seeds": "by coordinates (half, rates or chip points, chip, repeat)",
            "repeats": options.repeats,
            "verify_repeats": options.verify_repeats,
            "candidates": len(chain),
            "pulses": list(options.pulses),
            "voltages": [float(voltage_grid.min()), float(voltage_grid.max())],
            "curves": {site: measured.curves[site].to_dict() for site in sites},
            "shared_curve": measured.shared_curve.to_dict(),
            "screened_on_search_half": list(answer.screened.values()),
            "verifications": {
                "per_site": [
                    {"energy_per_inference": paths.per_site[i].energy, **v}
                    for i, v in answer.tried.items()
                ],
                "shared": [
                    {"energy_per_inference": paths.shared[i].energy, **v}
                    for i, v in answer.shared_tried.items()
                ],
            },
            "backend": backend_description,
        },
        pareto={
            "per_site": [[a.energy, a.predicted_drop] for a in paths.per_site],
            "shared": [[a.energy, a.predicted_drop] for a in paths.shared],
        },
        model_path=model_path,
        chips=chips,
    )


__all__ = ["allocate", "measure", "optimize", "report", "run_optimization", "settle_answer"]
