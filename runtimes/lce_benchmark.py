"""``--backend lce-benchmark``: LCE latency from ``lce_benchmark_model``, accuracy from ONNX.

PyPI has no aarch64 wheel of Larq Compute Engine, so on a Raspberry Pi LCE runs through the
``lce_benchmark_model`` binary of LCE's releases, which the user supplies. That binary times a
``.tflite`` on inputs it is given but returns no predictions, so this backend splits the work:

* **accuracy** — every :meth:`run` goes to onnxruntime on the ONNX model of the same network
  (``xnorfault deploy`` ships both files);
* **latency** — :meth:`latency` runs the binary on the ``.tflite`` with the image input filled
  from the test set and each rate input from a file holding the point's rate, and parses the
  timings it prints (TFLite's benchmark tool: ``count=… min=… max=… avg=… std=…`` per
  stage and ``Inference timings in us: …``). It reports a mean, not a median: the p50 field
  holds the mean and ``statistic`` says so.

Imports numpy, onnx, onnxruntime and flatbuffers only.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from xnorfault.errors import XnorfaultError
from xnorfault.faults import FlipRates
from xnorfault.graph.contract import INPUT_NAME, parse_rate_input
from xnorfault.runtimes.base import Backend
from xnorfault.runtimes.onnxruntime import OnnxRuntimeBackend
from xnorfault.runtimes.tflite import feed_name, tflite_inputs

_COUNT_LINE = re.compile(
    r"count=(?P<count>\d+).*?min=(?P<min>[\d.]+)\s+max=(?P<max>[\d.]+)\s+avg=(?P<avg>[\d.e+]+)\s+std=(?P<std>[\d.]+)"
)
_TIMINGS_LINE = re.compile(r"Inference \(avg\):\s*(?P<avg>[\d.e+]+)")


def _escape(name: str) -> str:
    """TFLite's benchmark flags separate name and path with ':' and escape one in a name as '::'."""
    return name.replace(":", "::")


def parse_benchmark_output(text: str) -> dict:
    """Mean, min, max and std (µs) of the timed inference runs in ``lce_benchmark_model`` output."""
    counts = list(_COUNT_LINE.finditer(text))
    if not counts:
        raise XnorfaultError(
            "lce_benchmark_model printed no timings (no 'count=… avg=…' line): check the binary and the model"
        )
    last = counts[-1]  # the warm-up run is reported first, the timed runs last
    timings = _TIMINGS_LINE.search(text)
    mean = float(timings["avg"]) if timings else float(last["avg"])
    return {
        "runs": int(last["count"]),
        "mean_us": mean,
        "min_us": float(last["min"]),
        "max_us": float(last["max"]),
        "std_us": float(last["std"]),
    }


class LceBenchmarkBackend(Backend):
    """Accuracy through onnxruntime, latency through ``lce_benchmark_model`` (see the module)."""

    name = "lce-benchmark"

    def __init__(
        self,
        onnx_model: str | Path,
        binary: str | Path | None,
        tflite_model: str | Path | None = None,
        threads: int | None = None,
        write=None,
    ):
        onnx_model = Path(onnx_model)
        if onnx_model.suffix != ".onnx":
            raise XnorfaultError(
                "--backend lce-benchmark evaluates accuracy on the ONNX model: give model.onnx "
                "(and the .tflite with --lce-model)"
            )
        if binary is None:
            raise XnorfaultError(
                "--backend lce-benchmark needs --lce-benchmark-binary PATH (LCE's lce_benchmark_model)"
            )
        self.binary = Path(binary)
        if not (self.binary.is_file() and os.access(self.binary, os.X_OK)):
            raise XnorfaultError(
                f"--lce-benchmark-binary {self.binary} is not an executable file: download lce_benchmark_model for this machine and chmod +x it"
            )
        self.tflite = Path(tflite_model) if tflite_model else onnx_model.with_suffix(".tflite")
        self.inputs = tflite_inputs(self.tflite)
        self.onnx = OnnxRuntimeBackend(onnx_model, threads=threads, write=write)
        self.threads = self.onnx.threads
        self.sites = self.onnx.sites
        self.input_shape = self.onnx.input_shape
        self.injected_rates = self.onnx.injected_rates
        self.metadata = self.onnx.metadata
        self.data_input, self.output_name = self.onnx.data_input, self.onnx.output_name
        names = [feed_name(name) for name, _ in self.inputs]
        if INPUT_NAME not in names:
            raise XnorfaultError(
                f"{self.tflite} has no 'input': export it with xnorfault export --format lce"
            )
        tflite_sites = {parse_rate_input(n)[0] for n in names if parse_rate_input(n)}
        if tflite_sites != set(self.sites):
            raise XnorfaultError(
                f"{self.tflite} flips at {sorted(tflite_sites)} but {onnx_model} at {sorted(self.sites)}: "
                "give the .tflite of the same network"
            )

    def run(self, images: np.ndarray, rates: dict[str, FlipRates], seed: int) -> np.ndarray:
        return self.onnx.run(images, rates, seed)

    def conform(self, images: np.ndarray) -> np.ndarray:
        return self.onnx.conform(images)

    def latency(
        self,
        images: np.ndarray,
        rates: dict[str, FlipRates],
        iterations: int,
        next_seed=None,
        warmup: int = 3,
    ) -> dict:
        """Timings of ``iterations`` invokes of the .tflite at batch 1 with these rates, as
        ``lce_benchmark_model`` reports them (after its own 3 warm-up runs; it draws flips
        from the model's own generator, so ``next_seed`` is not used)."""
        if len(images) != 1:
            raise XnorfaultError(
                "lce_benchmark_model times the .tflite at its batch size of 1: use --latency-batches 1"
            )
        with tempfile.TemporaryDirectory(prefix="xnorfault-lce-bench-") as scratch:
            names, shapes, files = [], [], []
            for index, (tensor_name, shape) in enumerate(self.inputs):
                feed = feed_name(tensor_name)
                if feed == INPUT_NAME:
                    value = np.ascontiguousarray(images[:1].transpose(0, 2, 3, 1), np.float32)
                else:
                    site, direction = parse_rate_input(feed)
                    site_rates = rates.get(site, FlipRates())
                    p = site_rates.pos_to_neg if direction == "pos" else site_rates.neg_to_pos
                    value = np.full(shape, p, np.float32)
                path = Path(scratch) / f"input{index}.bin"
                value.tofile(path)
                names.append(tensor_name)
                shapes.append(",".join(str(d) for d in shape))
                files.append(f"{_escape(tensor_name)}:{path}")
            command = [
                str(self.binary),
                f"--graph={self.tflite}",
                f"--num_threads={self.threads}",
                f"--num_runs={iterations}",
                "--warmup_runs=3",
                f"--input_layer={','.join(names)}",
                f"--input_layer_shape={':'.join(shapes)}",
                f"--input_layer_value_files={','.join(files)}",
            ]
            completed = subprocess.run(command, capture_output=True, text=True, check=False)
        output = completed.stdout + completed.stderr
        if completed.returncode != 0:
            last = (output.strip().splitlines() or [f"exit code {completed.returncode}"])[-1]
            raise XnorfaultError(f"lce_benchmark_model failed: {last}")
        timing = parse_benchmark_output(output)
        mean_ms = timing["mean_us"] / 1e3
        return {
            "p50_ms": mean_ms,
            "p90_ms": None,
            "p99_ms": None,
            "mean_ms": mean_ms,
            "min_ms": timing["min_us"] / 1e3,
            "max_ms": timing["max_us"] / 1e3,
            "std_ms": timing["std_us"] / 1e3,
            "throughput_per_s": 1e3 / mean_ms,
            "iterations": timing["runs"],
            "statistic": "mean (lce_benchmark_model reports no percentiles)",
            "source": f"lce_benchmark_model on {self.tflite.name}",
        }

    def close(self) -> None:
        self.onnx.close()

    def describe(self) -> dict:
        info = self.onnx.describe()
        info.update(
            {
                "backend": self.name,
                "accuracy_from": f"onnxruntime {info['runtime_version']} on {self.onnx.path}",
                "latency_from": f"{self.binary} on {self.tflite}",
            }
        )
        return info
