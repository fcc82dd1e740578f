#!/usr/bin/env bash
# The GPU measurements behind README's performance table, in one go, on a machine with one CUDA GPU.
# usage: bench/gpu_suite.sh OUT_DIR [ANCHOR_LOOPS_PY]
# Writes OUT_DIR/suite.jsonl (one JSON line per measurement) and OUT_DIR/log.txt. Each step has its own
# time limit so one hang cannot take the rest with it; the whole set took about 8 minutes on an H200.
# Where a step spends its time: python3 bench/profile_step.py --model vit-a --accum 1 --top 30
set -u
out=${1:?usage: gpu_suite.sh OUT_DIR [anchor_loops.py]}
anchor=${2:-}
mkdir -p "$out"
log="$out/log.txt"
jsonl="$out/suite.jsonl"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1

step() {  # step LIMIT_S TAG command...
  local limit=$1 tag=$2; shift 2
  echo "== $tag: $*" >>"$log"
  local t0=$SECONDS
  timeout "$limit" "$@" 2>>"$log" | tee -a "$log" | { grep '^{' || true; } | sed "s/^{/{\"tag\": \"$tag\", /" >>"$jsonl"
  echo "== $tag: rc=${PIPESTATUS[0]} in $((SECONDS - t0)) s" | tee -a "$log"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >>"$log" 2>&1
python3 -c "import torch; print('torch', torch.__version__)" >>"$log" 2>&1

python3 -c "import vitlab.engine.runner, timm, pydantic, fvcore; print('imports ok', timm.__version__)" >>"$log" 2>&1
# does a replayed graph take the eager step? (cheap cases first; fp16 runs GradScaler inside the graph)
step 90 check python3 bench/gpu_check.py --cases vit-fp16,vit-fp16-overflow,vit-bf16,resnet18
# ViT-A at effective batch 64: the plain loop and vitlab, accumulation 1 then 2 at the same batch
step 120 vit-a-accum1 python3 bench/bench.py --json --model vit-a --accum 1 --steps 300 --warmup 30 \
  --variants graphs,compile+graphs
step 80 vit-a-accum2 python3 bench/bench.py --json --model vit-a --accum 2 --steps 300 --warmup 30 \
  --variants graphs,compile+graphs --no-plain
# fp16 + GradScaler inside the graph, as the seed-problem1 preset trains (micro-batch 32 x 2, like `plain`)
step 80 vit-a-fp16 python3 bench/bench.py --json --model vit-a --accum 2 --precision fp16 --steps 300 --warmup 30 \
  --variants graphs,compile+graphs --no-plain
if [ -n "$anchor" ]; then  # the reference plain loop itself, for a cross-check of bench.py's copy
  step 40 anchor-plain python3 "$anchor" vit-a plain --steps 100
fi
# what accumulation costs as the micro-batch grows (graphs only: no compile time)
B="python3 bench/bench.py --json --no-plain --variants graphs"
for acc in 1 2 4; do step 40 "vit-a-256-acc$acc" $B --model vit-a --batch 256 --accum $acc --steps 100 --warmup 20; done
for acc in 1 2; do step 45 "vit-b-512-acc$acc" $B --model vit-b --batch 512 --accum $acc --steps 60 --warmup 20; done
# ViT-B at batch 512 compiled: how close to the hardware
step 100 vit-b-512 python3 bench/bench.py --json --model vit-b --accum 1 --batch 512 --steps 60 --warmup 20 \
  --variants compile+graphs --no-plain
step 60 check-more python3 bench/gpu_check.py --cases vit-fp32,swin
echo "== done in $SECONDS s" | tee -a "$log"
