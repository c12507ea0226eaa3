"""Larq Compute Engine backend: runs ``.tflite`` models with LCE's interpreter.

LCE's interpreter comes with tensorflow 2.16 (importing ``larq_compute_engine`` imports it),
which cannot share an environment with current onnx. The backend therefore keeps one worker
process in the LCE environment (:mod:`xnorfault.runtimes.lce_worker`) for the life of the model
and exchanges numpy arrays with it over pipes as ``.npz`` frames (no pickle, so numpy 1 and 2
interoperate). This module imports numpy only.

The LCE environment is found in this order: ``$XNORFAULT_LCE_PYTHON``; the running interpreter
if it has ``larq_compute_engine``; ``.venv-lce/bin/python`` beside the running virtual
environment (what ``make setup`` builds).

Flips: the rates are model inputs; the uniforms come from TFLite's ``RandomUniform`` inside the
model, seeded at export. Every invoke draws fresh values, so results are reproducible for the
same model and the same sequence of runs from a fresh backend, but the ``seed`` of :meth:`run`
cannot re-seed the stream (TFLite has no seed input); :meth:`describe` says so.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from xnorfault.errors import XnorfaultError
from xnorfault.faults import FlipRates
from xnorfault.runtimes.base import Backend

LCE_PYTHON_VARIABLE = "XNORFAULT_LCE_PYTHON"
LCE_VENV = ".venv-lce"
_HEADER = struct.Struct("<Q")


def lce_python() -> str:
    """The Python interpreter of the LCE environment (see the module docstring)."""
    configured = os.environ.get(LCE_PYTHON_VARIABLE)
    if configured:
        if not Path(configured).is_file():
            raise XnorfaultError(
                f"${LCE_PYTHON_VARIABLE} is {configured}, which does not exist: point it at the python of the LCE environment"
            )
        return configured
    if find_spec("larq_compute_engine") is not None:
        return sys.executable
    candidates = [Path(sys.prefix).parent / LCE_VENV / "bin" / "python"]
    candidates.append(Path(__file__).resolve().parent.parent / LCE_VENV / "bin" / "python")
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    raise XnorfaultError(
        "the Larq Compute Engine environment is missing: run `make setup` (it builds "
        f"{LCE_VENV}/) or set ${LCE_PYTHON_VARIABLE} to a python with xnorfault[lce]"
    )


def _environment() -> dict:
    environment = dict(os.environ)
    environment["TF_USE_LEGACY_KERAS"] = "1"  # must be set before tensorflow is imported
    environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return environment


def run_in_lce_environment(arguments: list[str]) -> dict:
    """Run ``python ARGUMENTS`` in the LCE environment; the last stdout line is a JSON result."""
    completed = subprocess.run(
        [lce_python(), *arguments],
        capture_output=True,
        text=True,
        env=_environment(),
        check=False,
    )
    lines = completed.stdout.strip().splitlines()
    result = None
    if lines:
        try:
            result = json.loads(lines[-1])
        except json.JSONDecodeError:
            result = None
    if result is None:
        detail = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        raise XnorfaultError(f"the LCE environment failed ({detail})")
    if "error" in result:
        raise XnorfaultError(result["error"])
    return result


def write_frame(stream, **arrays) -> None:
    """One message: an 8-byte length, then an ``.npz`` of the named arrays."""
    buffer = io.BytesIO()
    np.savez(buffer, **{key: np.asarray(value) for key, value in arrays.items()})
    payload = buffer.getvalue()
    stream.write(_HEADER.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def read_frame(stream) -> dict[str, np.ndarray] | None:
    """The next message, or None at end of stream."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    payload = stream.read(size)
    with np.load(io.BytesIO(payload), allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


class LceBackend(Backend):
    """Runs a ``.tflite`` exported by ``xnorfault export --format lce`` with LCE's interpreter."""

    name = "lce"

    def __init__(self, model: str | Path, threads: int | None = None):
        self.path = Path(model)
        if not self.path.is_file():
            raise XnorfaultError(f"model file {self.path} not found")
        self.threads = threads or 1
        self.process = subprocess.Popen(
            [
                lce_python(),
                "-m",
                "xnorfault.runtimes.lce_worker",
                str(self.path),
                "--threads",
                str(self.threads),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_environment(),
        )
        info = self._request(command="describe")
        self.info = json.loads(str(info["describe"]))
        self.sites: list[str] = self.info["site_names"]
        self.injected_rates: dict[str, FlipRates] = {}  # rates are inputs without defaults
        self.input_shape = tuple(self.info["input_shape"])

    def _request(self, **arrays) -> dict[str, np.ndarray]:
        if self.process.poll() is not None:
            raise XnorfaultError(self._failure("the LCE worker has stopped"))
        try:
            write_frame(self.process.stdin, **arrays)
            reply = read_frame(self.process.stdout)
        except (BrokenPipeError, OSError):
            reply = None
        if reply is None:
            self.process.wait(timeout=10)
            raise XnorfaultError(self._failure("the LCE worker stopped"))
        if "error" in reply:
            raise XnorfaultError(str(reply["error"]))
        return reply

    def _failure(self, what: str) -> str:
        stderr = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
        lines = [line for line in stderr.strip().splitlines() if line.strip()]
        return f"{what} ({lines[-1] if lines else f'exit code {self.process.returncode}'})"

    def _rates(self, rates: dict[str, FlipRates]) -> tuple[np.ndarray, np.ndarray]:
        chosen = [rates.get(site, FlipRates()) for site in self.sites]
        return (
            np.array([r.pos_to_neg for r in chosen], np.float32),
            np.array([r.neg_to_pos for r in chosen], np.float32),
        )

    def run(self, images: np.ndarray, rates: dict[str, FlipRates], seed: int) -> np.ndarray:
        return self.run_timed(images, rates, seed)[0]

    def run_timed(
        self, images: np.ndarray, rates: dict[str, FlipRates], seed: int
    ) -> tuple[np.ndarray, float]:
        """Logits and the seconds the interpreter itself took (pipe transfer excluded)."""
        positive, negative = self._rates(rates)
        reply = self._request(
            command="run",
            images=np.ascontiguousarray(images, dtype=np.float32),
            positive=positive,
            negative=negative,
        )
        return reply["logits"], float(reply["seconds"])

    def describe(self) -> dict:
        return {
            "backend": self.name,
            "runtime_version": self.info["runtime_version"],
            "threads": self.threads,
            "execution_provider": self.info["kernels"],
            "model": str(self.path),
            "site_names": self.sites,
            "flip_stream": "TFLite RandomUniform seeded at export; the run seed is not used",
        }

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                write_frame(self.process.stdin, command="quit")
            except (BrokenPipeError, OSError):
                pass
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream:
                stream.close()

    def __del__(self):
        process = getattr(self, "process", None)
        if process is not None and process.poll() is None:
            process.kill()
