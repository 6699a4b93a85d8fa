#!/usr/bin/env bash
# On a GPU host, from the repo root, with build/portable carried over: device info, the whole
# test suite (GPU tests included), the default `attnjit run`, and a forward tile sweep of the
# benchmark's headline shape. Logs go to $OUT (or ./gpu-logs).
set -uo pipefail
out=${OUT:-gpu-logs}
mkdir -p "$out"
bin=build/portable/bin
status=0
"$bin/attnjit" info 2>&1 | tee "$out/info.txt"
"$bin/attnjit_tests" ${TEST_ARGS:-} 2>&1 | tee "$out/tests.txt" || status=1
"$bin/attnjit" run 2>&1 | tee "$out/run-default.txt" || status=1
# Forward sweep, B=1 S=4096 H=32 D=128 bf16, non-causal and causal.
for causal in "" "--causal"; do
  for cfg in ${SWEEP:-"128 64 4 2" "128 32 4 2" "128 64 4 3" "128 64 8 2" "128 32 8 2" "64 64 4 2" "64 64 4 3" "128 128 8 2"}; do
    set -- $cfg
    for qr in "" "--q-in-regs"; do
      "$bin/attnjit" run $causal --block-m=$1 --block-n=$2 --warps=$3 --stages=$4 $qr \
        --check-rows=256 2>&1 | tee -a "$out/sweep.txt" | grep -E "TFLOP|error|FAIL" || true
    done
  done
done
exit $status
