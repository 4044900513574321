#!/usr/bin/env bash
# The benchmarks (and, with `tests`, the test suite) on a GPU machine, in one bounded command:
#
#     bash benchmarks/gpu_run.sh bench [seconds]   # results/*_gpu.json, logs under $OUT
#     bash benchmarks/gpu_run.sh tests [seconds]   # pytest on JAX's GPU backend, log under $OUT
#
# It uses the machine's own python3 and packages (JAX with CUDA, optax, flax, torch with CUDA)
# with this checkout on PYTHONPATH, and stops each step at its share of the time given, so
# that one slow step cannot take the others' time. JAX and torch share the card, so JAX's
# preallocation is off. NPROC sets the test run's xdist workers (default 16); OUT the folder
# for logs and JSON copies (the device tool sets it).
set -u
what=${1:-bench}
budget=${2:-360}
OUT=${OUT:-/tmp/gpu_run}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
log=$OUT/$what.txt
start=$SECONDS

# run SECONDS CMD...: CMD bounded by SECONDS and by what is left of the budget (10 s kept)
run() {
  local t=$1 left=$((budget - (SECONDS - start) - 10))
  shift
  ((left < t)) && t=$left
  if ((t < 15)); then echo "skipped (no time left): $*" | tee -a "$log"; return; fi
  echo "+ [${t}s] $*" | tee -a "$log"
  timeout -s INT -k 15 "$t" "$@" >>"$log" 2>&1
  echo "rc=$? after $((SECONDS - start)) s" | tee -a "$log"
}

{
  nvidia-smi -L
  python3 -c 'import jax, jaxlib, optax, flax, numpy, torch
print("jax", jax.__version__, "jaxlib", jaxlib.__version__, "optax", optax.__version__,
      "flax", flax.__version__, "numpy", numpy.__version__, "torch", torch.__version__)
print(jax.devices(), torch.cuda.is_available())'
} 2>&1 | tee -a "$log"

cd benchmarks
if [ "$what" = bench ]; then
  # Durations seen on an H200 (2026-11-26, JAX 0.11.2): update_throughput ~150 s for 16M
  # (mostly XLA compiles of the 500-leaf trees, 3-9 s each); train_step ~50 s (torch.compile
  # 6-9 s per model); train_step_many_leaves ~100 s; peak_memory ~45 s per variant at 16M/500;
  # tests ~110 s with 16 workers. Budget ~460 s for bench + ~130 s for tests, plus the start.
  run 170 python3 update_throughput.py --sizes 16M,128M --leaves 1,500 \
    --only sgd,adam,adamw,adagrad --tree-opts adam,sgd --reps 20 --rounds 3 \
    --name update_throughput_gpu
  run 60 python3 train_step.py --reps 50 --rounds 3 --name train_step_gpu
  run 110 python3 train_step_many_leaves.py --name train_step_many_leaves_gpu
  run 150 python3 peak_memory.py --name peak_memory_gpu
  cp results/*_gpu.json "$OUT"/ 2>/dev/null
  # the tables, last, so they are in the reply's tail
  grep -h -A 60 '^| ' "$log" | grep '^|' | grep -v '^|---' | tail -n 120
else
  cd ..
  run "$budget" python3 -m pytest -q -m "not torch" -n ${NPROC:-16} -p no:cacheprovider \
    --junitxml="$OUT/tests.xml" -W ignore::DeprecationWarning
  grep -E '(passed|failed|error)' "$log" | tail -n 3
  grep -E '^(FAILED|ERROR) ' "$log" | head -n 60
fi
