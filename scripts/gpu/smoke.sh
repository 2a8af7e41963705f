#!/usr/bin/env bash
# One-rank nccl-tests run on the executor built by build.sh, with MSCCL on and MSCCL_ALGO_DIR set.
#
#   scripts/gpu/smoke.sh BUILD ALGO_DIR
#
# One rank cannot run an MSCCL algorithm (no collc file is for one GPU), so this proves the build: the
# executor loads, turns MSCCL on, reads every XML file in ALGO_DIR with its own parser, and
# all_reduce_perf passes its correctness check (-c 1). It fails unless the log shows NCCL 2.23.4, the
# executor reading ALGO_DIR, and no wrong values.
set -euo pipefail

BUILD=$(cd "${1:?usage: smoke.sh BUILD ALGO_DIR}" && pwd)
ALGO_DIR=$(cd "${2:?usage: smoke.sh BUILD ALGO_DIR}" && pwd)
LOG=${LOG:-$BUILD/smoke.log}

export LD_LIBRARY_PATH=$BUILD/executor/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export NCCL_MSCCL_ENABLE=1 MSCCL_ALGO_DIR=$ALGO_DIR
export NCCL_DEBUG=INFO NCCL_DEBUG_SUBSYS=INIT,ENV
export NCCL_NVLS_ENABLE=0   # NVLink multicast stays off on shared machines

"$BUILD/nccl-tests/all_reduce_perf" -b 1M -e 64M -f 4 -g 1 -c 1 2>&1 | tee "$LOG"

grep -q "NCCL version 2.23.4" "$LOG" || { echo "smoke: not the executor's NCCL 2.23.4" >&2; exit 1; }
grep -q "MSCCL Algo files from $ALGO_DIR" "$LOG" || { echo "smoke: MSCCL did not read $ALGO_DIR" >&2; exit 1; }
grep -q "Out of bounds values : 0 OK" "$LOG" || { echo "smoke: wrong values" >&2; exit 1; }
echo "smoke: passed"
