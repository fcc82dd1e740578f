#!/usr/bin/env bash
# The GPU measurements behind README's performance table, in one go, on a machine with one CUDA GPU.
# usage: bench/gpu_suite.sh OUT_DIR [ANCHOR_LOOPS_PY]
# Writes OUT_DIR/suite.jsonl (one JSON line per measurement) and OUT_DIR/log.txt. Each step has its own
# time limit so one hang cannot take the rest with it.
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
# does a replayed graph take the eager step? (cheap cases first)
step 100 check python3 bench/gpu_check.py --cases vit-fp32,vit-bf16,vit-fp16,vit-fp16-overflow,resnet18
# ViT-A at effective batch 64: the plain loop and vitlab, accumulation 1 then 2 at the same batch
step 170 vit-a-accum1 python3 bench/bench.py --json --model vit-a --accum 1 --steps 300 --warmup 30 \
  --variants graphs,compile+graphs
step 110 vit-a-accum2 python3 bench/bench.py --json --model vit-a --accum 2 --steps 300 --warmup 30 \
  --variants graphs,compile+graphs --no-plain
# fp16 + GradScaler inside the graph, as the seed-problem1 preset trains (micro-batch 32 x 2, like `plain`)
step 110 vit-a-fp16 python3 bench/bench.py --json --model vit-a --accum 2 --precision fp16 --steps 300 --warmup 30 \
  --variants graphs,compile+graphs --no-plain
# where ViT-A's step spends its time (the table goes to log.txt)
step 80 profile python3 bench/profile_step.py --model vit-a --accum 1 --top 30
# ViT-B at batch 512: how close to the hardware
step 100 vit-b-512 python3 bench/bench.py --json --model vit-b --accum 1 --batch 512 --steps 60 --warmup 20 \
  --variants compile+graphs --no-plain
if [ -n "$anchor" ]; then  # the reference plain loop itself, for a cross-check of bench.py's copy
  step 50 anchor-plain python3 "$anchor" vit-a plain --steps 100
fi
step 100 check-more python3 bench/gpu_check.py --cases swin,vit-compile
echo "== done" | tee -a "$log"
