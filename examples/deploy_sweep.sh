#!/usr/bin/env bash
# Deploy the BER-0 model and the most resilient one of a run (RUN, e.g. runs/fashion_mnist_lenet4)
# - every trained repeat of each - through export -> inject (rates of the paper's MRAM at 0.5 V,
# the defaults of the rate inputs) -> evaluate under a write-voltage sweep of the paper's MRAM fed
# through those inputs, and regenerate the run's report with all sweeps: one table per model and,
# per point, one across its trained models (the spread between them beside the flip noise), with
# RESULTS/NAME_discussion.md if present.
# Usage: deploy_sweep.sh RUN BEST_POINT [PULSE]
source "$(dirname "$0")/common.sh"
run=$1 best=$2 pulse=${3:-10ns}
name=$(basename "$run")
mkdir -p "$RESULTS"
evaluations=()
for point in ber=0 "$best"; do
    tag=${point//=/}
    for checkpoint in "$run/jobs/$point"/repeat-*.pt; do
        repeat=$(basename "$checkpoint" .pt)
        repeat=${repeat#repeat-}
        model="$RESULTS/${name}_${tag}_r${repeat}"
        $XNORFAULT export "$run" --point "$point" --repeat "$repeat" -o "$model.onnx" \
            --testset "$RESULTS/${name}_test.npz"
        $XNORFAULT inject "$model.onnx" -o "${model}_faulty.onnx" --voltage 0.5 --pulse "$pulse" \
            --mram-device paper
        $XNORFAULT evaluate "${model}_faulty.onnx" --data "$RESULTS/${name}_test.npz" \
            --voltage 0.40:0.85:0.05 --pulse "$pulse" --mram-device paper \
            --repeats "${EVAL_REPEATS:-10}" --latency-batches 1,256 --max-drop 0.01 \
            --plot "${model}_voltage_sweep.png" --json > "${model}_voltage_sweep.json"
        evaluations+=(--evaluation "${model}_voltage_sweep.json")
    done
done
discussion=()
[ -f "$RESULTS/${name}_discussion.md" ] && discussion=(--discussion "$RESULTS/${name}_discussion.md")
$XNORFAULT report "$run" -o "$RESULTS/$name.md" --csv "$RESULTS/$name.csv" "${discussion[@]}" \
    "${evaluations[@]}"
