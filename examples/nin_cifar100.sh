#!/usr/bin/env bash
# Binarized Network-in-Network on CIFAR-100 (paper Fig. 2). Usage: nin_cifar100.sh CIFAR100_DIR
source "$(dirname "$0")/common.sh"
study nin_cifar100 nin "cifar100:$1" 0,0.01,0.02,0.04,0.08 200
