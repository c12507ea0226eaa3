#!/usr/bin/env bash
# Binarized Network-in-Network on CIFAR-10 (paper Fig. 2). Usage: nin_cifar10.sh CIFAR10_DIR
source "$(dirname "$0")/common.sh"
study nin_cifar10 nin "cifar10:$1" 0,0.01,0.02,0.04,0.08 200
