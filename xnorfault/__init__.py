"""xnorfault: error-resilient binarized neural networks on low-voltage MRAM.

The package trains binarized networks with bit errors in their binary activations, exports
them to ONNX, rewrites the graph to flip bits at every binary activation with rates derived
from an MRAM write-error model, and measures accuracy and latency under those faults.

The deployed half (``xnorfault.mram``, the ONNX rewrite, ``xnorfault.runtimes`` and
``xnorfault.targets``) imports only numpy, scipy, onnx and onnxruntime; torch, brevitas and
tensorflow are imported lazily where training or LCE export need them.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("xnorfault")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"


# The public API, imported only when first used (``import xnorfault`` stays light and
# torch-free): name -> module that defines it.
_PUBLIC = {
    "Evaluation": "xnorfault.api",
    "Injection": "xnorfault.api",
    "evaluate": "xnorfault.api",
    "export_onnx": "xnorfault.api",
    "fault_source": "xnorfault.api",
    "inject": "xnorfault.api",
    "inspect": "xnorfault.api",
    "train": "xnorfault.api",
    "optimize": "xnorfault.optimization",
    "MTJ": "xnorfault.mram",
    "load_device": "xnorfault.mram",
    "FaultSource": "xnorfault.faults",
    "FaultSpec": "xnorfault.faults",
    "FlipRates": "xnorfault.faults",
    "WriteModel": "xnorfault.faults",
    "XnorfaultError": "xnorfault.errors",
}


def __getattr__(name: str):
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'xnorfault' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))


__all__ = ["__version__", *sorted(_PUBLIC)]
