#!/usr/bin/env bash
# make demo: graft's main job on real data — every PEFT method, the linear probe and
# full fine-tuning trained alike on the real all-MiniLM-L6-v2 checkpoint for SST-2
# (3,000 training rows, 2 epochs, seed 42; scored on the full dev set), then the table,
# results/demo-sst2/{results.json,results.md,chart.svg}. About 8 minutes on 2 cores.
set -euo pipefail
BUILD=${1:-build}
GRAFT="$BUILD/bin/graft"
MINILM=.cache/models/all-MiniLM-L6-v2

"$GRAFT" info --backbone "$MINILM" | head -12
echo
"$GRAFT" compare --backbone "$MINILM" --task sst2 --train-rows 3000 --epochs 2 --batch-size 32 --seed 42 \
  --methods houlsby,pfeiffer,lora,prefix_tuning,prompt_tuning,full,head --output results/demo-sst2

echo
echo "== a trained adapter on new sentences (graft predict, 1 = positive)"
"$GRAFT" predict --backbone "$MINILM" --adapter results/demo-sst2/houlsby/best \
  "A gorgeous, witty and moving film." "Two hours of my life I will never get back."
