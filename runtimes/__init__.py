"""Runtime backends that run exported models under faults (importable as ``xnorfault.runtimes``).

Imports numpy, onnx and onnxruntime only: they run on a Raspberry Pi without torch."""
