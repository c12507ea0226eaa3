"""Training runs: sweeps over fault specs × repeats, per-epoch error-free test accuracy,
atomic checkpoints and records, and resumption after an interruption.

Run directory::

    runs/NAME/config.json                      settings shared by every job of the run
    runs/NAME/jobs/<point>/repeat-<r>.json      one record per (fault point, repeat): per-epoch metrics
    runs/NAME/jobs/<point>/repeat-<r>.pt        checkpoint after the last completed epoch
    runs/NAME/record.json                       everything merged, rewritten after every epoch

Each repeat re-initialises model and optimiser (the paper's code did not). Randomness is
re-seeded at every epoch from (run seed, repeat, epoch), so a run resumed from the checkpoint of
epoch k continues exactly as the uninterrupted run would have, bit for bit.
"""

from __future__ import annotations

import json
import math
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from xnorfault import __version__
from xnorfault.data import Dataset
from xnorfault.errors import XnorfaultError
from xnorfault.faults import FaultPoint, FaultSpec
from xnorfault.io import (
    atomic_create_text,
    atomic_write,
    atomic_write_json,
    folder_lock,
    json_text,
    named_few,
    remove_stale_temporaries,
    strangers_in,
)
from xnorfault.models import create_model, model_info
from xnorfault.models.layers import BinaryConv2d, BinaryLinear
from xnorfault.training.checkpoint import load_checkpoint
from xnorfault.training.faults import configure_faults
from xnorfault.training.records import RECORD_FORMAT, build_record, read_json


@dataclass
class TrainConfig:
    """Settings shared by every job of a run (what must match when a run is resumed)."""

    model: str = "lenet4"
    data: str = "digits"
    epochs: int = 1
    seed: int = 1
    batch_size: int = 128
    learning_rate: float | None = None
    weight_decay: float | None = None
    milestones: list[int] | None = None
    gradient: str = "straight_through"
    weight_scaling: str = "channel"
    input_size: int | None = None
    limit_train: int | None = None
    limit_test: int | None = None
    test_fault: dict | None = None
    data_options: dict = field(default_factory=dict)
    # the activation write model (xnorfault.faults.WriteModel.to_dict); None: iid, as runs
    # made before write models were
    write_model: dict | None = None

    def resolved(self) -> TrainConfig:
        """Fill optimiser settings from the model's paper defaults."""
        info = model_info(self.model)
        config = TrainConfig(**asdict(self))
        if config.learning_rate is None:
            config.learning_rate = info.learning_rate
        if config.weight_decay is None:
            config.weight_decay = info.weight_decay
        if config.milestones is None:
            # the paper's milestones scaled to the number of epochs asked for
            config.milestones = [
                m * config.epochs // info.epochs
                for m in info.milestones
                if m * config.epochs // info.epochs > 0
            ]
        return config


def point_folder_name(label: str) -> str:
    return "".join(c if c.isalnum() or c in "=.-_+" else "_" for c in label)


def versions() -> dict:
    import brevitas

    return {
        "xnorfault": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "brevitas": brevitas.__version__,
        "numpy": np.__version__,
    }


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise XnorfaultError(
            "--torch-device cuda asked for, but no CUDA device is available: use --torch-device cpu or auto"
        )
    try:
        return torch.device(name)
    except RuntimeError:
        raise XnorfaultError(f"unknown device {name!r}: use auto, cpu or cuda[:N]") from None


def _seed(*values: int) -> int:
    return int(
        np.random.SeedSequence([int(v) for v in values]).generate_state(1, dtype=np.uint64)[0] >> 1
    )


class Distributed:
    """This process's place in a torchrun job (a single process: rank 0 of 1).

    Data-parallel training with PyTorch's DistributedDataParallel: gloo on CPUs, NCCL on GPUs.
    Only rank 0 writes checkpoints, records and progress bars.
    """

    def __init__(
        self, rank: int = 0, world_size: int = 1, local_rank: int = 0, sync_batch_norm: bool = False
    ):
        self.rank, self.world_size, self.local_rank = rank, world_size, local_rank
        self.sync_batch_norm = sync_batch_norm

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_environment(cls, device: torch.device, sync_batch_norm: bool = False) -> Distributed:
        """Join the process group that torchrun describes in the environment, if any."""
        import os

        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            if sync_batch_norm:
                raise XnorfaultError(
                    "--sync-bn synchronises batch norm across torchrun processes: run under torchrun"
                )
            return cls()
        import torch.distributed as torch_dist

        if sync_batch_norm and device.type != "cuda":
            raise XnorfaultError("--sync-bn needs CUDA (PyTorch's SyncBatchNorm runs on GPUs only)")
        if not torch_dist.is_initialized():
            torch_dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        return cls(
            torch_dist.get_rank(),
            torch_dist.get_world_size(),
            int(os.environ.get("LOCAL_RANK", "0")),
            sync_batch_norm,
        )

    def device(self, requested: torch.device) -> torch.device:
        """One GPU per process: cuda:LOCAL_RANK under torchrun."""
        if requested.type == "cuda" and self.world_size > 1:
            return torch.device("cuda", self.local_rank)
        return requested

    def rank_seed(self, epoch_seed: int, stream: int) -> int:
        return _seed(epoch_seed, stream) if self.rank == 0 else _seed(epoch_seed, stream, self.rank)

    def wrap(self, network, device: torch.device):
        if self.world_size <= 1:
            return network
        from torch.nn.parallel import DistributedDataParallel

        if self.sync_batch_norm:
            network = torch.nn.SyncBatchNorm.convert_sync_batchnorm(network)
        return DistributedDataParallel(
            network, device_ids=[device.index] if device.type == "cuda" else None
        )

    def all_reduce_sum(self, tensor: torch.Tensor) -> None:
        if self.world_size > 1:
            import torch.distributed as torch_dist

            torch_dist.all_reduce(tensor, op=torch_dist.ReduceOp.SUM)

    def barrier(self) -> None:
        if self.world_size > 1:
            import torch.distributed as torch_dist

            torch_dist.barrier()


class BatchMaker:
    """Normalised float batches from a dataset split, resized to the model's input size."""

    def __init__(self, dataset: Dataset, input_size: int, device: torch.device):
        self.dataset = dataset
        self.input_size = input_size
        self.device = device
        self.mean = torch.tensor(dataset.mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(dataset.std, dtype=torch.float32, device=device).view(1, -1, 1, 1)

    def prepare(self, images: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(images)).to(self.device, torch.float32) / 255.0
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(
                x,
                size=(self.input_size, self.input_size),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
        return (x - self.mean) / self.std

    def batches(
        self,
        split,
        batch_size: int,
        order: np.ndarray | None = None,
        rank: int = 0,
        world_size: int = 1,
    ):
        """Batches of ``split`` in ``order``; with ``world_size`` > 1, each global batch of
        ``batch_size`` is dealt out and this rank gets every ``world_size``-th image from ``rank``."""
        indices = np.arange(len(split)) if order is None else order
        for start in range(0, len(indices), batch_size):
            chosen = indices[start : start + batch_size][rank::world_size]
            if len(chosen) == 0:
                continue
            images = self.dataset.load_images(split, self.input_size, chosen)
            labels = torch.from_numpy(split.labels[chosen]).to(self.device)
            yield self.prepare(images), labels


def evaluate_accuracy(model, maker: BatchMaker, split, batch_size: int) -> float:
    """Fraction of ``split`` classified correctly (flips follow the modules' eval settings)."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in maker.batches(split, batch_size):
            correct += int((model(x).argmax(dim=1) == y).sum())
    return correct / max(len(split), 1)


def _clamp_binary_weights(model) -> None:
    """Keep the real-valued weights of binary layers in [-1, 1] (XNOR-Net reference code)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, BinaryConv2d | BinaryLinear):
                module.weight.clamp_(-1.0, 1.0)


class Run:
    """A run directory: configuration, jobs, merged record."""

    def __init__(
        self,
        folder: Path,
        config: TrainConfig,
        dataset: Dataset,
        points: list[FaultPoint],
        repeats: int,
        device: torch.device,
        dist: Distributed | None = None,
        shard: tuple[int, int] = (0, 1),
        tracker=None,
    ):
        self.folder = Path(folder)
        # xnorfault.tracking.TrainingTracker (train --log): fed on the main process only
        self.tracker = tracker
        self.dist = dist or Distributed()
        self.shard = shard
        if config.batch_size % self.dist.world_size:
            raise XnorfaultError(
                f"--batch-size {config.batch_size} is the global batch: make it a multiple of the {self.dist.world_size} processes"
            )
        self.config = config.resolved()
        self.dataset = dataset
        self.points = points
        self.repeats = repeats
        self.device = device
        info = model_info(config.model)
        native = dataset.image_size
        self.input_size = config.input_size or (
            info.nominal_input_size if dataset.name == "digits" else native
        )
        self.train_split = dataset.train.subset(config.limit_train, seed=0)
        self.test_split = dataset.test.subset(config.limit_test, seed=0)

    # --- files ---------------------------------------------------------------------------

    def job_paths(self, point: FaultPoint, repeat: int) -> tuple[Path, Path]:
        base = self.folder / "jobs" / point_folder_name(point.label)
        return base / f"repeat-{repeat}.json", base / f"repeat-{repeat}.pt"

    def prepare_folder(self) -> None:
        """Create the folder, or check that an existing one was made with the same settings."""
        self.build_model()  # an input too small for the architecture fails here, before any file
        sites = model_info(self.config.model).activation_sites
        for point in self.points:
            point.spec.check_sites(sites)
        config_path = self.folder / "config.json"
        if self.folder.is_dir():
            self._refuse_a_folder_of_other_files(config_path)
            remove_stale_temporaries(self.folder)
        current = {"format": RECORD_FORMAT, "config": asdict(self.config)}
        # shards may start together on a new folder: the first to create config.json claims it
        # (an exclusive create) and every other one compares its settings with the winner's
        if config_path.exists() or not atomic_create_text(config_path, json_text(current)):
            try:
                previous = json.loads(config_path.read_text())
            except (OSError, json.JSONDecodeError) as error:
                raise XnorfaultError(
                    f"{config_path} is unreadable ({error}); move the folder aside or use another --out"
                ) from None
            differing = sorted(
                k
                for k in current["config"]
                if previous.get("config", {}).get(k) != current["config"][k]
            )
            if differing:
                raise XnorfaultError(
                    f"{self.folder} holds a run with other settings (different {', '.join(differing)}): "
                    "use another --out, or the same settings to resume"
                )
            build_record(self.folder)  # a damaged job record is reported before any training

    def _refuse_a_folder_of_other_files(self, config_path: Path) -> None:
        """A run folder is new, empty, or holds this run's ``config.json``: a folder of files
        xnorfault did not write (a training run writes ``config.json`` before anything else) is
        never written into. Another shard's temporary of ``config.json`` is the run's."""
        if config_path.exists():
            return
        strangers = strangers_in(self.folder, config_path.name)
        # a shard starting meanwhile writes config.json before its other files
        if strangers and not config_path.exists():
            raise XnorfaultError(
                f"{self.folder} is not empty and holds no {config_path.name} "
                f"({named_few(strangers)}): give a new or empty --out folder"
            )

    def build_model(self):
        return create_model(
            self.config.model,
            num_classes=self.dataset.num_classes,
            in_channels=self.dataset.channels,
            input_size=self.input_size,
            weight_scaling=self.config.weight_scaling,
        )

    # --- one job -------------------------------------------------------------------------

    def run_job(self, point: FaultPoint, repeat: int, progress=None) -> dict:
        record_path, checkpoint_path = self.job_paths(point, repeat)
        record = read_json(record_path)  # unreadable or absent: (re)computed
        if record is not None and record.get("status") == "complete":
            return record
        config, dist = self.config, self.dist
        init_seed = _seed(config.seed, repeat)
        torch.manual_seed(init_seed)
        network = self.build_model().to(self.device)
        point.spec.check_sites(list(network.activation_sites))
        optimizer = torch.optim.Adam(
            network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=config.milestones or [], gamma=0.1
        )
        epochs_done: list[dict] = []
        if checkpoint_path.exists():
            # the checkpoint carries the metrics of the epochs it holds: it is the truth on
            # resume, whatever a kill left in the record file
            state = load_checkpoint(checkpoint_path, map_location=self.device)
            try:
                network.load_state_dict(state["model"])
                optimizer.load_state_dict(state["optimizer"])
                scheduler.load_state_dict(state["scheduler"])
            except (KeyError, TypeError, ValueError, RuntimeError) as error:
                raise XnorfaultError(
                    f"checkpoint {checkpoint_path} does not belong to this run "
                    f"({type(error).__name__}): move it aside to retrain that job"
                ) from None
            if "epochs" in state:
                epochs_done = list(state["epochs"])
            else:  # checkpoints of earlier versions kept the metrics in the record only
                epochs_done = list((record or {}).get("epochs", []))[: state["epochs_completed"]]
        model = dist.wrap(network, self.device)
        record = {
            "point": point.label,
            "ber": point.ber,
            "repeat": repeat,
            "seed": init_seed,
            "fault_spec": point.spec.to_dict(),
            "world_size": dist.world_size,
            "status": "complete" if len(epochs_done) >= config.epochs else "incomplete",
            "epochs": epochs_done,
        }
        tracker = self.tracker if dist.is_main else None
        if tracker is not None:
            tracker.start_job(
                point.label, repeat, asdict(config), point.spec.to_dict(), epochs_done
            )
        maker = BatchMaker(self.dataset, self.input_size, self.device)
        test_spec = FaultSpec.from_dict(config.test_fault) if config.test_fault else None
        for epoch in range(len(epochs_done), config.epochs):
            started = time.perf_counter()
            epoch_seed = _seed(config.seed, repeat, epoch)
            # each rank draws its own dropout and flip masks; rank 0 matches a single process
            torch.manual_seed(dist.rank_seed(epoch_seed, 0))
            flips = torch.Generator(device=self.device).manual_seed(dist.rank_seed(epoch_seed, 1))
            order = np.random.default_rng(_seed(epoch_seed, 2)).permutation(len(self.train_split))
            configure_faults(network, point.spec, epoch, flips, config.gradient)
            model.train()
            totals = torch.zeros(
                3, dtype=torch.float64, device=self.device
            )  # loss sum, correct, seen
            batches = math.ceil(len(self.train_split) / config.batch_size)
            task = (
                progress.add_task(
                    f"{point.label} r{repeat} epoch {epoch + 1}/{config.epochs}", total=batches
                )
                if progress
                else None
            )
            for x, y in maker.batches(
                self.train_split, config.batch_size, order, dist.rank, dist.world_size
            ):
                optimizer.zero_grad(set_to_none=True)
                logits = model(x)
                loss = F.cross_entropy(logits, y)
                loss.backward()
                optimizer.step()
                _clamp_binary_weights(network)
                totals += torch.tensor(
                    [loss.item() * len(y), int((logits.argmax(dim=1) == y).sum()), len(y)],
                    dtype=torch.float64,
                    device=self.device,
                )
                if progress:
                    progress.advance(task)
            if progress:
                progress.remove_task(task)
            dist.all_reduce_sum(totals)
            learning_rate = optimizer.param_groups[0]["lr"]
            scheduler.step()
            if dist.is_main:  # rank 0's batch-norm statistics are the record's
                loss_sum, correct, seen = totals.tolist()
                metrics = {
                    "epoch": epoch + 1,
                    "train_loss": loss_sum / max(seen, 1),
                    "train_accuracy": correct / max(seen, 1),
                    "test_accuracy": evaluate_accuracy(network, maker, self.test_split, 512),
                    "learning_rate": learning_rate,
                    "seconds": time.perf_counter() - started,
                }
                if test_spec is not None:
                    test_flips = torch.Generator(device=self.device).manual_seed(
                        _seed(epoch_seed, 3)
                    )
                    configure_faults(
                        network, test_spec, None, test_flips, config.gradient, flip_in_eval=True
                    )
                    metrics["test_accuracy_faulty"] = evaluate_accuracy(
                        network, maker, self.test_split, 512
                    )
                    configure_faults(network, point.spec, epoch, flips, config.gradient)
                record["epochs"].append(metrics)
                if tracker is not None:
                    tracker.log_epoch(metrics)
                if epoch + 1 == config.epochs:
                    record["status"] = "complete"
                state = {
                    "model": network.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "epochs_completed": epoch + 1,
                    "epochs": record["epochs"],
                    "model_config": network.config(),
                }
                atomic_write(checkpoint_path, lambda handle, s=state: torch.save(s, handle))
                atomic_write_json(record_path, record)
                self.write_summary()
            dist.barrier()
        if dist.is_main and record["status"] == "complete" and read_json(record_path) != record:
            atomic_write_json(
                record_path, record
            )  # killed after the last checkpoint, before its record
            self.write_summary()
        if tracker is not None:
            tracker.end_job(record)
        return record

    # --- whole run -----------------------------------------------------------------------

    def jobs(self) -> list[tuple[FaultPoint, int]]:
        """This process's (point, repeat) jobs: every one, or every N-th from I with ``shard``."""
        index, count = self.shard
        everything = [(point, repeat) for point in self.points for repeat in range(self.repeats)]
        return everything[index::count]

    def run(self, progress=None) -> dict:
        if self.dist.is_main:
            self.prepare_folder()
        self.dist.barrier()
        for point, repeat in self.jobs():
            self.run_job(point, repeat, progress if self.dist.is_main else None)
        if not self.dist.is_main:
            return build_record(self.folder)
        record = self.write_summary()
        if self.tracker is not None:
            self.tracker.finish(record)
        return record

    def write_summary(self) -> dict:
        """Merge every job record into ``record.json``. A lock serialises the merges of shards
        writing into one folder, so the last merge sees every job written before it."""
        with folder_lock(self.folder):
            record = build_record(self.folder)
            record["data"] = self.dataset.describe()
            record["input_size"] = self.input_size
            record["train_size"] = len(self.train_split)
            record["test_size"] = len(self.test_split)
            record["versions"] = versions()
            record["device"] = str(self.device)
            record["world_size"] = self.dist.world_size
            atomic_write_json(self.folder / "record.json", record)
        return record
