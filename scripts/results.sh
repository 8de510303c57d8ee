#!/usr/bin/env bash
# Reproduces docs/results.md: `graft compare` of every method on all-MiniLM-L6-v2 for
# five GLUE tasks, full training sets, the budgets below, seed 42. Each task writes
# results/<task>/{results.json,results.md,chart.svg}.
#   scripts/results.sh [BUILD [TASK...]]   (after `make models`; about 2.5 hours on 2 cores)
# houlsby64 is the Houlsby adapter with a 64-wide bottleneck (reduction factor 6, 2.6% of
# the parameters): Houlsby et al. chose the adapter size per task from {8, 64, 256}.
set -euo pipefail
BUILD=${1:-build}
shift || true
TASKS=("$@")
[ ${#TASKS[@]} -eq 0 ] && TASKS=(cola rte sst2 mrpc stsb)
GRAFT="$BUILD/bin/graft"
MINILM=.cache/models/all-MiniLM-L6-v2
METHODS=houlsby,pfeiffer,lora,prefix_tuning,prompt_tuning,full,head,houlsby64=houlsby
CONFIGS=$(mktemp)
trap 'rm -f "$CONFIGS"' EXIT
echo '{"houlsby64": {"reduction_factor": 6}}' > "$CONFIGS"
COMMON=(--backbone "$MINILM" --methods "$METHODS" --configs "$CONFIGS" --batch-size 32 --max-length 128 --seed 42 --no-progress)

for task in "${TASKS[@]}"; do
  case "$task" in
    cola|rte) budget=(--epochs 3) ;;            # 8.6k and 2.5k rows
    stsb|mrpc) budget=(--epochs 2) ;;           # 5.7k and 3.7k rows
    sst2) budget=(--max-steps 600 --eval-every 150) ;;  # 19.2k of 67k rows
    *) echo "unknown task $task" >&2; exit 2 ;;
  esac
  "$GRAFT" compare "${COMMON[@]}" --task "$task" "${budget[@]}" --output "results/$task"
done
