"""Run a deployment bundle's model on this machine and write what the ARM check compares.

Usage: python check_bundle.py BUNDLE OUT_DIR

Runs wherever the bundle runs (numpy, onnx, onnxruntime and the bundled xnorfault only): on
the build machine and, under qemu-aarch64, in the arm64 root. Writes ``OUT_DIR/result.npz``:

* ``logits`` — the test set at p = 0;
* ``masks_SITE`` — which values of each binary site flipped, with P(+1→−1) = 0.03 and
  P(−1→+1) = 0.1 and a fixed ``flip_seed`` (the counter-based generator makes the masks a
  function of the seed alone, so they must be identical on every machine);
* ``signs_SITE`` — the clean sign of those values (for the per-direction flip rates);
* ``machine`` — what it ran on (JSON).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

from xnorfault.faults import FlipRates
from xnorfault.graph.generator import run_seed
from xnorfault.graph.rewrite import inject_flips, load_model, metadata
from xnorfault.runtimes.onnxruntime import OnnxRuntimeBackend
from xnorfault.targets import machine_description

P_POS, P_NEG, SEED = 0.03, 0.1, 2024


def main(bundle: Path, out: Path) -> None:
    data = np.load(bundle / "test.npz")
    images = data["x"]
    model = load_model(bundle / "model.onnx")
    logits = OnnxRuntimeBackend(model, threads=1).run(images, {}, 0)
    exposed = inject_flips(model, FlipRates(P_POS, P_NEG), expose=True)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        exposed.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    names = [o.name for o in session.get_outputs()]
    outputs = dict(
        zip(
            names,
            session.run(None, {"input": images, "flip_seed": np.array(run_seed(SEED, 0))}),
            strict=True,
        )
    )
    arrays = {"logits": logits, "machine": np.array(json.dumps(machine_description()))}
    for site in json.loads(metadata(exposed)["xnorfault.injected"])["sites"]:
        before, after = outputs[site], outputs[site + ".flipped"]
        arrays[f"masks_{site}"] = before != after
        arrays[f"signs_{site}"] = before > 0
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "result.npz", **arrays)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
