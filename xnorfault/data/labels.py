"""Checks of class labels, shared by training data and test sets (imports numpy only)."""

from __future__ import annotations

import numpy as np

from xnorfault.errors import XnorfaultError


def check_labels(labels: np.ndarray, num_classes: int | None, what: str) -> None:
    """Raise a one-line error naming ``what`` unless ``labels`` is a 1-D array of integers in
    ``0 .. num_classes - 1`` (a label outside them would be scored silently wrong; without
    ``num_classes`` only the type is checked)."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise XnorfaultError(f"{what} have shape {labels.shape}, expected one label per image")
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == np.bool_):
        raise XnorfaultError(
            f"{what} are {labels.dtype}, not integers: store class indices 0, 1, 2, …"
        )
    if num_classes is None:
        return
    bad = np.unique(labels[(labels < 0) | (labels >= num_classes)])
    if bad.size:
        shown = ", ".join(str(int(v)) for v in bad[:5]) + (", …" if bad.size > 5 else "")
        raise XnorfaultError(
            f"{what} hold {shown}, outside the {num_classes} classes 0..{num_classes - 1}"
        )
