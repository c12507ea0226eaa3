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


def __getattr__(name: str):
    # the Python API's entry points, imported only when used (the package stays light)
    if name == "optimize":
        from xnorfault.optimization import optimize

        return optimize
    raise AttributeError(f"module 'xnorfault' has no attribute {name!r}")


__all__ = ["__version__", "optimize"]
