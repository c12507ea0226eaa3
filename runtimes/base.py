"""The backend: what ``xnorfault evaluate`` needs from a runtime, as one abstract base class.

A backend loads a model file once, runs batches with given flip rates (fed through the rate
inputs, never by rebuilding the model) and a seed, times them, and says what it is. Callers
use it as a context manager (``with open_backend(path) as backend:``) and never probe for
optional parts: everything a caller may use is here, with a default where one makes sense.
onnxruntime, Larq Compute Engine (a worker process) and ``lce_benchmark_model`` (latency from
LCE's own tool) implement it.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from types import MappingProxyType

import numpy as np

from xnorfault.errors import XnorfaultError
from xnorfault.faults import FlipRates


def weight_faults_unsupported(backend: str) -> XnorfaultError:
    """The one-line error where weight faults cannot run: any backend but onnxruntime."""
    return XnorfaultError(
        f"weight faults run on ONNX models with the onnxruntime backend, not {backend}: LCE's "
        "converter packs binary weights into bitpacked constants xnorfault does not rewrite; "
        "evaluate the .onnx model with --backend onnxruntime"
    )


class Backend(ABC):
    """A loaded model that classifies batches under bit flips.

    Attributes every backend sets: ``sites`` (binary sites, graph order), ``input_shape``
    ((channels, height, width), batch excluded), ``threads``; ``injected_rates`` (the rates a
    model file carries as defaults, by site) and ``metadata`` (the model's metadata) default to
    empty; a backend of an ONNX model also says what its image input takes (``data_input``)
    and where the logits come from (``output_name``).
    """

    name: str = "backend"
    sites: list[str]
    input_shape: tuple
    threads: int
    injected_rates: Mapping[str, FlipRates] = MappingProxyType({})
    metadata: Mapping[str, str] = MappingProxyType({})
    # an ONNX model's image input (xnorfault.runtimes.feeding.DataInput) and logits output
    data_input = None
    output_name: str | None = None
    # whether runs take per-address rates (AddressRates), and each site's addresses per image
    rate_maps: bool = False
    site_addresses: Mapping[str, int | None] = MappingProxyType({})

    @abstractmethod
    def run(self, images: np.ndarray, rates: dict[str, FlipRates], seed: int) -> np.ndarray:
        """Logits for ``images`` (N, C, H, W) float32 with each site flipping at its rates
        (sites missing from ``rates`` do not flip; a backend with ``rate_maps`` also takes
        :class:`~xnorfault.faults.AddressRates`); ``seed`` makes the draw reproducible."""

    @abstractmethod
    def describe(self) -> dict:
        """Runtime name and version, threads, execution provider, model file."""

    def conform(self, images: np.ndarray) -> np.ndarray:
        """A test set's images — (N, C, H, W) float32 — as :meth:`run` takes them, or a
        one-line error saying what does not fit (a backend whose model takes another layout or
        element type converts here, once per test set)."""
        if images.dtype != np.float32:
            raise XnorfaultError(
                f"test images are {images.dtype}, the model takes float32: export the test set with 'xnorfault export --testset'"
            )
        expected = tuple(self.input_shape)
        if images.ndim != 4 or any(
            isinstance(e, int) and e != a for e, a in zip(expected, images.shape[1:], strict=False)
        ):
            raise XnorfaultError(
                f"test images have shape {tuple(images.shape[1:])} per image, the model takes {expected}"
            )
        return images

    def run_timed(
        self, images: np.ndarray, rates: dict[str, FlipRates], seed: int
    ) -> tuple[np.ndarray, float]:
        """Logits and the seconds the run took (a backend that runs out of process times its
        runtime itself, transfers excluded)."""
        start = time.perf_counter()
        logits = self.run(images, rates, seed)
        return logits, time.perf_counter() - start

    def latency(
        self,
        images: np.ndarray,
        rates: dict[str, FlipRates],
        iterations: int,
        next_seed: Callable[[], int],
        warmup: int = 3,
    ) -> dict:
        """Median, p90, p99 of the time per batch of ``images`` (ms) and throughput (images/s)
        over ``iterations`` timed runs after ``warmup`` untimed ones, each with its own seed."""
        times = []
        for index in range(warmup + iterations):
            _, elapsed = self.run_timed(images, rates, next_seed())
            if index >= warmup:
                times.append(elapsed)
        return _statistics(times, len(images), iterations)

    def run_model_timed(self, images: np.ndarray) -> float | None:
        """Seconds one run of the deployed model takes on ``images`` — the graph without the
        simulated faults, as a real memory runs it — or ``None`` where this backend cannot run
        it apart from the simulation."""
        return None

    def model_latency(
        self,
        images: np.ndarray,
        rates: dict[str, FlipRates],
        iterations: int,
        next_seed: Callable[[], int],
        warmup: int = 3,
    ) -> dict:
        """The deployed model's latency and, measured side by side, what the fault simulation
        adds: ``iterations`` rounds (after ``warmup``), each timing one run of the model
        without flips and one run under ``rates`` (its own seed), alternately. ``p50_ms``,
        ``p90_ms``, ``p99_ms`` and ``throughput_per_s`` are the model's own; ``simulated_p50_ms``
        the simulated run's median, ``simulation_overhead`` = simulated / model median (a
        ratio of medians measured in the same rounds) and ``simulation_ms`` their difference.
        A backend that cannot run the model apart (``run_model_timed`` gives ``None``) reports
        :meth:`latency` under ``rates``, with ``graph`` saying so."""
        if self.run_model_timed(images[:1]) is None:
            return {
                **self.latency(images, rates, iterations, next_seed, warmup),
                "graph": "simulated",
            }
        model_times, simulated_times = [], []
        for index in range(warmup + iterations):
            model_time = self.run_model_timed(images)
            _, simulated_time = self.run_timed(images, rates, next_seed())
            if index >= warmup:
                model_times.append(model_time)
                simulated_times.append(simulated_time)
        model_median = float(np.median(model_times))
        simulated_median = float(np.median(simulated_times))
        return {
            **_statistics(model_times, len(images), iterations),
            "graph": "without flips",
            "simulated_p50_ms": simulated_median * 1e3,
            "simulation_overhead": simulated_median / model_median,
            "simulation_ms": (simulated_median - model_median) * 1e3,
        }

    def binary_weights(self) -> dict[str, np.ndarray]:
        """The model's binary weights by tensor name (:mod:`xnorfault.graph.weights`)."""
        raise weight_faults_unsupported(self.name)

    def set_weight_faults(self, weights: dict[str, np.ndarray] | None) -> None:
        """Run from now on with these tensors in place of the model's binary weights (a
        chip's wrong weights); ``None`` restores the model's own."""
        self.binary_weights()  # the same one-line error where a backend has no weights

    def close(self) -> None:  # noqa: B027 - a backend holding nothing to release keeps it
        """Release the runtime (a worker process, a session); idempotent."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _statistics(times: list[float], images: int, iterations: int) -> dict:
    p50, p90, p99 = np.percentile(np.asarray(times) * 1e3, [50, 90, 99])
    return {
        "p50_ms": float(p50),
        "p90_ms": float(p90),
        "p99_ms": float(p99),
        "throughput_per_s": float(images / np.median(times)),
        "iterations": iterations,
    }
