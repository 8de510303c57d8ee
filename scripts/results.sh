#!/usr/bin/env bash
# Reproduces docs/results.md: `graft compare` of every method on all-MiniLM-L6-v2 for
# five GLUE tasks, full training sets, the budgets below, seed 42. Each task writes
# results/<task>/{results.json,results.md,chart.svg}.
#   scripts/results.sh [BUILD]     (after `make models`; about 50 minutes on 2 cores)
set -euo pipefail
BUILD=${1:-build}
GRAFT="$BUILD/bin/graft"
MINILM=.cache/models/all-MiniLM-L6-v2
METHODS=houlsby,pfeiffer,lora,prefix_tuning,prompt_tuning,full,head
COMMON=(--backbone "$MINILM" --methods "$METHODS" --batch-size 32 --max-length 128 --seed 42 --no-progress)

# The small tasks: one epoch over the full training set.
for task in rte mrpc stsb cola; do
  "$GRAFT" compare "${COMMON[@]}" --task "$task" --epochs 1 --output "results/$task"
done
# SST-2 (67k rows): 200 steps of 32 rows (6,400 rows, a tenth of an epoch).
"$GRAFT" compare "${COMMON[@]}" --task sst2 --max-steps 200 --eval-every 100 --output results/sst2
