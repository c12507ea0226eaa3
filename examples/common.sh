# Shared by the example scripts: run a study, then report it (with RESULTS/NAME_discussion.md
# appended when there is one).
set -euo pipefail
XNORFAULT=${XNORFAULT:-xnorfault}
DEVICE=${DEVICE:-auto}
REPEATS=${REPEATS:-10}
RUNS=${RUNS:-runs}
RESULTS=${RESULTS:-"$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/results"}

study() {  # study NAME MODEL DATA BERS EPOCHS [extra train options...]
    local name=$1 model=$2 data=$3 bers=$4 epochs=$5
    shift 5
    $XNORFAULT train --model "$model" --data "$data" --ber "$bers" --epochs "$epochs" \
        --repeats "$REPEATS" --seed 1 --torch-device "$DEVICE" --out "$RUNS/$name" "$@"
    mkdir -p "$RESULTS"
    local discussion=()
    [ -f "$RESULTS/${name}_discussion.md" ] && discussion=(--discussion "$RESULTS/${name}_discussion.md")
    $XNORFAULT report "$RUNS/$name" -o "$RESULTS/$name.md" --csv "$RESULTS/$name.csv" "${discussion[@]}"
}
