"""Runtime backends that run exported models under faults (importable as ``xnorfault.runtimes``).

Imports numpy, onnx and onnxruntime only: they run on a Raspberry Pi without torch. The LCE
backend runs its interpreter in a worker process of the LCE environment.
"""

from __future__ import annotations

from pathlib import Path

from xnorfault.errors import XnorfaultError

BACKENDS = ("onnxruntime", "lce", "lce-benchmark")
EXTENSIONS = {".onnx": "onnxruntime", ".tflite": "lce"}


def open_backend(
    model: str | Path,
    backend: str = "auto",
    threads: int | None = None,
    lce_benchmark_binary: str | Path | None = None,
    lce_model: str | Path | None = None,
    output: str | None = None,
    layout: str | None = None,
    write=None,
    rate_maps: bool = False,
):
    """A backend for ``model``; ``auto`` picks it from the file extension. ``lce-benchmark``
    takes the ONNX model for accuracy and times ``lce_model`` (default: the same name with
    ``.tflite``) with ``lce_benchmark_binary``. ``output`` (the logits' graph output) and
    ``layout`` (``nchw``/``nhwc`` of the image input) are for ONNX models brought from
    elsewhere; ``write`` (a :class:`~xnorfault.faults.WriteModel`, ``None``: the model's own)
    the write model, which an LCE model supports only as ``iid``; ``rate_maps`` lets runs feed
    one rate per address (chips, :mod:`xnorfault.mram.chips`; onnxruntime only)."""
    path = Path(model)
    if lce_benchmark_binary is not None and backend != "lce-benchmark":
        raise XnorfaultError("--lce-benchmark-binary goes with --backend lce-benchmark")
    if backend == "auto":
        backend = EXTENSIONS.get(path.suffix, "")
        if not backend:
            raise XnorfaultError(
                f"cannot tell the backend of {path.name}: give --backend ({', '.join(BACKENDS)})"
            )
    if backend == "lce" and (output is not None or layout is not None):
        raise XnorfaultError(
            "--output-name and --layout apply to ONNX models, not to LCE .tflite ones"
        )
    if backend == "lce" and write is not None and write.model != "iid":
        raise XnorfaultError(
            f"--write-model {write.model} runs on ONNX models: the LCE export flips every write (iid)"
        )
    if rate_maps and backend != "onnxruntime":
        raise XnorfaultError(
            "chips (per-address rates) run on ONNX models with the onnxruntime backend, not "
            f"{backend}: evaluate the .onnx model with --backend onnxruntime"
        )
    if backend == "onnxruntime":
        from xnorfault.runtimes.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(
            path, threads=threads, output=output, layout=layout, write=write, rate_maps=rate_maps
        )
    if backend == "lce":
        from xnorfault.runtimes.lce import LceBackend

        return LceBackend(path, threads=threads)
    if backend == "lce-benchmark":
        from xnorfault.runtimes.lce_benchmark import LceBenchmarkBackend

        return LceBenchmarkBackend(
            path, lce_benchmark_binary, lce_model, threads=threads, write=write
        )
    raise XnorfaultError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
