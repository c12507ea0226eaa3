"""Runtime backends that run exported models under faults (importable as ``xnorfault.runtimes``).

Imports numpy, onnx and onnxruntime only: they run on a Raspberry Pi without torch. The LCE
backend runs its interpreter in a worker process of the LCE environment.
"""

from __future__ import annotations

from pathlib import Path

from xnorfault.errors import XnorfaultError

BACKENDS = ("onnxruntime", "lce")
EXTENSIONS = {".onnx": "onnxruntime", ".tflite": "lce"}


def open_backend(model: str | Path, backend: str = "auto", threads: int | None = None):
    """A backend for ``model``; ``auto`` picks it from the file extension."""
    path = Path(model)
    if backend == "auto":
        backend = EXTENSIONS.get(path.suffix, "")
        if not backend:
            raise XnorfaultError(
                f"cannot tell the backend of {path.name}: give --backend ({', '.join(BACKENDS)})"
            )
    if backend == "onnxruntime":
        from xnorfault.runtimes.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path, threads=threads)
    if backend == "lce":
        from xnorfault.runtimes.lce import LceBackend

        return LceBackend(path, threads=threads)
    raise XnorfaultError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
