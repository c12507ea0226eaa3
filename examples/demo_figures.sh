#!/usr/bin/env bash
# The figures of `make demo` that the documentation shows (docs/figures/): the three voltage
# sweeps overlaid, one sweep over its WER and write energy, the training curves, the per-site
# operating points and the paper's Fig. 5. The accuracies come from a short training run on
# this machine: another machine or thread count draws slightly different curves.
set -euo pipefail
cd "$(dirname "$0")/.."
make demo
mkdir -p docs/figures
for figure in voltage_sweeps voltage_sweep_ber0.04 accuracy_vs_epoch optimize_ber0.04 write_voltage_vs_pulse; do
    cp "runs/demo/$figure.png" "docs/figures/$figure.png"
done
echo "copied the demo's figures to docs/figures/"
