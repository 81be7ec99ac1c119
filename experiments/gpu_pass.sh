#!/usr/bin/env bash
# One prepared GPU pass (issue 22), run from the repo root on the GPU machine with `.whl/` beside
# it (../shared/gpu/README.md says which wheels). Each step has its own time limit and leaves
# its tail in $OUT (the folder that comes back), so a step that runs long still returns the
# others. Steps: CUDA tests; the paper's command with the CUDA fast path (default) and with
# gpu.strict_fp32=true (wall time and ALCA of both); bench_gpu.py's rows; the default suite on
# 8 workers; torch.compile rows last, if time is left. Without CUDA (a CPU try) it runs the same
# steps and says so; shorten it there with GPU_PASS_BUDGET_S, GPU_PASS_SCALE (0.1 = 10%) and
# GPU_PASS_SKIP=suite,bench_compile (names of steps to leave out).
set -u
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
BUDGET=${GPU_PASS_BUDGET_S:-380}   # seconds for all steps together
SCALE=${GPU_PASS_SCALE:-1}         # scales every step's own limit (a CPU try uses less)
PY=${PYTHON:-python3}
T0=$(date +%s); left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
lim() { awk -v s="$1" -v k="$SCALE" 'BEGIN { v = int(s * k); print (v < 5 ? 5 : v) }'; }

if ls .whl/*.whl > /dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl > "$OUT/pip.txt" 2>&1 || { echo "wheels failed"; exit 3; }
fi
# extend PYTHONPATH, never replace it: children (tests, sweep workers) import from /tmp/site
export PYTHONPATH=$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
export SEGSER_OUTPUT_DIR=${SEGSER_OUTPUT_DIR:-/tmp/segser-out} SEGSER_DATA_DIR=${SEGSER_DATA_DIR:-/tmp/segser-data}
{ nvidia-smi -L 2>&1 || echo "no nvidia-smi"; nproc; git log --oneline -1 2>/dev/null
  $PY -c "import torch, lightning, hydra, soxr, soundfile, torchmetrics; print('torch', torch.__version__, 'lightning', lightning.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'NO CUDA: a CPU try')"
  echo "setup $(( $(date +%s) - T0 )) s"; } > "$OUT/env.txt" 2>&1

step() {  # step NAME LIMIT_S COMMAND...: time a command, keep its tail
  local name=$1 limit; limit=$(lim "$2"); shift 2
  case ",${GPU_PASS_SKIP:-}," in *",$name,"*) echo "## $name: skipped (GPU_PASS_SKIP)" >> "$OUT/$name.txt"; return;; esac
  local rest; rest=$(left)
  if [ "$rest" -lt 10 ]; then echo "## $name: skipped, budget spent" >> "$OUT/$name.txt"; return; fi
  [ "$limit" -gt "$rest" ] && limit=$rest
  local s; s=$(date +%s)
  timeout "$limit" "$@" > "/tmp/$name.log" 2>&1; local rc=$?
  { echo "## $name: rc $rc, $(( $(date +%s) - s )) s wall (limit $limit s): $*"; tail -60 "/tmp/$name.log"; } >> "$OUT/$name.txt"
  mkdir -p "$OUT/logs"; [ "$(stat -c %s "/tmp/$name.log")" -lt 2000000 ] && cp "/tmp/$name.log" "$OUT/logs/"
}

paper() {  # paper NAME [OVERRIDE...]: the paper's command; wall time and test ALCA
  local name=$1; shift; local dir=/tmp/$name s; s=$(date +%s); rm -rf "$dir"
  $PY -m segser.train dataset=demo segmentation=overlap head.units=400 backbone.weights=none \
    trainer.max_epochs=5 hydra.run.dir="$dir" "$@"; local rc=$?
  echo "PAPER $name: rc $rc, $(( $(date +%s) - s )) s wall, test ALCA $($PY -c "import json; print(json.load(open('$dir/metrics.json'))['metrics']['ALCA'])" 2>&1)"
  return $rc
}
export -f paper; export PY

XDIST() { $PY -c "import xdist" 2> /dev/null && echo "-n $1"; }  # pytest-xdist, where installed
step cuda_tests 30 $PY -m pytest -q -p no:cacheprovider -rs $(XDIST 4) tests/test_cuda_numerics.py \
  tests/models/test_speed.py tests/models/test_module.py tests/data/test_batches.py
# one batch first builds the demo corpus and its feature cache, so both timed runs find them
step prepare 60 bash -c 'paper "$@"' _ prepare trainer.max_epochs=1 +trainer.limit_train_batches=1 \
  +trainer.limit_val_batches=1 +trainer.limit_test_batches=1
step paper_fast 55 bash -c 'paper "$@"' _ paper_fast
step paper_strict 55 bash -c 'paper "$@"' _ paper_strict gpu.strict_fp32=true
step bench_gpu 100 $PY experiments/bench_gpu.py --rows levers,loader,lightning,sweep,stacked
step bench_ssl 45 $PY experiments/bench_ssl.py --device cuda  # SSL backbones in bf16 (issue 17)
rest=$(left); suite=$(( rest - 5 )); [ "$suite" -gt 150 ] && suite=150
step suite "$suite" $PY -m pytest -q -p no:cacheprovider -rfs $(XDIST 8) --timeout 120 \
  --ignore=tests/test_notebook.py
step bench_compile 120 $PY experiments/bench_gpu.py --rows compile
grep -h "^## " "$OUT"/*.txt > "$OUT/summary.txt" 2>/dev/null
grep -h "^PAPER" /tmp/p*.log >> "$OUT/summary.txt" 2>/dev/null
grep -h " | " /tmp/bench_*.log >> "$OUT/summary.txt" 2>/dev/null
echo "total $(( $(date +%s) - T0 )) s" >> "$OUT/env.txt"
