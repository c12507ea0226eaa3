#!/usr/bin/env bash
# Per-site MRAM write operating points ('xnorfault optimize') of binarized LeNet-4 on
# Fashion-MNIST within a one-point accuracy budget, for the networks trained at BER 0 and 0.08
# (seed 1, repeat 0, as in lenet4_fashion_mnist.sh; training resumes or is skipped when done).
# Writes fashion_mnist_lenet4_ber*_optimize.{json,png} to results/.
source "$(dirname "$0")/common.sh"
RUN="$RUNS/fashion_mnist_lenet4_optimize"
$XNORFAULT train --model lenet4 --data fashion-mnist --ber 0,0.08 --epochs "${EPOCHS:-10}" \
    --repeats 1 --seed 1 --torch-device "$DEVICE" --out "$RUN"
mkdir -p "$RESULTS"
for ber in 0 0.08; do
    $XNORFAULT export "$RUN" --point "ber=$ber" -o "$RUN/lenet4_ber$ber.onnx" --testset "$RUN/test.npz"
    $XNORFAULT optimize "$RUN/lenet4_ber$ber.onnx" --data "$RUN/test.npz" --max-drop 0.01 \
        --pulse 2ns:20ns --seed 0 --plot "$RESULTS/fashion_mnist_lenet4_ber${ber}_optimize.png" \
        --json > "$RESULTS/fashion_mnist_lenet4_ber${ber}_optimize.json"
done
