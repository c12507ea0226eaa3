"""What the Python API takes where the command line takes paths, and how its errors read.

A model may be an ONNX file, an ``onnx.ModelProto`` or an ``onnx_ir.Model``, a test set a
``.npz`` file or a pair ``(images, labels)`` of arrays: :func:`on_disk` writes the objects to a
temporary folder for the call's length, so that every backend reads files as on the command
line. :func:`speaks_of_parameters` rewords the one-line errors, shared with the command line,
so that a Python caller reads of its parameters (``voltage needs pulse``), not of flags.
"""

from __future__ import annotations

import contextlib
import functools
import re
from inspect import signature
from pathlib import Path

from xnorfault.errors import IN_COMMAND_LINE, XnorfaultError

_FLAG = re.compile(r"(?<![\w-])--([a-z][a-z0-9-]*)")


def speaks_of_parameters(function):
    """``function`` with its errors naming its parameters (``pulse``) where the message, shared
    with the command line, names a flag (``--pulse``); under the command line they stay."""
    names = set(signature(function).parameters)

    @functools.wraps(function)
    def with_parameter_names(*arguments, **keywords):
        try:
            return function(*arguments, **keywords)
        except XnorfaultError as error:
            if IN_COMMAND_LINE.get():
                raise
            raise type(error)(_parameter_names(str(error), names)) from None

    with_parameter_names.parameter_names = names
    return with_parameter_names


def _parameter_names(message: str, names: set[str]) -> str:
    """``message`` with each ``--flag`` that is one of ``names`` written as that name."""

    def name(match: re.Match) -> str:
        keyword = match.group(1).replace("-", "_")
        return keyword if keyword in names else match.group(0)

    return _FLAG.sub(name, message)


@contextlib.contextmanager
def on_disk(model, data=None, *, kept: bool = False):
    """``(model_path, data)`` for a model and test set given as objects: an
    ``onnx.ModelProto`` or ``onnx_ir.Model`` is written to a temporary folder, as are ``(x, y)``
    arrays (as ``test.npz``); paths pass through. ``kept``: the call records its inputs by path
    (a campaign folder), which objects in memory do not have."""
    import tempfile

    in_memory = not isinstance(model, str | Path | None) or isinstance(data, tuple | list)
    if in_memory and kept:
        raise XnorfaultError(
            "a campaign folder (out, shard, merge) records its model and test set by path: save "
            "them to files and pass the paths"
        )
    if not in_memory:
        yield model, data
        return
    with tempfile.TemporaryDirectory(prefix="xnorfault-") as scratch:
        yield _model_file(model, Path(scratch)), _data_file(data, Path(scratch))


def _model_file(model, scratch: Path):
    if model is None or isinstance(model, str | Path):
        return model
    import onnx

    if not isinstance(model, onnx.ModelProto):
        try:
            import onnx_ir

            if isinstance(model, onnx_ir.Model):
                model = onnx_ir.serde.serialize_model(model)
        except ImportError:
            pass
    if not isinstance(model, onnx.ModelProto):
        raise XnorfaultError(
            f"model takes a path, an onnx.ModelProto or an onnx_ir.Model, not {type(model).__name__}"
        )
    from xnorfault.graph.rewrite import save_model

    path = scratch / "model.onnx"
    save_model(model, path)
    return path


def _data_file(data, scratch: Path):
    if not isinstance(data, tuple | list):
        return data
    import numpy as np

    if len(data) != 2:
        raise XnorfaultError(
            f"data takes a test set path or a pair (images, labels), not a sequence of {len(data)}"
        )
    images, labels = (np.asarray(part) for part in data)
    path = scratch / "test.npz"
    np.savez(path, x=images, y=labels)
    return path
