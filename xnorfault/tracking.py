"""Run tracking: ``train --log tensorboard|mlflow`` and ``evaluate --log mlflow``.

A tracker mirrors what xnorfault records — the JSON run records and evaluation results stay the
source of truth — into the tools ML researchers watch runs in:

- **TensorBoard** (``tensorboard``): one event folder per job, ``RUN/tensorboard/POINT/repeat-R``,
  with the per-epoch scalars ``train_loss``, ``train_accuracy``, ``test_accuracy`` (error-free),
  ``learning_rate`` (and ``test_accuracy_faulty`` with ``--test-ber``), the configuration and
  fault spec as hyperparameters, and ``RUN/tensorboard/summary`` with the accuracy-vs-epoch
  figure. ``tensorboard --logdir RUN/tensorboard`` shows them.
- **MLflow** (``mlflow``): an experiment named after the run folder (or ``MLFLOW_EXPERIMENT_NAME``)
  in the tracking store ``MLFLOW_TRACKING_URI``, by default ``sqlite:///RUN/mlflow.db`` with
  artefacts under ``RUN/mlartifacts``; one MLflow run per job (tags ``xnorfault.point`` and
  ``xnorfault.repeat``) with the same metrics per epoch (step = epoch) and the configuration and
  fault spec as parameters, and a summary run with the figure and ``record.json``. Each point of
  ``evaluate --log mlflow`` is one step of the metrics of an MLflow run of the sweep.

A resumed job continues its own tracking (only the epochs it adds are logged). The trackers need
the optional extras ``tensorboard`` (the ``tensorboard`` package, written through torch) and
``mlflow`` (``mlflow-skinny`` with SQLAlchemy for its SQLite store); a missing one is a one-line
error before any training.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

from xnorfault.errors import XnorfaultError

TRACKERS = ("tensorboard", "mlflow")
METRICS = ("train_loss", "train_accuracy", "test_accuracy", "test_accuracy_faulty", "learning_rate")


def parse_trackers(values) -> tuple[str, ...]:
    """``--log`` values (repeatable, or comma-separated) as tracker names, checked."""
    names: list[str] = []
    for value in values or ():
        for name in str(value).split(","):
            name = name.strip().lower()
            if not name:
                continue
            if name not in TRACKERS:
                raise XnorfaultError(
                    f"unknown --log {name!r}: use {' or '.join(TRACKERS)} (e.g. --log tensorboard)"
                )
            if name not in names:
                names.append(name)
    return tuple(names)


def check_available(values) -> tuple[str, ...]:
    """The tracker names of ``--log``, each checked to be installed — a one-line error before
    any folder is touched or any training starts."""
    names = parse_trackers(values)
    for name, module, extra in (
        ("tensorboard", "tensorboard", "tensorboard"),
        ("mlflow", "mlflow", "mlflow"),
    ):
        if name in names:
            try:
                __import__(module)
            except ImportError:
                raise XnorfaultError(
                    f"--log {name} needs the {module} package: pip install 'xnorfault[{extra}]'"
                ) from None
    return names


def _flat(prefix: str, value, out: dict) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flat(f"{prefix}.{key}" if prefix else str(key), inner, out)
    elif isinstance(value, list | tuple):
        out[prefix] = json.dumps(value)
    else:
        out[prefix] = value


def job_parameters(config: dict, fault_spec: dict, point: str, repeat: int) -> dict:
    """The hyperparameters of one job, flattened (``config.epochs``, ``fault.source.ber``, …)."""
    flat: dict = {"point": point, "repeat": repeat}
    _flat("config", config, flat)
    _flat("fault", fault_spec, flat)
    return {key: ("none" if value is None else value) for key, value in flat.items()}


class _TensorBoard:
    def __init__(self, folder: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise XnorfaultError(
                "--log tensorboard needs the tensorboard package: pip install 'xnorfault[tensorboard]'"
            ) from None
        self._writer_class = SummaryWriter
        self.root = folder / "tensorboard"
        self.writer = None
        self.parameters: dict = {}

    def start_job(self, point: str, repeat: int, parameters: dict, done: list[dict]) -> None:
        from xnorfault.training.runner import point_folder_name

        self.writer = self._writer_class(
            str(self.root / point_folder_name(point) / f"repeat-{repeat}")
        )
        self.parameters = parameters
        if not done:
            self.writer.add_text("config", f"```\n{json.dumps(parameters, indent=1)}\n```", 0)

    def log_epoch(self, metrics: dict) -> None:
        for name in METRICS:
            if name in metrics:
                self.writer.add_scalar(name, metrics[name], metrics["epoch"])
        self.writer.flush()

    def end_job(self, record: dict) -> None:
        if record["status"] == "complete" and record["epochs"]:
            last = record["epochs"][-1]
            hparams = {
                k: v if isinstance(v, int | float | str | bool) else str(v)
                for k, v in self.parameters.items()
            }
            self.writer.add_hparams(
                hparams,
                {"hparam/final_test_accuracy": last["test_accuracy"]},
                run_name=".",
            )
        self.writer.close()
        self.writer = None

    def finish(self, record: dict, figure: Path | None) -> None:
        if figure is None:
            return
        import matplotlib.image

        image = matplotlib.image.imread(str(figure))[..., :3]
        writer = self._writer_class(str(self.root / "summary"))
        writer.add_image("accuracy_vs_epoch", image, 0, dataformats="HWC")
        writer.close()


class _QuietClient:
    """An MLflow client whose calls hide one warning of MLflow's own (its SQLAlchemy queries
    use a loader SQLAlchemy 2.1 deprecates: not the user's concern), for the call alone: the
    process's warning filters stay as they were."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name: str):
        method = getattr(self._client, name)

        def quietly(*args, **kwargs):
            with warnings.catch_warnings():
                warnings.filterwarnings(
                    "ignore", message=r"The ``noload`` loader strategy is deprecated"
                )
                return method(*args, **kwargs)

        return quietly


def _mlflow_client(folder: Path):
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise XnorfaultError("--log mlflow needs MLflow: pip install 'xnorfault[mlflow]'") from None
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(folder / 'mlflow.db').resolve()}"
    client = _QuietClient(MlflowClient(tracking_uri=uri))
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or f"xnorfault/{folder.resolve().name}"
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        experiment_id = client.create_experiment(
            name, artifact_location=(folder / "mlartifacts").resolve().as_uri()
        )
    else:
        experiment_id = experiment.experiment_id
    return client, experiment_id, uri


class _MLflow:
    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.client, self.experiment_id, self.uri = _mlflow_client(folder)
        self.run_id = None

    def _find(self, tags: dict) -> str | None:
        query = " and ".join(f"tags.`{key}` = '{value}'" for key, value in tags.items())
        runs = self.client.search_runs([self.experiment_id], filter_string=query, max_results=1)
        return runs[0].info.run_id if runs else None

    def start_job(self, point: str, repeat: int, parameters: dict, done: list[dict]) -> None:
        tags = {"xnorfault.point": point, "xnorfault.repeat": str(repeat)}
        self.run_id = self._find(tags)
        if self.run_id is None:
            run = self.client.create_run(
                self.experiment_id, run_name=f"{point} repeat {repeat}", tags=tags
            )
            self.run_id = run.info.run_id
            for key, value in parameters.items():
                self.client.log_param(self.run_id, key, str(value)[:6000])
        else:
            self.client.update_run(self.run_id, status="RUNNING")

    def log_epoch(self, metrics: dict) -> None:
        for name in METRICS:
            if name in metrics:
                self.client.log_metric(
                    self.run_id, name, float(metrics[name]), step=metrics["epoch"]
                )

    def end_job(self, record: dict) -> None:
        status = "FINISHED" if record["status"] == "complete" else "KILLED"
        self.client.set_terminated(self.run_id, status=status)
        self.run_id = None

    def finish(self, record: dict, figure: Path | None, record_path: Path | None = None) -> None:
        tags = {"xnorfault.summary": "true"}
        run_id = (
            self._find(tags)
            or self.client.create_run(self.experiment_id, run_name="summary", tags=tags).info.run_id
        )
        if figure is not None:
            self.client.log_artifact(run_id, str(figure))
        if record_path is not None and record_path.exists():
            self.client.log_artifact(run_id, str(record_path))
        self.client.set_terminated(run_id)


class TrainingTracker:
    """The trackers of one training run (``train --log``), fed by the runner on the main
    process: :meth:`start_job`, :meth:`log_epoch` after every epoch, :meth:`end_job`, and
    :meth:`finish` with the run's record and figure."""

    def __init__(self, folder: str | Path, names) -> None:
        self.folder = Path(folder)
        self.names = parse_trackers(names)
        self.backends = []
        self.jobs_started = 0
        for name in self.names:
            self.backends.append(
                _TensorBoard(self.folder) if name == "tensorboard" else _MLflow(self.folder)
            )

    def start_job(self, point: str, repeat: int, config: dict, fault_spec: dict, done) -> None:
        parameters = job_parameters(config, fault_spec, point, repeat)
        self.jobs_started += 1
        for backend in self.backends:
            backend.start_job(point, repeat, parameters, list(done))

    def log_epoch(self, metrics: dict) -> None:
        for backend in self.backends:
            backend.log_epoch(metrics)

    def end_job(self, record: dict) -> None:
        for backend in self.backends:
            backend.end_job(record)

    def finish(self, record: dict) -> None:
        """The run's figure (and, for MLflow, its record) once jobs ran in this invocation."""
        if not self.backends or not self.jobs_started:
            return
        import tempfile

        from xnorfault.plots import plot_accuracy_vs_epoch

        with tempfile.TemporaryDirectory() as scratch:
            figure = Path(scratch) / "accuracy_vs_epoch.png"
            plot_accuracy_vs_epoch(record, figure)
            for backend in self.backends:
                if isinstance(backend, _MLflow):
                    backend.finish(record, figure, self.folder / "record.json")
                else:
                    backend.finish(record, figure)


def log_evaluation_to_mlflow(result: dict, folder: str | Path, name: str | None = None) -> str:
    """One MLflow run for an evaluation (``evaluate --log mlflow``): the setup as parameters,
    each sweep point as one step (0, 1, …) of the metrics ``accuracy_mean``, ``ci95_low``,
    ``ci95_high``, ``accuracy_drop``, ``p_flip_pos_to_neg``, ``p_flip_neg_to_pos`` and, for a
    voltage sweep, ``voltage``, ``write_energy``; the result JSON as an artefact. Returns the
    MLflow run id."""
    import tempfile

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    client, experiment_id, _ = _mlflow_client(folder)
    model = Path(result.get("backend", {}).get("model") or "model").name
    run = client.create_run(
        experiment_id, run_name=name or f"evaluate {model}", tags={"xnorfault.evaluation": model}
    )
    run_id = run.info.run_id
    client.log_param(run_id, "model", model)
    client.log_param(run_id, "test_images", result.get("test_images"))
    client.log_metric(run_id, "baseline_accuracy", float(result["baseline_accuracy"]))
    for step, point in enumerate(result["points"]):
        values = {
            "accuracy_mean": point["accuracy_mean"],
            "ci95_low": point["ci95"][0],
            "ci95_high": point["ci95"][1],
            "accuracy_drop": point["accuracy_drop"],
            "p_flip_pos_to_neg": point.get("p_flip_pos_to_neg"),
            "p_flip_neg_to_pos": point.get("p_flip_neg_to_pos"),
            "voltage": point.get("voltage"),
            "ber": point.get("ber"),
            "write_energy": point.get("write_energy"),
        }
        for key, value in values.items():
            if value is not None:
                client.log_metric(run_id, key, float(value), step=step)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "evaluation.json"
        path.write_text(json.dumps(result, indent=1))
        client.log_artifact(run_id, str(path))
    client.set_terminated(run_id)
    return run_id
