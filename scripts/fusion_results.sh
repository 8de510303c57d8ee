#!/usr/bin/env bash
# AdapterFusion on GLUE (docs/results.md, "Adapters that build on each other"): Houlsby
# adapters trained on MRPC, STS-B, CoLA and SST-2, then a fusion over them trained on
# RTE, against a Houlsby adapter trained on RTE alone — same backbone, data, budget and
# seed. Each run keeps its folder under results/fusion/; a finished run (results.json)
# is skipped, an interrupted one resumes, so the script picks up where it stopped.
#   scripts/fusion_results.sh [BUILD]    (after `make models`; 1–2 hours on 2 cores)
set -euo pipefail
BUILD=${1:-build}
GRAFT="$BUILD/bin/graft"
OUT=results/fusion
COMMON=(--backbone .cache/models/all-MiniLM-L6-v2 --batch-size 32 --max-length 128 --seed 42 --no-progress)
mkdir -p "$OUT"

run() {  # NAME ARGS...: one graft train into $OUT/NAME unless it finished
  local name=$1
  shift
  [ -f "$OUT/$name/results.json" ] && { echo "$name: done"; return; }
  echo "$name: training"
  "$GRAFT" train "${COMMON[@]}" "$@" --output "$OUT/$name" 2>&1 | tail -1
}

# The source tasks' adapters (CoLA with 2 epochs, one less than docs/results.md's table).
run mrpc --task mrpc --method houlsby --epochs 2
run stsb --task stsb --method houlsby --epochs 2
run cola --task cola --method houlsby --epochs 2
run sst2 --task sst2 --method houlsby --max-steps 600 --eval-every 150
# The target task: an adapter on RTE alone, and a fusion of the four source adapters.
run rte-houlsby --task rte --method houlsby --epochs 5
run rte-fusion --task rte --method fusion --epochs 5 --lr 1e-4 \
  --adapter mrpc="$OUT/mrpc/best" --adapter stsb="$OUT/stsb/best" --adapter cola="$OUT/cola/best" --adapter sst2="$OUT/sst2/best"

python3 - "$OUT" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
for name in ["mrpc", "stsb", "cola", "sst2", "rte-houlsby", "rte-fusion"]:
    r = json.loads((out / name / "results.json").read_text())
    h = r["headline"]
    print(f"{name:12s} {r['task']:5s} {h} {100 * r['best'][h]:.1f} (step {r['best_step']} of {r['steps']}), "
          f"{r['trainable_parameters']:,} trainable ({r['trainable_percent']:.2f}%), {r['train_seconds']:.0f} s")
PY
