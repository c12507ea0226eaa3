r"""An evaluation campaign as independent jobs: seeds by coordinates, shards, workers, Ray.

A campaign is the error-free baseline and, per point, every repeat on every chip (and, with
``--per-layer``, every repeat with one site flipping). Each is a :class:`Job`; a job's result is
which test images it classified right. Its flip seed derives from its coordinates only,

.. math:: s_{job} = \mathrm{mix}(S,\ h(\text{point}, \text{chip}, \text{repeat}, \text{site})),
          \qquad s_{batch\,b} = \mathrm{mix}(s_{job}, b),

(:func:`job_seed`; :math:`S` the campaign seed, :math:`h` a BLAKE2b digest of the point's full
fault spec and the job's indices, mix SplitMix64, :func:`xnorfault.generator.run_seed`), never
from the order in which jobs run. So any split of a campaign — shards into one folder
(:func:`run_shard`, :func:`merge`), worker processes (:func:`run_jobs` with ``workers``) or a
Ray cluster (``executor="ray"``) — gives bit-identical accuracies to the plain run, and a point
evaluated alone gives the same numbers as within a sweep.

:func:`assemble` turns the job results into the ``evaluate`` result (the same statistics as
:func:`xnorfault.evaluation.evaluate`). Imports numpy (plus the backend's runtime; Ray only for
``executor="ray"``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xnorfault.errors import XnorfaultError
from xnorfault.generator import run_seed

CAMPAIGN_FORMAT = 1
CAMPAIGN_FILE = "campaign.json"
JOBS_FOLDER = "jobs"
EXECUTORS = ("local", "ray")


@dataclass(frozen=True, order=True)
class Job:
    """Coordinates of one run over the test set: ``point`` (index in the sweep, −1 for the
    error-free baseline), ``chip`` (−1 without chips), ``repeat``, and ``site`` (with
    ``--per-layer``: the one site that flips; empty: all)."""

    point: int
    chip: int
    repeat: int
    site: str = ""

    @property
    def name(self) -> str:
        """A file name: ``p3-c-1-r7`` (``-s<site>`` with a site, sanitised)."""
        base = f"p{self.point}-c{self.chip}-r{self.repeat}"
        if not self.site:
            return base
        digest = hashlib.blake2b(self.site.encode(), digest_size=4).hexdigest()
        return f"{base}-s{digest}"

    def to_dict(self) -> dict:
        return {"point": self.point, "chip": self.chip, "repeat": self.repeat, "site": self.site}


def point_key(point) -> str:
    """A stable text for a sweep point: its label, numbers and full fault spec (so the same
    point of the same device has the same seeds in any sweep)."""
    if point is None:
        return "clean"
    return json.dumps(
        [point.label, point.ber, point.voltage, point.pulse, point.spec.to_dict()],
        sort_keys=True,
        default=str,
    )


def job_seed(campaign_seed: int, key: str, job: Job) -> int:
    """The flip seed of ``job`` of the point described by ``key`` (see the module docstring);
    batch b of the job runs with :func:`~xnorfault.generator.run_seed` (this, b)."""
    text = f"{key}|chip={job.chip}|repeat={job.repeat}|site={job.site}".encode()
    digest = int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")
    return run_seed(int(campaign_seed), digest >> 2)


@dataclass
class Plan:
    """The jobs of a campaign, in a fixed order: the baseline, then per point every chip's
    repeats (or the repeats), then the per-site repeats."""

    keys: list[str]
    repeats: int
    chips: int | None = None
    per_layer_sites: list[str] = field(default_factory=list)

    def jobs(self) -> list[Job]:
        jobs = [Job(-1, -1, 0)]
        for index in range(len(self.keys)):
            for chip in range(self.chips) if self.chips else [-1]:
                jobs += [Job(index, chip, r) for r in range(self.repeats)]
            for site in self.per_layer_sites:
                jobs += [Job(index, -1, r, site) for r in range(self.repeats)]
        return jobs


def plan_of(points, repeats: int, chips=None, per_layer_sites=()) -> Plan:
    return Plan(
        [point_key(p) for p in points],
        int(repeats),
        None if chips is None else int(chips.count),
        list(per_layer_sites),
    )


class JobRunner:
    """Runs jobs on one backend: the campaign (test set, batch size, seed), the sweep's points
    and, with chips, the chip population. The last chip's rates are kept, since a chip's
    repeats run one after another."""

    def __init__(self, campaign, points, chips=None):
        self.campaign = campaign
        self.points = points
        self.chips = chips
        self.keys = [point_key(p) for p in points]
        self._chip_rates: tuple[tuple[int, int], dict] | None = None

    def rates(self, job: Job) -> dict:
        if job.point < 0:
            return {}
        point = self.points[job.point]
        sites = self.campaign.backend.sites
        if job.chip >= 0:
            if self._chip_rates is None or self._chip_rates[0] != (job.point, job.chip):
                from xnorfault.mram.chips import chip_rates, draw_chip

                chip = draw_chip(self.chips.device, self.chips.addresses, self.chips.seed, job.chip)
                self._chip_rates = (
                    (job.point, job.chip),
                    chip_rates(chip, self.chips.table, point.voltage),
                )
            return self._chip_rates[1]
        everywhere = {site: point.spec.activation_rates(site) for site in sites}
        if job.site:
            return {job.site: everywhere[job.site]}
        return everywhere

    def run(self, job: Job) -> np.ndarray:
        """Which test images ``job`` classifies right (bool, one per image)."""
        key = "clean" if job.point < 0 else self.keys[job.point]
        return self.campaign.correct(self.rates(job), seed=job_seed(self.campaign.seed, key, job))


# --- executors ------------------------------------------------------------------------------


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
    processes that each open ``request``'s runner (``request.open_runner()``: backend and test
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
        from concurrent.futures import as_completed

        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            context = multiprocessing.get_context("spawn")  # no onnxruntime threads forked
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=context,
                initializer=_start_worker,
                initargs=(worker_request(self.request, self.workers),),
            )
        futures = [self._pool.submit(_run_in_worker, chunk) for chunk in self._chunks(jobs)]
        try:
            for future in as_completed(futures):
                for job, packed, count in future.result():
                    arrived(job, _unpack(packed, count))
        except BaseException:
            for future in futures:
                future.cancel()
            raise

    def _run_on_ray(self, jobs, arrived) -> None:
        if self._pool is None:
            self._pool = self._start_ray()
        for chunk in self._pool.map_unordered(lambda a, c: a.run.remote(c), self._chunks(jobs)):
            for job, packed, count_images in chunk:
                arrived(job, _unpack(packed, count_images))

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
        request = worker_request(self.request, self.workers)
        return ray.util.ActorPool([actor.remote(request) for _ in range(self.workers)])


def worker_request(request, workers: int):
    """The request each of ``workers`` processes opens: the threads shared out among them."""
    from dataclasses import replace

    total = request.threads or os.cpu_count() or 1
    return replace(request, threads=max(1, total // workers), workers=1, executor="local")


_WORKER = None


def _start_worker(request) -> None:
    global _WORKER
    _WORKER = request.open_runner()


def _run_in_worker(chunk: list) -> list[tuple]:
    return _run_chunk(_WORKER, chunk)


def _run_chunk(runner, chunk: list) -> list[tuple]:
    """A worker's results, packed for the trip back: (job, bits, images)."""
    return [(job, *_pack(runner.run(job))) for job in chunk]


def _pack(correct: np.ndarray) -> tuple[bytes, int]:
    return np.packbits(correct.astype(bool)).tobytes(), int(correct.size)


def _unpack(packed: bytes, count: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(packed, dtype=np.uint8), count=count).astype(bool)


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


# --- shards and the campaign folder ---------------------------------------------------------


def parse_shard(text: str) -> tuple[int, int]:
    """``--shard I/N``: the I-th (1-based) of N slices."""
    try:
        index, count = (int(part) for part in str(text).split("/"))
    except ValueError:
        raise XnorfaultError(f"--shard {text!r}: write I/N, e.g. 1/4") from None
    if not 1 <= index <= count:
        raise XnorfaultError(f"--shard {text!r}: I must lie between 1 and N")
    return index, count


def shard_jobs(jobs: list[Job], index: int, count: int) -> list[Job]:
    """Shard ``index`` of ``count`` (1-based): every count-th job, so each shard holds a share
    of every point."""
    return jobs[index - 1 :: count]


@dataclass
class CampaignFolder:
    """``evaluate --out DIR``: ``campaign.json`` (the request and a fingerprint of the model and
    test set) and one file per finished job under ``jobs/``, each written atomically."""

    path: Path

    @property
    def description_file(self) -> Path:
        return self.path / CAMPAIGN_FILE

    def job_file(self, job: Job) -> Path:
        return self.path / JOBS_FOLDER / f"{job.name}.json"

    def claim(self, description: dict) -> None:
        """Write the description, or check that the folder holds this same campaign; a folder
        xnorfault did not create is never written into."""
        from xnorfault.io import atomic_create_text, named_few, strangers_in

        if self.path.exists() and not self.path.is_dir():
            raise XnorfaultError(f"--out {self.path} is a file: give a folder for the campaign")
        if self.description_file.is_file():
            existing = _read_json(self.description_file)
            if existing.get("fingerprint") != description["fingerprint"]:
                raise XnorfaultError(
                    f"{self.path} holds another campaign (model, test set or options differ): "
                    "give a new --out folder"
                )
            return
        strangers = (
            strangers_in(self.path, CAMPAIGN_FILE, (JOBS_FOLDER,)) if self.path.is_dir() else []
        )
        if strangers:
            raise XnorfaultError(
                f"{self.path} is not empty and holds no {CAMPAIGN_FILE} ({named_few(strangers)}): "
                "give a new or empty --out folder"
            )
        # shards may start together: the first to create the description wins, atomically; the
        # others find it there and check that it describes their campaign
        text = json.dumps(description, indent=1) + "\n"
        if not atomic_create_text(self.description_file, text):
            existing = _read_json(self.description_file)
            if existing.get("fingerprint") != description["fingerprint"]:
                raise XnorfaultError(
                    f"{self.path} was claimed by another campaign meanwhile: give a new --out folder"
                )
        (self.path / JOBS_FOLDER).mkdir(exist_ok=True)

    def done(self, job: Job, fingerprint: str, images: int) -> bool:
        path = self.job_file(job)
        if not path.is_file():
            return False
        try:
            self.load(job, fingerprint, images)
        except XnorfaultError:
            return False  # a damaged or foreign file: the job runs again and replaces it
        return True

    def save(self, job: Job, correct: np.ndarray, fingerprint: str) -> None:
        from xnorfault.io import atomic_write_text

        packed, count = _pack(correct)
        record = {
            "format": CAMPAIGN_FORMAT,
            "campaign": fingerprint,
            "job": job.to_dict(),
            "images": count,
            "correct": base64.b64encode(packed).decode("ascii"),
        }
        atomic_write_text(self.job_file(job), json.dumps(record) + "\n")

    def load(self, job: Job, fingerprint: str, images: int) -> np.ndarray:
        record = _read_json(self.job_file(job))
        if (
            record.get("campaign") != fingerprint
            or record.get("job") != job.to_dict()
            or record.get("images") != images
        ):
            raise XnorfaultError(f"{self.job_file(job)} belongs to another campaign or job")
        try:
            packed = base64.b64decode(record["correct"], validate=True)
        except (KeyError, TypeError, ValueError):
            raise XnorfaultError(f"{self.job_file(job)}: its results are damaged") from None
        if len(packed) != (images + 7) // 8:
            raise XnorfaultError(f"{self.job_file(job)}: its results are damaged")
        return _unpack(packed, images)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise XnorfaultError(f"cannot read {path}: {error}") from None
    if not isinstance(data, dict):
        raise XnorfaultError(f"{path} is not a JSON object")
    return data


def fingerprint(description: dict) -> str:
    """SHA-256 of a campaign's description (request, model and test-set digests)."""
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


__all__ = [
    "CampaignFolder",
    "Job",
    "JobExecutor",
    "JobRunner",
    "Plan",
    "file_digest",
    "fingerprint",
    "job_seed",
    "parse_shard",
    "plan_of",
    "point_key",
    "run_jobs",
    "shard_jobs",
]
