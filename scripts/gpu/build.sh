#!/usr/bin/env bash
# Build msccl-executor-nccl (NCCL 2.23.4 with the MSCCL loader) and nccl-tests against it, with CUDA 13,
# for one GPU architecture.
#
#   scripts/gpu/build.sh SRC BUILD
#
# SRC holds msccl-executor-nccl/ and nccl-tests/ (scripts/gpu/fetch_sources.sh); the library lands in
# BUILD/executor/lib, the tests in BUILD/nccl-tests, the step times in BUILD/times.txt.
# Settings (environment): CUDA_HOME (/usr/local/cuda), NVCC_GENCODE (sm_90 only), JOBS (nproc),
# ONLY_FUNCS (NCCL's own kernel filter, e.g. "AllReduce Sum f32 * *|AllGather * *"; default: all).
#
# CUDA 13 fixes (see cuda13_compat.h): the compat header is force-included in every compile through the
# executor's NPKIT_FLAGS hook; the dynamic CUDA runtime leaves out src/enhcompat.cc; and NPKit's one
# read of the removed cudaDeviceProp::clockRate is rewritten to the header's attribute query.
set -euo pipefail

SRC=$(cd "${1:?usage: build.sh SRC BUILD}" && pwd)
mkdir -p "${2:?usage: build.sh SRC BUILD}"
BUILD=$(cd "$2" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
NVCC_GENCODE=${NVCC_GENCODE:--gencode=arch=compute_90,code=sm_90}
JOBS=${JOBS:-$(nproc)}
EXECUTOR=$SRC/msccl-executor-nccl
TESTS=$SRC/nccl-tests

sed -i 's/std::to_string(dev_prop\.clockRate)/std::to_string(collcCuda13ClockRateKHz(dev))/' \
  "$EXECUTOR/src/misc/npkit.cc"
# nccl-tests names the fp8 types (NCCL >= 2.24) in a block that only a CUDA check guards; add the NCCL one.
sed -i 's/^#if defined(__CUDA_FP8_TYPES_EXIST__)$/#if defined(__CUDA_FP8_TYPES_EXIST__) \&\& NCCL_VERSION_CODE >= NCCL_VERSION(2,24,0)/' \
  "$TESTS/src/common.cu"

executor_args=(-C "$EXECUTOR" -j"$JOBS" src.build BUILDDIR="$BUILD/executor" CUDA_HOME="$CUDA_HOME"
  NVCC_GENCODE="$NVCC_GENCODE" CUDARTLIB=cudart NPKIT_FLAGS="-include $HERE/cuda13_compat.h")
[[ -z ${ONLY_FUNCS:-} ]] || executor_args+=(ONLY_FUNCS="$ONLY_FUNCS")

tests_args=(-C "$TESTS/src" -j"$JOBS" NCCL_HOME="$BUILD/executor" CUDA_HOME="$CUDA_HOME"
  NVCC_GENCODE="$NVCC_GENCODE" BUILDDIR="$BUILD/nccl-tests" MPI=0)
# nccl-tests' objects need only nccl.h, which the executor's build writes first: compile them while the
# executor's kernels compile (its msccl_kernel.cu alone takes minutes), and link once libnccl exists.
tests_objects=("$BUILD/nccl-tests/verifiable/verifiable.o")
for source in "$TESTS"/src/*.cu; do
  tests_objects+=("$BUILD/nccl-tests/$(basename "${source%.cu}").o")
done

start=$(date +%s)
make "${executor_args[@]}" &
executor_pid=$!
until [[ -f $BUILD/executor/include/nccl_net.h ]]; do  # written right after nccl.h
  kill -0 "$executor_pid" 2>/dev/null || break
  sleep 1
done
tests_status=0
[[ ! -f $BUILD/executor/include/nccl_net.h ]] || make "${tests_args[@]}" "${tests_objects[@]}" || tests_status=$?
wait "$executor_pid"
built=$(date +%s)
((tests_status == 0)) || exit "$tests_status"
make "${tests_args[@]}"
done_at=$(date +%s)

{
  echo "msccl-executor-nccl: $((built - start)) s (make -j$JOBS, $NVCC_GENCODE, ONLY_FUNCS='${ONLY_FUNCS:-}')"
  echo "nccl-tests: linked $((done_at - built)) s after that (its objects compile alongside the executor)"
} | tee "$BUILD/times.txt"
ls -l "$BUILD/executor/lib"
