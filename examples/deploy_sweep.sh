#!/usr/bin/env bash
# Deploy the BER-0 model and the most resilient one of a run (RUN, e.g. runs/fashion_mnist_lenet4)
# through export -> inject (rates of the paper's MRAM at 0.5 V, the defaults of the rate inputs)
# -> evaluate under a write-voltage sweep of the paper's MRAM fed through those inputs, and
# regenerate the run's report with both sweeps (and RESULTS/NAME_discussion.md if present).
# Usage: deploy_sweep.sh RUN BEST_POINT [PULSE]
source "$(dirname "$0")/common.sh"
run=$1 best=$2 pulse=${3:-10ns}
name=$(basename "$run")
mkdir -p "$RESULTS"
for point in ber=0 "$best"; do
    tag=${point//=/}
    $XNORFAULT export "$run" --point "$point" -o "$RESULTS/${name}_${tag}.onnx" --testset "$RESULTS/${name}_test.npz"
    $XNORFAULT inject "$RESULTS/${name}_${tag}.onnx" -o "$RESULTS/${name}_${tag}_faulty.onnx" \
        --voltage 0.5 --pulse "$pulse" --mram-device paper
    $XNORFAULT evaluate "$RESULTS/${name}_${tag}_faulty.onnx" --data "$RESULTS/${name}_test.npz" \
        --voltage 0.40:0.85:0.05 --pulse "$pulse" --mram-device paper --repeats "${EVAL_REPEATS:-10}" --batch 1,256 --max-drop 0.01 \
        --plot "$RESULTS/${name}_${tag}_voltage_sweep.png" --json > "$RESULTS/${name}_${tag}_voltage_sweep.json"
done
discussion=()
[ -f "$RESULTS/${name}_discussion.md" ] && discussion=(--discussion "$RESULTS/${name}_discussion.md")
$XNORFAULT report "$run" -o "$RESULTS/$name.md" --csv "$RESULTS/$name.csv" "${discussion[@]}" \
    --evaluation "$RESULTS/${name}_ber0_voltage_sweep.json" --evaluation "$RESULTS/${name}_${best//=/}_voltage_sweep.json"
