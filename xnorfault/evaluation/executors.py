"""Where a campaign's jobs run: in this process, in spawned worker processes, or on Ray actors.

A :class:`JobExecutor` stays open across calls, so a search that asks for a few runs at a time
(``optimize``) opens its model once per worker. Workers open the request's runner themselves
(``request.open_runner()``); results come back packed as bits. Imports numpy (Ray only for
``executor="ray"``).
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np

from xnorfault.errors import XnorfaultError
from xnorfault.evaluation.jobs import Job, JobRunner, pack_correct, unpack_correct

EXECUTORS = ("local", "ray")


def run_jobs(
    jobs: list[Job],
    runner: JobRunner | None,
    request=None,
    workers: int = 1,
    executor: str = "local",
    address: str | None = None,
    advance=None,
    on_result=None,
) -> dict[Job, np.ndarray]:
    """Every job's result, on a :class:`JobExecutor` opened for these jobs alone."""
    with JobExecutor(runner, request, workers, executor, address) as pool:
        return pool.run(jobs, advance, on_result)


class JobExecutor:
    """Where jobs run: in this process on ``runner`` (``workers`` 1, ``local``), in ``workers``
    processes that each open ``request``'s runner (``request.for_workers(workers)`` shares out
    the threads, ``.open_runner()`` opens the backend and test
    set, once per process), or on as many Ray actors that do (``executor="ray"``; a local
    instance without ``address``). The processes or actors start with the first jobs and stay
    for every later :meth:`run` until the executor closes, so a search that asks for a few
    runs at a time (``optimize``) opens its model once per worker, not once per step.
    ``request`` also gives the chunk size (``request.repeats``: a chip's or a point's repeats
    stay together) and the threads shared out among the workers."""

    def __init__(
        self,
        runner=None,
        request=None,
        workers: int = 1,
        executor: str = "local",
        address: str | None = None,
    ):
        if executor not in EXECUTORS:
            raise XnorfaultError(f"unknown executor {executor!r}: use {' or '.join(EXECUTORS)}")
        self.runner = runner
        self.request = request
        self.workers = max(1, int(workers))
        self.executor = executor
        self.address = address
        self._pool = None  # a ProcessPoolExecutor, or a Ray ActorPool
        self._ray_started = False

    @property
    def here(self) -> bool:
        """Whether jobs run in this process."""
        return self.executor == "local" and self.workers <= 1

    def __enter__(self) -> JobExecutor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None and self.executor == "local":
            pool.shutdown(wait=True, cancel_futures=True)
        if self._ray_started:
            import ray

            self._ray_started = False
            ray.shutdown()

    def run(self, jobs: list, advance=None, on_result=None) -> dict:
        """Every job's result; ``on_result(job, correct)`` is called in this process as each
        arrives (a campaign folder saves it there), ``advance()`` after it."""
        results: dict = {}

        def arrived(job, correct: np.ndarray) -> None:
            results[job] = correct
            if on_result is not None:
                on_result(job, correct)
            if advance is not None:
                advance()

        if not jobs:
            return results
        if self.here:
            for job in jobs:
                arrived(job, self.runner.run(job))
        elif self.executor == "ray":
            self._run_on_ray(jobs, arrived)
        else:
            self._run_in_processes(jobs, arrived)
        return results

    def _chunks(self, jobs: list) -> list[list]:
        return _chunks(jobs, self.request.repeats, self.workers)

    def _run_in_processes(self, jobs, arrived) -> None:
        if self._pool is None:
            context = multiprocessing.get_context("spawn")  # no onnxruntime threads forked
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=context,
                initializer=_start_worker,
                initargs=(self.request.for_workers(self.workers),),
            )
        futures = [self._pool.submit(_run_in_worker, chunk) for chunk in self._chunks(jobs)]
        try:
            for future in as_completed(futures):
                for job, packed, count in future.result():
                    arrived(job, unpack_correct(packed, count))
        except BaseException:
            for future in futures:
                future.cancel()
            raise

    def _run_on_ray(self, jobs, arrived) -> None:
        if self._pool is None:
            self._pool = self._start_ray()
        for chunk in self._pool.map_unordered(lambda a, c: a.run.remote(c), self._chunks(jobs)):
            for job, packed, count_images in chunk:
                arrived(job, unpack_correct(packed, count_images))

    def _start_ray(self):
        try:
            import ray
            import ray.util
        except ImportError:
            raise XnorfaultError(
                "--executor ray needs Ray: pip install 'xnorfault[ray]' (or run without --executor)"
            ) from None
        if not ray.is_initialized():
            try:
                if self.address is None:
                    ray.init(
                        num_cpus=self.workers,
                        include_dashboard=False,
                        log_to_driver=False,
                        logging_level=logging.ERROR,
                    )
                else:
                    ray.init(address=self.address, log_to_driver=False, logging_level=logging.ERROR)
            except Exception as error:  # Ray's own ConnectionError/RuntimeError types
                raise XnorfaultError(
                    f"cannot start or reach Ray ({self.address or 'local'}): {error}"
                ) from None
            self._ray_started = True
        actor = ray.remote(num_cpus=1)(_RayWorker)
        request = self.request.for_workers(self.workers)
        return ray.util.ActorPool([actor.remote(request) for _ in range(self.workers)])


_WORKER = None


def _start_worker(request) -> None:
    global _WORKER
    _WORKER = request.open_runner()


def _run_in_worker(chunk: list) -> list[tuple]:
    return _run_chunk(_WORKER, chunk)


def _run_chunk(runner, chunk: list) -> list[tuple]:
    """A worker's results, packed for the trip back: (job, bits, images)."""
    return [(job, *pack_correct(runner.run(job))) for job in chunk]


def _chunks(jobs: list, repeats: int, workers: int) -> list[list]:
    """Jobs in chunks of at most a point's repeats, about four per worker: a chip's repeats stay
    together (its rates are drawn once) and the workers stay evenly loaded."""
    size = max(1, min(repeats, math.ceil(len(jobs) / (4 * workers))))
    return [jobs[i : i + size] for i in range(0, len(jobs), size)]


class _RayWorker:
    """A Ray actor holding one runner: backend, test set and campaign (opened once per
    worker)."""

    def __init__(self, request):
        self.runner = request.open_runner()

    def run(self, chunk: list) -> list[tuple]:
        return _run_chunk(self.runner, chunk)


def threads_per_worker(threads: int | None, workers: int) -> int:
    """The threads each of ``workers`` processes gets of ``threads`` (``None``: the machine's
    cores), at least one."""
    total = threads or os.cpu_count() or 1
    return max(1, total // workers)


__all__ = [
    "EXECUTORS",
    "JobExecutor",
    "run_jobs",
]
