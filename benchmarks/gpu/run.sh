#!/usr/bin/env bash
# One GPU script: the precision matrix on cuda and the real-size figures, in at most 9 minutes
# on one GPU. Each step has its own time limit (the limits add up to 540 s); a step that
# fails or runs out of time is reported as such in the summary, never skipped silently.
#
#   benchmarks/gpu/run.sh             # on a machine with one CUDA GPU, from the repository root
#   benchmarks/gpu/run.sh --dry-run   # anywhere: print the plan and exit 0
#
# Steps:
#   assets   `tuneforge assets sd15-random` (SD 1.5's real architecture, random weights) and a
#            512 px dataset (`tuneforge assets tiny-dataset --resolution 512`)
#   matrix   tests/unit/trainer/test_precision_matrix.py with TUNEFORGE_TEST_DEVICE=cuda
#            (world size 1 where the strategy allows it; the test module must honour the variable)
#   train    benchmarks/gpu/train_throughput.py: images/s at 512 px of a bare diffusers+peft
#            loop and TuneForge DDP fp16, DDP bf16, FSDP2 bf16, DeepSpeed bf16 (LoRA rank 16)
#   serve    benchmarks/gpu/serving_latency.py: latency at 512 px / 25 steps, same adapter and
#            alternating adapters (a switch per request)
#   mixed    benchmarks/mixed_batching.py --sd15: the mixed-batching speed-up of 4 requests
#
# The last line is the summary: `gpu_summary key=value ...` (`fail` or `timeout` for a step that
# did not give its figure).
set -u -o pipefail

DRY_RUN=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
TUNEFORGE="${TUNEFORGE:-$ROOT/.venv/bin/tuneforge}"
WORK="${TUNEFORGE_GPU_WORK:-/tmp/tuneforge-gpu}"
MODEL="$WORK/sd15"
DATA="$WORK/data-512"
LOGS="$WORK/logs"
TRAIN_CONFIGS=(bare-bf16 ddp-fp16 ddp-bf16 fsdp-bf16 deepspeed-bf16)

# name|limit in seconds|command
STEPS=(
  "assets|75|$TUNEFORGE assets sd15-random $MODEL --force && $TUNEFORGE assets tiny-dataset $DATA --resolution 512 --num-class 0 --force"
  "matrix|120|TUNEFORGE_TEST_DEVICE=cuda $PYTHON -m pytest -q -x -p no:cacheprovider tests/unit/trainer/test_precision_matrix.py"
)
for config in "${TRAIN_CONFIGS[@]}"; do
  STEPS+=("train-$config|45|$PYTHON benchmarks/gpu/train_throughput.py --model $MODEL --data $DATA --config $config")
done
STEPS+=(
  "serve|60|$PYTHON benchmarks/gpu/serving_latency.py --model $MODEL --size 512 --steps 25"
  "mixed|60|$PYTHON benchmarks/mixed_batching.py --sd15 --device cuda --size 512 --steps 25 --rounds 2"
)

total=0
for step in "${STEPS[@]}"; do
  IFS='|' read -r _ limit _ <<<"$step"
  total=$((total + limit))
done

echo "plan: ${#STEPS[@]} steps, limits add up to ${total}s (budget 540s); work folder $WORK"
for step in "${STEPS[@]}"; do
  IFS='|' read -r name limit command <<<"$step"
  printf '  %-22s %4ss  %s\n' "$name" "$limit" "$command"
done
if [ "$total" -gt 540 ]; then
  echo "the step limits exceed the 9-minute budget" >&2
  exit 1
fi
if [ "$DRY_RUN" = 1 ]; then
  echo "dry run: nothing executed"
  exit 0
fi

if ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "no CUDA device: run with --dry-run to see the plan" >&2
  exit 1
fi
if ! grep -qs TUNEFORGE_TEST_DEVICE tests/unit/trainer/test_precision_matrix.py tests/unit/trainer/precision_cells.py; then
  echo "note: the precision matrix does not read TUNEFORGE_TEST_DEVICE yet: its step is marked fail" >&2
fi

cd "$ROOT"
mkdir -p "$LOGS"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-4}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
SUMMARY=()
last_value() {  # last_value LOG KEY: the value of KEY=... on the log's last line that has it
  grep -o "$2=[^ ]*" "$1" | tail -n 1 | cut -d= -f2
}
for step in "${STEPS[@]}"; do
  IFS='|' read -r name limit command <<<"$step"
  log="$LOGS/$name.log"
  started=$(date +%s)
  timeout --kill-after=10 "$limit" bash -c "$command" >"$log" 2>&1
  rc=$?
  echo "== $name: exit $rc after $(( $(date +%s) - started ))s (log $log)"
  tail -n 3 "$log"
  outcome=ok
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then outcome=timeout; elif [ "$rc" != 0 ]; then outcome=fail; fi
  case "$name" in
    matrix)
      if [ "$outcome" = ok ] && ! grep -qs TUNEFORGE_TEST_DEVICE tests/unit/trainer/test_precision_matrix.py tests/unit/trainer/precision_cells.py; then
        outcome=fail  # it ran, but on the CPU
      fi
      SUMMARY+=("matrix=$outcome") ;;
    train-*)
      key="${name#train-}"; key="${key//-/_}_ips"
      SUMMARY+=("$key=$([ "$outcome" = ok ] && last_value "$log" images_per_s || echo "$outcome")") ;;
    serve)
      if [ "$outcome" = ok ]; then
        SUMMARY+=("latency_s=$(last_value "$log" latency_s)" "latency_switch_s=$(last_value "$log" latency_switch_s)")
      else
        SUMMARY+=("latency_s=$outcome" "latency_switch_s=$outcome")
      fi ;;
    mixed)
      SUMMARY+=("mixed_speedup=$([ "$outcome" = ok ] && last_value "$log" mixed_speedup || echo "$outcome")") ;;
    assets)
      if [ "$outcome" != ok ]; then
        echo "gpu_summary assets=$outcome"
        exit 1
      fi ;;
  esac
done

bare=""; ddp=""
for item in "${SUMMARY[@]}"; do
  case "$item" in
    bare_bf16_ips=*) bare="${item#*=}" ;;
    ddp_bf16_ips=*) ddp="${item#*=}" ;;
  esac
done
ratio=$("$PYTHON" -c "import sys; a, b = sys.argv[1:]; print(f'{float(a) / float(b):.3f}')" "$ddp" "$bare" 2>/dev/null || echo n/a)
echo "gpu_summary ${SUMMARY[*]} tf_vs_bare_bf16=$ratio"
