#!/usr/bin/env bash
# On a GPU host, from the repo root, with build/portable carried over. Sections (SECTIONS, default
# all): info, tests (the whole doctest suite, GPU cases included), run (default forward and
# backward), sweep (forward tile sweep of the headline shape, mma.sync and wgmma), bench (bench/seed_bench.py: the
# seed benchmark against PyTorch's attention backends), sanitize (compute-sanitizer memcheck +
# racecheck, one small shape per type and pass), python (the Python module on libattnjit_c.so:
# its CPU test, then attnjit.attention against PyTorch's math backend, forward and gradients).
# Logs go to $OUT (or ./gpu-logs).
set -uo pipefail
out=${OUT:-gpu-logs}
mkdir -p "$out"
bin=build/portable/bin
sections=${SECTIONS:-"info tests run sweep bench sanitize python"}
status=0
has() { [[ " $sections " == *" $1 "* ]]; }

has info && "$bin/attnjit" info 2>&1 | tee "$out/info.txt"
if has tests; then
  "$bin/attnjit_tests" ${TEST_ARGS:-} >"$out/tests.txt" 2>&1 || status=1
  grep -E "^\[doctest\] (test cases|assertions)|ERROR|skipped" "$out/tests.txt" | tail -20
fi
if has run; then
  for pass in fwd bwd; do
    "$bin/attnjit" run --pass=$pass 2>&1 | tee -a "$out/run-default.txt" | grep -E "kernel|check|time|throughput|error" || status=1
  done
  # Absorbed MLA 576/512, V read from K (forward only): prefill, then decode shapes. TFLOP/s
  # counts 2*B*H*Sq*Sk*(576 + 512), half when causal.
  mla="--head-dim=576 --head-dim-v=512 --heads=128 --kv-heads=1 --layout=v-in-k"
  for shape in "--seqlen=4096 --causal" "--seqlen=4096" "--batch=8 --seqlen-q=1 --seqlen-k=8192" \
               "--batch=8 --seqlen-q=64 --seqlen-k=8192 --causal"; do
    "$bin/attnjit" run $mla $shape 2>&1 | tee -a "$out/run-mla.txt" | grep -E "kernel|check|time|throughput|error" || status=1
  done
fi
if has sweep; then
  for causal in "" "--causal"; do
    for cfg in ${SWEEP:-"128 64 4 2" "128 128 8 2" "64 64 4 3"}; do
      set -- $cfg
      for qr in "" "--q-in-regs"; do
        "$bin/attnjit" run $causal --block-m=$1 --block-n=$2 --warps=$3 --stages=$4 $qr \
          --wgmma=false --check-rows=256 >>"$out/sweep.txt" 2>&1 || true
      done
    done
    # The wgmma forward (sm_90a; refused with the reason elsewhere).
    for cfg in ${SWEEP_WGMMA:-"64 96 4 2" "64 128 4 3" "128 128 8 2" "128 160 8 2"}; do
      set -- $cfg
      "$bin/attnjit" run $causal --block-m=$1 --block-n=$2 --warps=$3 --stages=$4 --wgmma \
        --check-rows=256 >>"$out/sweep.txt" 2>&1 || true
    done
  done
  grep -E "^kernel|^throughput" "$out/sweep.txt" | paste - - | awk '{print $2, $(NF-1)}'
fi
if has bench; then
  # The seed benchmark (bench/seed_bench.py): core and layers, attnjit against SDPA's backends and
  # FlexAttention, checked against fp64. Results in $out/seed-bench/<date>-<card>/, to be copied
  # to bench/results/ in the repo (then bench/update_readme.py). BENCH_ARGS: e.g. --quick. In two
  # halves: BENCH_ROOT=/tmp/sb BENCH_ARGS="--causal no", then "--causal yes --append".
  root=${BENCH_ROOT:-$out/seed-bench}
  PYTHONPATH=python ATTNJIT_LIBRARY=build/portable/lib/libattnjit_c.so \
    python3 bench/seed_bench.py --out-root "$root" ${BENCH_ARGS:-} \
    >"$out/seed-bench.txt" 2>"$out/seed-bench.log" || status=1
  if [[ $root != "$out/seed-bench" ]]; then mkdir -p "$out/seed-bench"; cp -r "$root"/. "$out/seed-bench/"; fi
  grep -E "^seed_bench|FAIL|OVER-PEAK| error" "$out/seed-bench.log" | tail -15; cat "$out/seed-bench.txt"
fi
if has sanitize; then
  small="--batch=2 --check-rows=64 --runs=1 --warmup=0"
  for tool in memcheck racecheck; do
    for pass in fwd bwd; do
      for type in "--heads=4" "--heads=4 --layout=packed" "--heads=8 --kv-heads=2" \
                  "--heads=4 --kv-heads=1" "--heads=4 --head-dim=192 --head-dim-v=128"; do
        [[ $type == *packed* ]] && extra="--seqlen=113" || extra="--seqlen-q=97 --seqlen-k=131"
        if compute-sanitizer --tool $tool --error-exitcode 9 "$bin/attnjit" run --pass=$pass \
             $small $type $extra --causal >"$out/sanitize.log" 2>&1; then
          echo "sanitize $tool $pass $type: clean"
        else
          echo "sanitize $tool $pass $type: FAILED"; tail -20 "$out/sanitize.log"; status=1
        fi
      done
    done
    # The wide-Dv forward's shared-memory exchanges (P, row maxima and sums) are racecheck's to see.
    mla="--heads=16 --kv-heads=1 --head-dim=576 --head-dim-v=512 --layout=v-in-k"
    if compute-sanitizer --tool $tool --error-exitcode 9 "$bin/attnjit" run $small $mla \
         --seqlen-q=97 --seqlen-k=131 --causal >"$out/sanitize.log" 2>&1; then
      echo "sanitize $tool fwd $mla: clean"
    else
      echo "sanitize $tool fwd $mla: FAILED"; tail -20 "$out/sanitize.log"; status=1
    fi
  done 2>&1 | tee "$out/sanitize.txt"
fi
if has python; then
  for test in test_capi test_torch_attention; do
    PYTHONPATH=python ATTNJIT_LIBRARY=build/portable/lib/libattnjit_c.so \
      python3 tests/python/$test.py >"$out/python-$test.txt" 2>&1 || status=1
    tail -25 "$out/python-$test.txt"
  done
fi
exit $status
