#!/usr/bin/env bash
# Binarized LeNet-4 on Fashion-MNIST, sized for two CPU cores: 3 repeats, 10 epochs
# (EPOCHS=60 for the paper's schedule length; the step decay scales with it).
source "$(dirname "$0")/common.sh"
REPEATS=3
study fashion_mnist_lenet4 lenet4 fashion-mnist 0,0.02,0.04,0.08,0.16,0.32 "${EPOCHS:-10}"
