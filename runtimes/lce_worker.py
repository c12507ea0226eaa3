"""Worker process of the LCE backend: holds one LCE interpreter and answers run requests.

Started by :class:`xnorfault.runtimes.lce.LceBackend` in the LCE environment as
``python -m xnorfault.runtimes.lce_worker MODEL --threads N``; reads ``.npz`` frames on stdin
(``command`` = ``describe`` | ``run`` | ``quit``) and writes one frame back for each.
Images arrive as (N, C, H, W) and are fed one at a time (LCE models have batch 1) in NHWC.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from xnorfault.graph.contract import INPUT_NAME, parse_rate_input, rate_input_names  # noqa: E402
from xnorfault.runtimes.tflite import feed_name  # noqa: E402


class Worker:
    def __init__(self, model_path: str, threads: int):
        from larq_compute_engine.tflite.python.interpreter import Interpreter

        from xnorfault.runtimes.lce_tflite import read_tflite

        flatbuffer = open(model_path, "rb").read()
        contents = read_tflite(flatbuffer)
        self.input_names = [feed_name(t["name"]) for t in contents["inputs"]]
        if INPUT_NAME not in self.input_names:
            raise ValueError(
                f"{model_path} has no '{INPUT_NAME}' input: export it with xnorfault export --format lce"
            )
        sites = {parse_rate_input(name) for name in self.input_names} - {None}
        self.sites = sorted({site for site, _ in sites}, key=lambda site: (len(site), site))
        self.rate_names = [rate_input_names(site, "tflite") for site in self.sites]
        image = contents["inputs"][self.input_names.index(INPUT_NAME)]
        _, height, width, channels = image["shape"]
        self.input_shape = [channels, height, width]
        self.threads = threads
        self.interpreter = Interpreter(flatbuffer, num_threads=threads)
        self.binary_kernels = sum(op["op"] == "LceBconv2d" for op in contents["operators"])

    def describe(self) -> dict:
        import larq_compute_engine

        machine = platform.machine()
        kernels = (
            "LCE optimized (ARM)" if machine in ("aarch64", "arm64") else "LCE reference (x86)"
        )
        return {
            "site_names": self.sites,
            "input_shape": self.input_shape,
            "runtime_version": f"larq-compute-engine {getattr(larq_compute_engine, '__version__', '0.16')}",
            "kernels": kernels,
            "machine": machine,
            "binary_kernels": self.binary_kernels,
        }

    def run(self, images: np.ndarray, positive: np.ndarray, negative: np.ndarray):
        if images.ndim != 4 or list(images.shape[1:]) != self.input_shape:
            raise ValueError(
                f"images of shape {list(images.shape)} do not fit the model input (N, {', '.join(map(str, self.input_shape))})"
            )
        feeds = {}
        if len(positive) != len(self.sites) or len(negative) != len(self.sites):
            raise ValueError(f"expected flip rates for {len(self.sites)} sites")
        for (pos_name, neg_name), p_pos, p_neg in zip(
            self.rate_names, positive, negative, strict=True
        ):
            feeds[pos_name] = np.array([p_pos], np.float32)
            feeds[neg_name] = np.array([p_neg], np.float32)
        nhwc = np.ascontiguousarray(images.transpose(0, 2, 3, 1), dtype=np.float32)
        outputs = []
        elapsed = 0.0
        for index in range(len(nhwc)):
            feeds[INPUT_NAME] = nhwc[index : index + 1]
            ordered = [feeds[name] for name in self.input_names]
            start = time.perf_counter()
            result = self.interpreter.interpreter.predict(ordered)
            elapsed += time.perf_counter() - start
            outputs.append(result[0])
        return np.concatenate(outputs), elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    from xnorfault.runtimes.lce import read_frame, write_frame

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # anything printed by libraries must not corrupt the frames
    try:
        worker = Worker(args.model, args.threads)
    except Exception as error:  # reported to the parent as one line
        request = read_frame(stdin)
        if request is not None:
            write_frame(
                stdout, error=f"cannot load {args.model} in LCE: {' '.join(str(error).split())}"
            )
        return 1
    while True:
        request = read_frame(stdin)
        if request is None or str(request["command"]) == "quit":
            return 0
        try:
            command = str(request["command"])
            if command == "describe":
                write_frame(stdout, describe=json.dumps(worker.describe()))
            elif command == "run":
                logits, seconds = worker.run(
                    request["images"], request["positive"], request["negative"]
                )
                write_frame(stdout, logits=logits, seconds=seconds)
            else:
                write_frame(stdout, error=f"unknown worker command {command!r}")
        except ValueError as error:
            write_frame(stdout, error=str(error))


if __name__ == "__main__":
    sys.exit(main())
