#!/usr/bin/env bash
# Builds the fidelity table of docs/results.md (issue #14's protocol): every method on
# all-MiniLM-L6-v2 for five GLUE tasks, full training sets, budgets that reach
# convergence (up to 20 epochs with early stopping on dev), the same learning-rate search
# for every method (its default x {0.3, 1, 3}, seed 1, and up to two more steps of x0.3
# or x3 past an edge of that grid while the edge wins), then 3 seeds at the chosen rate
# for full fine-tuning and the best adapters under 3% and under 1% of the parameters.
#
#   scripts/results.sh [BUILD [PHASE...]]
#
#   core      full fine-tuning, houlsby64 (bottleneck 64, 2.6%) and pfeiffer (0.5%): the
#             rows the bars (under 3%, under 1%) are about, first, so the earliest
#             sittings answer them
#   seeds     seeds 2 and 3 at the chosen rate for full, the best adapter under 3% and
#             the best under 1% so far (by the five-task average of the seed-1 runs)
#   shipped   the other shipped methods and the baselines (houlsby with bottleneck 24,
#             lora, prefix and prompt tuning, (IA)3, the linear probe)
#   variants  configurations that may close the gap (bottleneck 128, parallel adapter,
#             LoRA on every linear layer at r 16, rsLoRA, DoRA, Houlsby adapters with the
#             layer norms trained too)
#   default: core seeds shipped variants seeds
#
# Resumable across sittings: every run is a `graft train` folder under results/<task>/
# (LABEL/lr-xS/seed-N); a finished run is read back, an interrupted one resumes from its
# checkpoint. Stop it at any point and start it again. After each task it regenerates
# docs/results.md's tables from results/ (scripts/results_table.py). Many CPU hours on
# 2 cores: run it in the background (nohup scripts/results.sh > results/run.log &).
set -euo pipefail
BUILD=${1:-build}
shift || true
PHASES=("$@")
[ ${#PHASES[@]} -eq 0 ] && PHASES=(core seeds shipped variants seeds)
GRAFT="$BUILD/bin/graft"
HERE=$(cd "$(dirname "$0")" && pwd)
TASKS=(rte mrpc stsb cola sst2)
CORE=full,houlsby64=houlsby,pfeiffer
SHIPPED=$CORE,houlsby,lora,prefix_tuning,prompt_tuning,head
VARIANTS=lora_all16=lora,rslora_all16=lora,dora=lora,houlsby128=houlsby,parallel=houlsby,houlsby_ln=houlsby
PLUGINS=()
# (IA)3 is the SDK's example plugin, built by the tests (make test) into BUILD/ia3-build.
if [ -f "$BUILD/ia3-build/plugins/libgraft_ia3.so" ]; then
  PLUGINS=(--plugin-dir "$BUILD/ia3-build/plugins")
  SHIPPED=$SHIPPED,ia3
else
  echo "results.sh: no $BUILD/ia3-build/plugins/libgraft_ia3.so (make test builds it): ia3 is left out" >&2
fi
COMMON=(--backbone .cache/models/all-MiniLM-L6-v2 --configs "$HERE/results_configs.json" "${PLUGINS[@]}"
        --batch-size 32 --max-length 128 --lr-scales 0.3,1,3 --lr-extend 2)  # progress: a line per 5% and per evaluation in results/TASK.compare.log

budget() {  # per task: up to 20 epochs on the small tasks, one of SST-2 (eval each quarter)
  case "$1" in
    rte|mrpc|cola) echo --epochs 20 --patience 3 ;;
    stsb) echo --epochs 10 --patience 3 ;;
    sst2) echo --epochs 1 --eval-every 526 --patience 3 ;;
  esac
}

compare() {  # METHODS SEEDS [SEEDS_FOR]: one graft compare per task
  for task in "${TASKS[@]}"; do
    local more=()
    [ -n "${3:-}" ] && more=(--seeds-for "$3")
    echo "== $task: $1 (seeds $2) $(date -u +%H:%M)"
    # shellcheck disable=SC2046
    "$GRAFT" compare "${COMMON[@]}" --task "$task" $(budget "$task") --methods "$1" --seeds "$2" "${more[@]}" \
      --output "results/$task" > "results/$task.compare.log" 2>&1 || echo "   $task: a run failed; see results/$task.compare.log"
    [ -f "results/$task/results.md" ] && sed -n "3,\$p" "results/$task/results.md"
    python3 "$HERE/results_table.py" --write docs/results.md
  done
}

mkdir -p results
# The --methods entries already in the reports, in their order. A report keeps only the
# label, and an alias (pfeiffer) records its plugin, so the entry comes from the lists
# above: "pfeiffer" must stay "pfeiffer", not become "pfeiffer=houlsby".
KNOWN=$SHIPPED,$VARIANTS
RAN=
for label in $(python3 "$HERE/results_table.py" --labels | tr ',' ' '); do
  entry=
  for known in ${KNOWN//,/ }; do [ "${known%%=*}" = "$label" ] && entry=$known && break; done
  [ -n "$entry" ] && RAN=${RAN:+$RAN,}$entry || echo "results.sh: '$label' in results/ is not in this script's lists: left out" >&2
done
with() {  # LIST: RAN plus LIST's labels it lacks
  local out=$RAN item
  for item in ${1//,/ }; do
    case ",$out," in *",$item,"*) ;; *) out=${out:+$out,}$item ;; esac
  done
  echo "$out"
}
for phase in "${PHASES[@]}"; do
  case "$phase" in
    core) RAN=$(with "$CORE") ;;
    shipped) RAN=$(with "$SHIPPED") ;;
    variants) RAN=$(with "$SHIPPED,$VARIANTS") ;;
    seeds) ;;
    *) echo "unknown phase '$phase' (core, seeds, shipped or variants)" >&2; exit 2 ;;
  esac
  # Every phase keeps the 3-seed rows chosen so far; the seeds phase adds the new choice.
  FOR=$(python3 "$HERE/results_table.py" --choose $([ "$phase" = seeds ] || echo --kept))
  if [ -n "$FOR" ]; then compare "$RAN" 1,2,3 "$FOR"; else compare "$RAN" 1; fi
done
