#!/usr/bin/env bash
# Binarized AlexNet on ImageNet or a random K-class subset (paper Fig. 4).
# Usage: alexnet_imagenet.sh IMAGENET_DIR [K [SUBSET_SEED]]
source "$(dirname "$0")/common.sh"
if [ $# -ge 2 ]; then
    study "alexnet_imagenet_${2}classes_seed${3:-0}" alexnet "imagefolder:$1" 0,0.02,0.04,0.08,0.16,0.32 45 \
        --classes "$2" --subset-seed "${3:-0}"
else
    study alexnet_imagenet alexnet "imagefolder:$1" 0,0.01,0.02,0.04,0.08,0.16,0.32 45
fi
