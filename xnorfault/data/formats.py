"""Readers of the on-disk formats: MNIST IDX, CIFAR binary and python, SVHN .mat, images.

Every reader raises :class:`XnorfaultError` naming the file and what was expected when a file
is missing, truncated or not in the format.
"""

from __future__ import annotations

import gzip
import io
import math
import pickle
import struct
from pathlib import Path

import numpy as np

from xnorfault.errors import XnorfaultError

IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise XnorfaultError(f"cannot read {path}: {error.strerror}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as error:
            raise XnorfaultError(f"{path} is a corrupted gzip file ({error})") from None
    return raw


def read_idx(path: Path) -> np.ndarray:
    """An IDX array (MNIST format): magic 0x0000TTDD (type TT, DD dimensions), big-endian sizes."""
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise XnorfaultError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise XnorfaultError(f"{path} is truncated (IDX header)")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    # Python integers: a forged header (2^31 × 2^31 images) must not wrap around in int64
    expected = math.prod(shape) * dtype.itemsize
    if len(raw) - header != expected:
        raise XnorfaultError(
            f"{path} is truncated or padded: header says {shape} ({expected} bytes), found {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def find_file(folder: Path, names: list[str], what: str) -> Path:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise XnorfaultError(f"{what}: none of {', '.join(names)} found in {folder}")


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles only what the CIFAR python batches contain: dicts, lists, strings, numbers and
    numpy arrays. Any other global (which could run arbitrary code) is refused."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_cifar_python_batch(path: Path) -> dict:
    """A CIFAR python batch (pickled dict with bytes keys), loaded without arbitrary objects."""
    raw = _read_bytes(path)
    try:
        data = _ArraysOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
        raise XnorfaultError(f"{path} is not a CIFAR python batch ({error})") from None
    if not isinstance(data, dict):
        raise XnorfaultError(f"{path} is not a CIFAR python batch (no dict inside)")
    return {key.decode() if isinstance(key, bytes) else key: value for key, value in data.items()}


def read_cifar_binary(path: Path, label_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR binary records: ``label_bytes`` label bytes then 3×32×32 pixels; the last label byte
    is the class (CIFAR-100 stores coarse, fine)."""
    raw = _read_bytes(path)
    record = label_bytes + 3072
    if len(raw) == 0 or len(raw) % record:
        raise XnorfaultError(
            f"{path} is not a CIFAR binary file: {len(raw)} bytes is not a multiple of {record}"
        )
    table = np.frombuffer(raw, dtype=np.uint8).reshape(-1, record)
    return table[:, label_bytes:].reshape(-1, 3, 32, 32), table[:, label_bytes - 1].astype(np.int64)


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """SVHN cropped digits: ``X`` (32, 32, 3, N) uint8, ``y`` (N, 1) with 10 standing for 0."""
    from scipy.io import loadmat

    try:
        content = loadmat(str(path))
    except (OSError, ValueError, TypeError, IndexError, KeyError, EOFError) as error:
        raise XnorfaultError(
            f"{path} is not a MATLAB file with SVHN arrays X and y ({error})"
        ) from None
    if "X" not in content or "y" not in content:
        raise XnorfaultError(f"{path} lacks the SVHN arrays X and y")
    images = np.ascontiguousarray(np.transpose(content["X"], (3, 2, 0, 1))).astype(np.uint8)
    labels = content["y"].reshape(-1).astype(np.int64) % 10
    if images.shape[0] != labels.shape[0]:
        raise XnorfaultError(f"{path}: {images.shape[0]} images but {labels.shape[0]} labels")
    return images, labels


def read_image(path: Path, size: int, channels: int) -> np.ndarray:
    """An image file resized on its shorter side to ``size``·256/224 and centre-cropped to
    ``size`` (the usual ImageNet evaluation transform), as uint8 (C, size, size)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB")
            scale = size * 256 / 224 / min(image.size)
            resized = image.resize(
                (max(size, round(image.width * scale)), max(size, round(image.height * scale))),
                Image.Resampling.BILINEAR,
            )
            left = (resized.width - size) // 2
            top = (resized.height - size) // 2
            cropped = resized.crop((left, top, left + size, top + size))
            array = np.asarray(cropped, dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as error:
        raise XnorfaultError(f"cannot read image {path}: {error}") from None
    return array[None] if array.ndim == 2 else np.transpose(array, (2, 0, 1))
