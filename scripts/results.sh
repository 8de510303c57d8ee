#!/usr/bin/env bash
# Reproduces docs/results.md: `graft compare` of every method on all-MiniLM-L6-v2 for
# five GLUE tasks, full training sets, the budgets below, seed 42. Each task writes
# results/<task>/{results.json,results.md,chart.svg}.
#   scripts/results.sh [BUILD [TASK...]]   (after `make models`; about 2 hours on 2 cores)
set -euo pipefail
BUILD=${1:-build}
shift || true
TASKS=("$@")
[ ${#TASKS[@]} -eq 0 ] && TASKS=(cola sst2 rte stsb mrpc)
GRAFT="$BUILD/bin/graft"
MINILM=.cache/models/all-MiniLM-L6-v2
METHODS=houlsby,pfeiffer,lora,prefix_tuning,prompt_tuning,full,head
COMMON=(--backbone "$MINILM" --methods "$METHODS" --batch-size 32 --max-length 128 --seed 42 --no-progress)

for task in "${TASKS[@]}"; do
  case "$task" in
    cola|rte) budget=(--epochs 3) ;;            # 8.6k and 2.5k rows
    stsb|mrpc) budget=(--epochs 2) ;;           # 5.7k and 3.7k rows
    sst2) budget=(--max-steps 600 --eval-every 150) ;;  # 19.2k of 67k rows
    *) echo "unknown task $task" >&2; exit 2 ;;
  esac
  "$GRAFT" compare "${COMMON[@]}" --task "$task" "${budget[@]}" --output "results/$task"
done
