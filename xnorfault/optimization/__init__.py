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

from xnorfault.optimization.allocation import Allocation, DropCurve, allocation_path, choose
from xnorfault.optimization.candidates import WritePoint, candidate_chain
from xnorfault.optimization.result import (
    OptimizationResult,
    operating_points_toml,
    read_operating_points,
)
from xnorfault.optimization.run import optimize

__all__ = [
    "Allocation",
    "DropCurve",
    "OptimizationResult",
    "WritePoint",
    "allocation_path",
    "candidate_chain",
    "choose",
    "operating_points_toml",
    "optimize",
    "read_operating_points",
]
