#!/usr/bin/env bash
# Binarized Network-in-Network on extended SVHN (paper Fig. 3). Usage: nin_svhn.sh SVHN_DIR
source "$(dirname "$0")/common.sh"
study nin_svhn_extended nin "svhn:$1" 0,0.01,0.02,0.04,0.08,0.16 40 --extra
