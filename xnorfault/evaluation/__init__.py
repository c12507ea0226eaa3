"""``xnorfault evaluate``: accuracy and latency of a model under bit flips.

:mod:`~xnorfault.evaluation.request` (what is asked, checked before anything loads),
:mod:`~xnorfault.evaluation.testset` (test sets), :mod:`~xnorfault.evaluation.runner` (a
backend over a test set), :mod:`~xnorfault.evaluation.jobs` (runs seeded by their
coordinates), :mod:`~xnorfault.evaluation.executors` (where the jobs run: processes, Ray),
:mod:`~xnorfault.evaluation.campaign` (campaign folders: shards, resume, merge),
:mod:`~xnorfault.evaluation.results` (statistics per point, the answer within a drop, CSV),
:mod:`~xnorfault.evaluation.weight_ages` (binary weights kept in MRAM over their life) and
:mod:`~xnorfault.evaluation.run`, which drives them. Imports nothing itself.
"""
