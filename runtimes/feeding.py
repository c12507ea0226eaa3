"""How test images reach a model's data input, and which output holds its logits.

xnorfault's test sets hold images as ``x`` of shape (N, C, H, W) (``xnorfault export
--testset``). Models brought from elsewhere differ: a fixed batch (often 1), channels last
(NHWC, as TensorFlow exports), a flat input (N, C·H·W), float16 or uint8 inputs, several outputs.
:class:`DataInput` says what the model takes and turns a test set into it once, before any
timing; :func:`choose_output` picks the logits. Imports numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xnorfault.errors import XnorfaultError

LAYOUTS = ("NCHW", "NHWC")
CHANNEL_COUNTS = (1, 2, 3, 4)  # grey, grey+alpha, RGB, RGBA: what an image's channel axis holds

ONNX_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
}


def detect_layout(per_image: tuple) -> str | None:
    """``NCHW`` or ``NHWC`` for a 3-D per-image shape whose channel axis is recognisable (a
    small count of channels first or last, and not both), else ``None``."""
    if len(per_image) != 3:
        return None
    first = per_image[0] in CHANNEL_COUNTS
    last = per_image[2] in CHANNEL_COUNTS
    if first and not last:
        return "NCHW"
    if last and not first:
        return "NHWC"
    return None


@dataclass(frozen=True)
class DataInput:
    """The model's image input: name, full shape (int or ``None`` per dimension, batch first),
    element type and layout (``NCHW``, ``NHWC``, or ``None`` when not 4-D or not known)."""

    name: str
    shape: tuple
    dtype: np.dtype
    layout: str | None

    @classmethod
    def from_onnxruntime(cls, node_arg, layout: str | None = None) -> DataInput:
        """From an onnxruntime ``NodeArg``; ``layout`` overrides the detection."""
        dtype = ONNX_TYPES.get(node_arg.type)
        if dtype is None:
            supported = ", ".join(t[7:-1] for t in ONNX_TYPES)
            raise XnorfaultError(
                f"the model's input {node_arg.name!r} is {node_arg.type}: xnorfault feeds images as {supported}"
            )
        shape = tuple(d if isinstance(d, int) and d > 0 else None for d in node_arg.shape or ())
        return cls.build(node_arg.name, shape, np.dtype(dtype), layout)

    @classmethod
    def build(cls, name: str, shape: tuple, dtype: np.dtype, layout: str | None) -> DataInput:
        if layout is not None:
            layout = layout.upper()
            if layout not in LAYOUTS:
                raise XnorfaultError(f"--layout {layout.lower()}: use nchw or nhwc")
            if len(shape) != 4:
                raise XnorfaultError(
                    f"--layout {layout.lower()} is for 4-D image inputs; the model's input {name!r} has {len(shape)} dimensions"
                )
        else:
            layout = detect_layout(shape[1:]) if len(shape) == 4 else None
            if len(shape) == 4 and layout is None:
                layout = "NCHW"  # ONNX's own convention when the channel axis cannot be told
        return cls(name, shape, dtype, layout)

    @property
    def fixed_batch(self) -> int | None:
        """The batch size the model was exported with, when it is fixed."""
        return self.shape[0] if self.shape and isinstance(self.shape[0], int) else None

    @property
    def per_image(self) -> tuple:
        return tuple(self.shape[1:])

    @property
    def channels_first_shape(self) -> tuple:
        """The per-image shape in xnorfault's (C, H, W) order."""
        if self.layout == "NHWC":
            height, width, channels = self.per_image
            return (channels, height, width)
        return self.per_image

    def describe(self) -> dict:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype.name,
            "layout": self.layout,
            "fixed_batch": self.fixed_batch,
        }

    def conform(self, images: np.ndarray) -> np.ndarray:
        """``images`` — (N, C, H, W) as xnorfault writes test sets, or already in the model's own
        shape — in the model's layout and element type, or a one-line error saying what
        differs. Float images go to a float16/float64 input by a cast; an integer input
        (uint8, int8) takes integer images only (its preprocessing is the model's)."""
        images = self._arranged(images)
        if images.dtype == self.dtype:
            return images
        if np.issubdtype(self.dtype, np.floating) and np.issubdtype(images.dtype, np.floating):
            return images.astype(self.dtype)
        if np.issubdtype(self.dtype, np.integer):
            limits = np.iinfo(self.dtype)
            integral = np.issubdtype(images.dtype, np.integer) or bool(
                np.all(np.isfinite(images)) and np.all(images == np.round(images))
            )
            if (
                integral
                and images.size
                and (images.min() < limits.min or images.max() > limits.max)
            ):
                integral = False
            if integral:
                return images.astype(self.dtype)
            raise XnorfaultError(
                f"the model takes {self.dtype.name} images (raw pixel values {limits.min}–{limits.max}) "
                f"but the test set holds {images.dtype} values that are not: give x as {self.dtype.name}"
            )
        raise XnorfaultError(
            f"the model takes {self.dtype.name} images but the test set holds {images.dtype}: "
            f"give x as {self.dtype.name}"
        )

    def _arranged(self, images: np.ndarray) -> np.ndarray:
        expected = self.per_image
        if _fits(images.shape[1:], expected):
            return images
        if images.ndim == 4 and self.layout == "NHWC":
            moved = images.transpose(0, 2, 3, 1)
            if _fits(moved.shape[1:], expected):
                return np.ascontiguousarray(moved)
        if images.ndim >= 2 and len(expected) == 1:
            flat = images.reshape(len(images), -1)
            if _fits(flat.shape[1:], expected):
                return flat
        shown = ", ".join("?" if d is None else str(d) for d in expected)
        layout = f", {self.layout}" if self.layout else ""
        actual = tuple(images.shape[1:])
        hint = (
            " (the same axes in another order: give --layout)"
            if sorted(actual) == sorted(d for d in expected if d is not None)
            and None not in expected
            else ""
        )
        raise XnorfaultError(
            f"test images have shape {actual} per image, the model takes ({shown}) "
            f"(input {self.name!r}{layout}){hint}"
        )


def _fits(actual: tuple, expected: tuple) -> bool:
    return len(actual) == len(expected) and all(
        e is None or e == a for e, a in zip(expected, actual, strict=True)
    )


def choose_output(outputs: list[tuple[str, str]], requested: str | None, named: str | None) -> str:
    """The output holding the logits: ``requested`` (``--output-name``), else the one the model's
    metadata names, else the only floating-point one. ``outputs`` are (name, ONNX type)."""
    names = [name for name, _ in outputs]
    if requested is not None:
        if requested not in names:
            raise XnorfaultError(
                f"--output-name {requested}: the model's outputs are {', '.join(names)}"
            )
        return requested
    if named is not None and named in names:
        return named
    floating = [
        name
        for name, kind in outputs
        if kind in ("tensor(float)", "tensor(float16)", "tensor(double)")
    ]
    if len(floating) == 1:
        return floating[0]
    if len(names) == 1:
        return names[0]
    raise XnorfaultError(
        f"the model has outputs {', '.join(names)}: choose the logits with --output-name NAME"
    )
