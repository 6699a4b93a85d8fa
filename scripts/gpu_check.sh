#!/usr/bin/env bash
# On a GPU host, from the repo root, with build/portable carried over. Sections (SECTIONS, default
# all): info, tests (the whole doctest suite, GPU cases included), run (default forward and
# backward), sweep (forward tile sweep of the headline shape), bench (bench/seed_core.py against
# PyTorch SDPA), sanitize (compute-sanitizer memcheck + racecheck, one small shape per type and
# pass). Logs go to $OUT (or ./gpu-logs).
set -uo pipefail
out=${OUT:-gpu-logs}
mkdir -p "$out"
bin=build/portable/bin
sections=${SECTIONS:-"info tests run sweep bench sanitize"}
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
fi
if has sweep; then
  for causal in "" "--causal"; do
    for cfg in ${SWEEP:-"128 64 4 2" "128 128 8 2" "64 64 4 3"}; do
      set -- $cfg
      for qr in "" "--q-in-regs"; do
        "$bin/attnjit" run $causal --block-m=$1 --block-n=$2 --warps=$3 --stages=$4 $qr \
          --check-rows=256 >>"$out/sweep.txt" 2>&1 || true
      done
    done
  done
  grep -E "^kernel|^throughput" "$out/sweep.txt" | paste - - | awk '{print $2, $(NF-1)}'
fi
if has bench; then
  python3 bench/seed_core.py --json "$out/seed-core.json" >"$out/seed-core.txt" 2>&1 || status=1
  python3 bench/seed_core.py --causal --json "$out/seed-core-causal.json" >"$out/seed-core-causal.txt" 2>&1 || status=1
  tail -20 "$out/seed-core.txt"; tail -20 "$out/seed-core-causal.txt"
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
  done 2>&1 | tee "$out/sanitize.txt"
fi
exit $status
