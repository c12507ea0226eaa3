"""The test-set runner: a backend over a test set in batches, each batch run with its own flip
seed. Imports numpy only (plus the backend's runtime).
"""

from __future__ import annotations

import math

import numpy as np

from xnorfault.data.labels import check_labels
from xnorfault.errors import XnorfaultError
from xnorfault.faults import FlipRates
from xnorfault.graph.generator import run_seed


class TestSetRunner:
    """Runs a backend over a test set; every batch run gets the next seed of the campaign."""

    def __init__(
        self,
        backend,
        images: np.ndarray,
        labels: np.ndarray,
        seed: int,
        batch_size: int = 256,
        labels_source: str = "test labels",
    ):
        check_inputs(images, labels)
        images = backend.conform(images)
        # one image through the model before the long work: it runs at all, and its output
        # width is the number of classes the labels must index
        num_classes = int(np.asarray(backend.run(images[:1], {}, 0)).shape[-1])
        check_labels(labels, num_classes, labels_source)
        self.backend = backend
        self.images = images
        self.labels = labels
        self.seed = seed
        self.batch_size = batch_size
        self.counter = 0

    def accuracy(self, rates: dict[str, FlipRates]) -> float:
        return float(self.correct(rates).mean())

    def correct(self, rates: dict[str, FlipRates], seed: int | None = None) -> np.ndarray:
        """Whether each test image is classified right in one run under ``rates`` (bool).
        With ``seed`` (a job's, :func:`xnorfault.evaluation.jobs.job_seed`) batch b runs with
        :func:`run_seed` (seed, b); without, each batch takes the campaign's next seed."""
        hits = []
        for index, start in enumerate(range(0, len(self.labels), self.batch_size)):
            batch_seed = self.next_seed() if seed is None else run_seed(seed, index)
            logits = self.backend.run(
                self.images[start : start + self.batch_size], rates, batch_seed
            )
            hits.append(logits.argmax(axis=1) == self.labels[start : start + self.batch_size])
        return np.concatenate(hits)

    def next_seed(self) -> int:
        """The flip seed of the campaign's next batch run."""
        seed = run_seed(self.seed, self.counter)
        self.counter += 1
        return seed

    def latency(
        self, rates: dict[str, FlipRates], batch: int, iterations: int, warmup: int = 3
    ) -> dict:
        """Latency of batches of ``batch`` test images (repeated when the test set is
        smaller): the deployed model's own (the graph without flips) and, side by side, the
        simulation's overhead under ``rates``, each simulated run with the campaign's next seed
        (:meth:`~xnorfault.runtimes.base.Backend.model_latency`)."""
        reps = math.ceil(batch / len(self.images))
        images = np.concatenate([self.images] * reps)[:batch] if reps > 1 else self.images[:batch]
        return self.backend.model_latency(images, rates, iterations, self.next_seed, warmup)


def check_inputs(images: np.ndarray, labels: np.ndarray) -> None:
    """The test set itself, with a clear error: at least one image, one label per image, no
    NaN or infinite pixel (its fit to the model's input is the backend's
    :meth:`~xnorfault.runtimes.base.Backend.conform`)."""
    if images.shape[:1] == (0,) or labels.size == 0:
        raise XnorfaultError("the test set holds no images: give at least one image and label")
    if images.ndim < 2:
        raise XnorfaultError(
            f"test images x have shape {images.shape}: expected one image per row (N, C, H, W)"
        )
    if labels.shape != (images.shape[0],):
        raise XnorfaultError(f"{images.shape[0]} test images but labels of shape {labels.shape}")
    if not np.issubdtype(images.dtype, np.number):
        raise XnorfaultError(f"test images are {images.dtype}: give numbers (float32 or uint8)")
    finite = np.isfinite(images).all(axis=tuple(range(1, images.ndim)))
    if not finite.all():
        bad = np.flatnonzero(~finite)
        shown = ", ".join(str(i) for i in bad[:5]) + (", …" if bad.size > 5 else "")
        raise XnorfaultError(
            f"test images {shown} hold NaN or infinite pixels ({bad.size} of {len(images)}): mend or drop them"
        )


__all__ = ["TestSetRunner", "check_inputs"]
