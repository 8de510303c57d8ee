#!/usr/bin/env bash
# make demo: the best real job graft can do today, on real checkpoints.
set -euo pipefail
BUILD=${1:-build}
GRAFT="$BUILD/bin/graft"
MINILM=.cache/models/all-MiniLM-L6-v2
STORIES=../shared/models/stories260K/stories260K.bin

echo "== graft info: all-MiniLM-L6-v2 (real sentence-transformers checkpoint)"
"$GRAFT" info --backbone "$MINILM"

echo
echo "== graft embed: sentence embeddings (mean pooling + L2 norm, as sentence-transformers)"
"$GRAFT" embed --backbone "$MINILM" "A man is playing a guitar." "Someone plays an instrument." "The stock market fell today." \
  | cut -c1-100

echo
echo "== graft generate: stories260K (llama2.c), greedy from BOS"
"$GRAFT" generate --backbone "$STORIES" --max-tokens 120

echo
echo "== graft generate: sampled, temperature 0.8, top-p 0.9"
"$GRAFT" generate --backbone "$STORIES" --prompt "Lily saw a cat" --temperature 0.8 --top-p 0.9 --seed 7 --max-tokens 80
