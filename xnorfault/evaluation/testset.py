"""Test sets for evaluation: a preprocessed ``.npz`` (``x``, ``y``; from ``xnorfault export
--testset``), read without pickles, or a dataset spec preprocessed as the model's metadata says
(that path needs torch, imported only there).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from xnorfault.data.labels import check_labels
from xnorfault.errors import XnorfaultError
from xnorfault.graph.contract import PREPROCESSING_KEY


def load_test_set(spec: str, backend, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Test images and labels: a preprocessed ``.npz`` (``x``, ``y``; from ``xnorfault export
    --testset``), or a dataset spec preprocessed as the model's metadata says (needs torch)."""
    if spec.endswith(".npz"):
        images, labels = read_test_npz(Path(spec))
    else:
        images, labels = _preprocess_dataset(spec, backend)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    check_labels(labels, None, "test labels")  # their range is checked against the model
    return images, labels.astype(np.int64)


def read_test_npz(path) -> tuple[np.ndarray, np.ndarray]:
    """Images ``x`` and labels ``y`` of a preprocessed test set, read without pickles; a
    missing, empty, truncated or foreign file is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise XnorfaultError(f"test set {path} not found")
    if path.stat().st_size == 0:
        raise XnorfaultError(
            f"test set {path} is empty (0 bytes): write it again with 'xnorfault export --testset'"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            if not hasattr(data, "files") or "x" not in data.files or "y" not in data.files:
                raise XnorfaultError(
                    f"{path} lacks the arrays x and y (write it with 'xnorfault export --testset')"
                )
            return data["x"], data["y"]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        if isinstance(error, XnorfaultError):
            raise
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise XnorfaultError(f"{path} is not a readable .npz file ({reason})") from None


def _preprocess_dataset(spec: str, backend) -> tuple[np.ndarray, np.ndarray]:
    preprocessing = backend.metadata.get(PREPROCESSING_KEY)
    if preprocessing is None:
        raise XnorfaultError(
            "this model carries no xnorfault preprocessing metadata: give the test set as a preprocessed .npz"
        )
    try:
        import torch
    except ImportError:
        raise XnorfaultError(
            f"reading the dataset {spec!r} needs the train extra (torch); on this machine pass the .npz written by 'xnorfault export --testset'"
        ) from None
    from xnorfault.data import load_dataset
    from xnorfault.training.runner import BatchMaker

    settings = json.loads(preprocessing)
    size = int(backend.input_shape[-1])
    dataset = load_dataset(spec, image_size=size)
    dataset.mean, dataset.std = settings["mean"], settings["std"]
    maker = BatchMaker(dataset, size, torch.device("cpu"))
    images, labels = [], []
    with torch.no_grad():
        for x, y in maker.batches(dataset.test, 512):
            images.append(x.numpy())
            labels.append(y.numpy())
    return np.concatenate(images).astype(np.float32), np.concatenate(labels)


__all__ = ["load_test_set", "read_test_npz"]
