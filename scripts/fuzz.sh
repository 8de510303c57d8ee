#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, clang-14, ASan + UBSan) and runs each in
# turn for SECONDS with a fresh working corpus seeded from the committed fixtures.
#
#   scripts/fuzz.sh [BUILD_DIR [SECONDS]]       (make fuzz FUZZ_SECONDS=N calls it)
#
# BUILD_DIR defaults to build-fuzz, SECONDS to 60; SECONDS=0 only replays the seeds
# (every committed reproducer included) once. FUZZ_TARGETS="fuzz_a fuzz_b" runs a subset;
# JOBS sets the build's parallelism (default 2). Exits non-zero when any target finds a
# crash, leak, timeout or out-of-memory, printing the target and the reproducer, which
# replays with:  BUILD_DIR/fuzz/TARGET REPRODUCER
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build-fuzz}
SECONDS_EACH=${2:-60}
JOBS=${JOBS:-2}
CXX_FUZZ=${CXX_FUZZ:-clang++-14}
ALL_TARGETS="fuzz_safetensors fuzz_model_config fuzz_adapter_config fuzz_tokenizer_json fuzz_tokenize fuzz_data_readers"
TARGETS=${FUZZ_TARGETS:-$ALL_TARGETS}
cd "$ROOT"

cmake -S . -B "$BUILD" -DCMAKE_CXX_COMPILER="$CXX_FUZZ" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DGRAFT_BUILD_FUZZ=ON -DGRAFT_BUILD_BENCH=OFF >/dev/null
# shellcheck disable=SC2086
cmake --build "$BUILD" -j"$JOBS" --target $TARGETS

# Seeds: the committed fixtures each target reads, its hand-written seeds (and kept
# reproducers) in tests/fuzz/corpus/TARGET, and for the readers a few rows cut from
# ../shared/data — written into the build folder, never committed.
seed_files() {
  case $1 in
    fuzz_safetensors) find tests -name '*.safetensors' -size -200k ;;
    fuzz_model_config) ls tests/golden/backbones/*/config.json tests/golden/bpe/*/config.json ;;
    fuzz_adapter_config) find tests/golden/peft_* tests/sdk -name adapter_config.json -o -name graft_adapter.json ;;
    fuzz_tokenizer_json) ls tests/golden/bpe/*/tokenizer.json tests/golden/bpe/*.tokenizer.json \
                            tests/golden/bpe/roberta_vocab_merges/vocab.json tests/golden/backbones/tiny_bert/vocab.txt ;;
    *) ;;
  esac
}

generated_seeds() {  # $1 target, $2 corpus folder
  case $1 in
    fuzz_tokenize)
      python3 - "$2" <<'EOF'
import json, sys
out, n = sys.argv[1], 0
for path in ("tests/golden/bpe/cases.json", "tests/golden/tokenizer_fixtures.json"):
    def walk(v):
        global n
        if isinstance(v, dict):
            if isinstance(v.get("text"), str):
                text = v["text"] + ("\t" + v["pair"] if isinstance(v.get("pair"), str) else "")
                open(f"{out}/case{n:03d}.txt", "w", encoding="utf-8").write(text); n += 1
            for x in v.values(): walk(x)
        elif isinstance(v, list):
            for x in v: walk(x)
    walk(json.load(open(path, encoding="utf-8")))
EOF
      ;;
    fuzz_data_readers)
      local shared=../shared/data
      if [ -d "$shared/glue" ]; then
        for f in "$shared"/glue/*/*.tsv; do
          head -n 6 "$f" > "$2/glue_$(basename "$(dirname "$f")")_$(basename "$f")"
        done
      fi
      [ -f "$shared/conll2003/train.txt" ] && head -n 40 "$shared/conll2003/train.txt" > "$2/conll_train.txt"
      ;;
  esac
  return 0
}

dict_for() {
  case $1 in
    fuzz_safetensors) echo tests/fuzz/dict/safetensors.dict ;;
    fuzz_model_config) echo tests/fuzz/dict/model_config.dict ;;
    fuzz_adapter_config) echo tests/fuzz/dict/adapter_config.dict ;;
    fuzz_tokenizer_json) echo tests/fuzz/dict/tokenizer_json.dict ;;
    *) ;;
  esac
}

max_len_for() {  # long enough for the seeds; the model fixtures are about 100 kB
  case $1 in
    fuzz_safetensors) echo 131072 ;;
    fuzz_tokenizer_json) echo 32768 ;;
    fuzz_tokenize) echo 4096 ;;
    *) echo 8192 ;;
  esac
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OMP_NUM_THREADS=1
failed=()
for t in $TARGETS; do
  corpus=$BUILD/corpus/$t artifacts=$BUILD/artifacts/$t log=$BUILD/logs/$t.log
  rm -rf "$corpus" && mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  seed_files "$t" | while read -r f; do cp "$f" "$corpus/$(echo "$f" | tr / _)"; done
  [ -d "tests/fuzz/corpus/$t" ] && cp tests/fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
  generated_seeds "$t" "$corpus"
  args=(-rss_limit_mb=2048 -timeout=10 -max_len="$(max_len_for "$t")" -artifact_prefix="$artifacts/" -print_final_stats=1)
  dict=$(dict_for "$t"); [ -n "$dict" ] && args+=(-dict="$dict")
  if [ "$SECONDS_EACH" -gt 0 ]; then args+=(-max_total_time="$SECONDS_EACH"); else args+=(-runs=0); fi
  echo "== $t: $(ls "$corpus" | wc -l) seeds, ${SECONDS_EACH}s (log: $log)"
  if "$BUILD/fuzz/$t" "${args[@]}" "$corpus" >"$log" 2>&1; then
    grep -E '^#[0-9]+.*(DONE|INITED)' "$log" | tail -n 1 || true
    grep -E '^stat::number_of_executed_units' "$log" || true
  else
    echo "!! $t FAILED:"
    grep -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|SUMMARY|terminate called|uncaught' "$log" | head -n 5 || true
    repro=$(grep -oE "(crash|leak|timeout|oom|slow-unit)-[0-9a-f]+" "$log" | tail -n 1 || true)
    [ -n "$repro" ] && echo "   reproducer: $artifacts/$repro   (replay: $BUILD/fuzz/$t $artifacts/$repro)"
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: findings in ${failed[*]} (logs in $BUILD/logs)"
  exit 1
fi
echo "fuzz: no findings in $(echo $TARGETS | wc -w) targets"
