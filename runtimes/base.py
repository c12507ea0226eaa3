"""The backend protocol: what ``xnorfault evaluate`` needs from a runtime.

A backend loads a model file once, runs batches with given flip rates (fed through the rate
inputs, never by rebuilding the model) and a seed, and reports what it is. onnxruntime is the
first backend; Larq Compute Engine plugs in behind the same protocol.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from xnorfault.faults import FlipRates


@runtime_checkable
class Backend(Protocol):
    """A loaded model that classifies batches under bit flips."""

    name: str
    sites: list[str]
    input_shape: tuple  # (channels, height, width), batch excluded

    def run(self, images: np.ndarray, rates: dict[str, FlipRates], seed: int) -> np.ndarray:
        """Logits for ``images`` (N, C, H, W) float32 with each site flipping at its rates
        (sites missing from ``rates`` do not flip); ``seed`` makes the draw reproducible."""
        ...

    def describe(self) -> dict:
        """Runtime name and version, threads, execution provider, model file."""
        ...
