#!/usr/bin/env bash
# Binarized LeNet-4 on MNIST (paper Fig. 1). Usage: lenet4_mnist.sh DIR_WITH_IDX_FILES
source "$(dirname "$0")/common.sh"
study lenet4_mnist lenet4 "mnist:$1" 0,0.01,0.02,0.04,0.08,0.16 60
