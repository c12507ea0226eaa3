"""Run records, read and merged without torch (plots and reports run on any machine)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from xnorfault.errors import XnorfaultError

RECORD_FORMAT = "xnorfault-run/1"


def read_json(path: Path) -> dict | None:
    """A JSON file's content, or ``None`` when it is absent or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None


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
    config = json.loads(config_path.read_text())
    points: dict[str, dict] = {}
    for path in sorted((folder / "jobs").glob("*/repeat-*.json")):
        job = read_json(path)
        if job is None:
            continue
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
