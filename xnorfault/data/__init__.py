"""Datasets for training and evaluation. Nothing is ever downloaded.

``load_dataset("digits")`` and friends return a :class:`Dataset` of uint8 images (N, C, H, W)
and int64 labels, with the class names and the per-channel mean and standard deviation of the
training split (used for normalisation here and recorded for deployment).

Specs: ``digits`` (scikit-learn's bundled 8×8 handwritten digits, the embedded default),
``mnist:DIR`` and ``fashion-mnist[:DIR]`` (IDX files, raw or .gz; without DIR, Debian's
``dataset-fashion-mnist`` at /usr/share/datasets/fashion-mnist), ``cifar10:DIR`` and
``cifar100:DIR`` (binary or python version), ``svhn:DIR`` (``train_32x32.mat``…; ``extra`` adds
the 531k extra images), ``imagefolder:DIR`` (``DIR/train/<class>/*`` and ``DIR/val/<class>/*``,
read lazily; ``classes=K`` picks a random K-class subset).
"""

from xnorfault.data.datasets import DATASET_KINDS, Dataset, load_dataset

__all__ = ["DATASET_KINDS", "Dataset", "load_dataset"]
