"""Run records, read and merged without torch (plots and reports run on any machine)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from xnorfault.errors import XnorfaultError

RECORD_FORMAT = "xnorfault-run/1"


JOB_KEYS = ("point", "repeat", "status", "epochs", "fault_spec")


def read_json(path: Path) -> dict | None:
    """A JSON file's content, or ``None`` when it is absent or unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # ValueError: bad JSON, or bytes that are not UTF-8
        return None


def read_json_object(path: str | Path, what: str, mend: str) -> dict:
    """The JSON object in ``path``; a missing, unreadable or malformed file is a one-line
    error that names it, says ``what`` it should be and how to ``mend`` it."""
    from xnorfault.io import check_regular_file

    path = Path(path)
    check_regular_file(path, what)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise XnorfaultError(f"{path} is missing ({what}): {mend}") from None
    except OSError as error:
        raise XnorfaultError(f"cannot read {path}: {error.strerror}") from None
    except ValueError as error:
        raise XnorfaultError(f"{path} is not valid JSON ({what}; {error}): {mend}") from None
    if not isinstance(data, dict):
        raise XnorfaultError(f"{path} is not {what}: {mend}")
    return data


def _job_record(path: Path) -> dict:
    job = read_json_object(
        path, "a job record of xnorfault train", "delete it to recompute that job"
    )
    missing = [key for key in JOB_KEYS if key not in job]
    malformed = not isinstance(job.get("epochs", []), list) or not all(
        isinstance(epoch, dict) and "test_accuracy" in epoch for epoch in job.get("epochs", [])
    )
    if missing or malformed:
        detail = f"lacks {', '.join(missing)}" if missing else "has malformed epochs"
        raise XnorfaultError(
            f"{path} is not a job record of xnorfault train ({detail}): delete it to recompute that job"
        )
    return job


def load_record(folder: str | Path) -> dict:
    """The merged record of a run directory, rebuilt from its job records."""
    folder = Path(folder)
    if not folder.is_dir():
        raise XnorfaultError(f"run directory {folder} does not exist")
    record = build_record(folder)
    if not record["points"]:
        raise XnorfaultError(f"{folder} holds no completed epoch yet: train first")
    return record


def build_record(folder: Path) -> dict:
    """Merge every job record under ``folder`` into one run record with per-point summaries."""
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.exists():
        raise XnorfaultError(
            f"{folder} is not a run directory (no config.json): give the --out folder of a training run"
        )
    config = read_json_object(
        config_path,
        "the settings of a training run",
        "restore it, or train into a new --out folder",
    )
    if not isinstance(config.get("config"), dict):
        raise XnorfaultError(
            f"{config_path} lacks the run settings ('config'): restore it, or train into a new --out folder"
        )
    points: dict[str, dict] = {}
    for path in sorted((folder / "jobs").glob("*/repeat-*.json")):
        job = _job_record(path)
        point = points.setdefault(
            job["point"],
            {
                "point": job["point"],
                "ber": job.get("ber"),
                "fault_spec": job["fault_spec"],
                "repeats": [],
            },
        )
        point["repeats"].append(job)
    summary = []
    for point in points.values():
        point["repeats"].sort(key=lambda job: job["repeat"])
        complete = [job for job in point["repeats"] if job["status"] == "complete"]
        finals = [job["epochs"][-1]["test_accuracy"] for job in complete]
        point["complete_repeats"] = len(complete)
        point["final_test_accuracy_mean"] = float(np.mean(finals)) if finals else None
        point["final_test_accuracy_std"] = (
            float(np.std(finals, ddof=1)) if len(finals) > 1 else (0.0 if finals else None)
        )
        summary.append(point)
    summary.sort(
        key=lambda p: (p["ber"] is None, p["ber"] if p["ber"] is not None else 0.0, p["point"])
    )
    return {"format": RECORD_FORMAT, "config": config["config"], "points": summary}
