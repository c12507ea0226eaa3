"""A campaign folder: shards of one evaluation run into one folder, each job saved as it
arrives; an interrupted shard resumes, and ``--merge`` assembles the result once every job is
there.

``campaign.json`` records everything that decides the jobs' results (:func:`campaign_description`:
the model and a file test set by path and SHA-256, the fault source, write model, repeats,
chips, seeds, batch size) under a fingerprint; a shard of another campaign is refused, and
``--merge DIR`` rebuilds the request from it (:func:`campaign_request`). Imports numpy only.
"""

from __future__ import annotations

import base64
import hashlib
import json
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from xnorfault.errors import XnorfaultError
from xnorfault.evaluation.executors import run_jobs
from xnorfault.evaluation.jobs import Job, JobRunner, pack_correct, plan_of, unpack_correct
from xnorfault.evaluation.request import EvaluationRequest
from xnorfault.evaluation.results import assemble
from xnorfault.io import atomic_create_text, atomic_write_text, named_few, strangers_in

CAMPAIGN_FORMAT = 1

CAMPAIGN_FILE = "campaign.json"

JOBS_FOLDER = "jobs"


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
        if self.path.exists() and not self.path.is_dir():
            raise XnorfaultError(f"--out {self.path} is a file: give a folder for the campaign")
        if self.description_file.is_file():
            existing = read_json(self.description_file)
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
            existing = read_json(self.description_file)
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
        packed, count = pack_correct(correct)
        record = {
            "format": CAMPAIGN_FORMAT,
            "campaign": fingerprint,
            "job": job.to_dict(),
            "images": count,
            "correct": base64.b64encode(packed).decode("ascii"),
        }
        atomic_write_text(self.job_file(job), json.dumps(record) + "\n")

    def load(self, job: Job, fingerprint: str, images: int) -> np.ndarray:
        record = read_json(self.job_file(job))
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
        return unpack_correct(packed, images)


def read_json(path: Path) -> dict:
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


def run_in_folder(request, test_runner, points, chips, progress) -> dict:
    """Run this shard's unfinished jobs into the campaign folder, each saved as it arrives;
    assemble the result when every job of the campaign is there, else say what is missing."""
    execution = request.execution
    folder = CampaignFolder(Path(execution.out))
    description = campaign_description(request)
    folder.claim(description)
    stamp = description["fingerprint"]
    count = len(test_runner.labels)
    plan = plan_of(
        points, request.repeats, chips, test_runner.backend.sites if request.per_layer else ()
    )
    jobs = plan.jobs()
    mine = [] if execution.merge else shard_jobs(jobs, *(execution.shard or (1, 1)))
    todo = [job for job in mine if not folder.done(job, stamp, count)]
    if todo:
        task = progress.add_task("evaluating", total=len(todo)) if progress else None
        with progress if progress is not None else nullcontext():
            run_jobs(
                todo,
                JobRunner(test_runner, points, chips),
                request,
                execution.workers,
                execution.executor,
                execution.address,
                (lambda: progress.advance(task)) if progress else None,
                lambda job, correct: folder.save(job, correct, stamp),
            )
    missing = [job for job in jobs if not folder.done(job, stamp, count)]
    summary = {
        "folder": str(folder.path),
        "jobs": len(jobs),
        "run_here": len(todo),
        "already_done": len(mine) - len(todo),
        "missing": len(missing),
        "shard": list(execution.shard) if execution.shard else None,
    }
    if missing:
        incomplete = sorted({job.point for job in missing})
        return {
            "campaign_incomplete": True,
            "campaign": summary
            | {"incomplete_points": ["baseline" if i < 0 else points[i].label for i in incomplete]},
        }
    outcomes = {job: folder.load(job, stamp, count) for job in jobs}
    result = assemble(
        points,
        outcomes,
        request.repeats,
        test_runner.backend.sites,
        chips,
        request.max_drop,
        request.per_layer,
    )
    result["test_images"] = count
    result["campaign"] = summary
    return result


def campaign_description(request: EvaluationRequest) -> dict:
    """What a campaign folder holds: everything that decides its jobs' results
    (:meth:`EvaluationRequest.to_dict`) under its fingerprint, and, apart, what only shapes the
    merged result (``max_drop``)."""
    jobs = request.to_dict()
    return {
        "format": CAMPAIGN_FORMAT,
        "jobs": jobs,
        "fingerprint": fingerprint(jobs),
        "max_drop": request.max_drop,
    }


def campaign_request(folder, given: EvaluationRequest) -> EvaluationRequest:
    """``evaluate --merge DIR``: the request a campaign folder recorded
    (:meth:`EvaluationRequest.from_dict`; checked: the description matches its fingerprint,
    the model file still has its digest), with the runtime threads and executor of ``given``."""
    path = Path(folder) / CAMPAIGN_FILE
    if not path.is_file():
        raise XnorfaultError(
            f"{folder} holds no {CAMPAIGN_FILE}: give the --out folder of a campaign"
        )
    description = read_json(path)
    jobs = description.get("jobs")
    if not isinstance(jobs, dict) or fingerprint(jobs) != description.get("fingerprint"):
        raise XnorfaultError(f"{path} is damaged (its fingerprint does not match its contents)")
    rebuilt = EvaluationRequest.from_dict(jobs, given)
    return replace(
        rebuilt,
        max_drop=given.max_drop if given.max_drop is not None else description.get("max_drop"),
        execution=replace(given.execution, out=Path(folder), merge=True),
    )


__all__ = [
    "CAMPAIGN_FILE",
    "CAMPAIGN_FORMAT",
    "CampaignFolder",
    "campaign_description",
    "campaign_request",
    "fingerprint",
    "read_json",
    "run_in_folder",
    "shard_jobs",
]
