// How fast can a few threadblocks copy device memory to device memory?
//
// The event simulation caps every send at one threadblock's copy rate (src/collc/predict/params.py,
// docs/cost-model.md §1). This program measures that rate on the GPU it runs on: B threadblocks of
// T threads each copy their own contiguous slice of a large buffer into another buffer with 16-byte
// loads and stores, U independent loads in flight per thread (NCCL's copy loop unrolls 4 on the
// MSCCL executor's NCCL and 8 on recent NCCL for sm_80 and later), optionally as volatile loads
// (as NCCL's copy primitives read their sources).
//
// Build and run on the GPU machine (one H200, CUDA 13):
//   nvcc -O3 -arch=sm_90 -o tb_copy_rate scripts/gpu/tb_copy_rate.cu && ./tb_copy_rate
// Output: one CSV line per configuration,
//   threads,unroll,volatile,blocks,bytes_per_block,best_gbps,median_gbps,best_gbps_per_block
// where GB/s = 1e9 bytes copied per second (each byte is read once and written once), over 7 timed
// launches after one warm-up, timed with CUDA events.

#include <cuda_runtime.h>

#include "cuda_check.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>


__device__ __forceinline__ uint4 load16(const uint4* p, bool is_volatile) {
  uint4 v;
  if (is_volatile) {
    asm volatile("ld.volatile.global.v4.u32 {%0,%1,%2,%3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
  } else {
    v = *p;
  }
  return v;
}

// Block b copies elements [b * per_block, (b + 1) * per_block) of src to dst; per_block is a multiple
// of blockDim.x * UNROLL, so every thread runs the same number of full rounds.
template <int UNROLL, bool VOLATILE>
__global__ void copy_kernel(const uint4* __restrict__ src, uint4* __restrict__ dst, size_t per_block) {
  const uint4* s = src + blockIdx.x * per_block;
  uint4* d = dst + blockIdx.x * per_block;
  const size_t round = static_cast<size_t>(blockDim.x) * UNROLL;
  for (size_t base = threadIdx.x; base < per_block; base += round) {
    uint4 v[UNROLL];
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) v[u] = load16(s + base + u * blockDim.x, VOLATILE);
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) d[base + u * blockDim.x] = v[u];
  }
}

using Kernel = void (*)(const uint4*, uint4*, size_t);

template <int UNROLL>
Kernel pick(bool is_volatile) {
  return is_volatile ? copy_kernel<UNROLL, true> : copy_kernel<UNROLL, false>;
}

Kernel kernel_for(int unroll, bool is_volatile) {
  switch (unroll) {
    case 1: return pick<1>(is_volatile);
    case 2: return pick<2>(is_volatile);
    case 4: return pick<4>(is_volatile);
    default: return pick<8>(is_volatile);
  }
}

int main() {
  const size_t buffer_bytes = size_t(4) << 30;     // 4 GiB source, 4 GiB destination
  const size_t max_block_bytes = size_t(256) << 20;  // one block copies at most 256 MiB per launch
  const int timed = 7;

  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("# device: %s, %d SMs, L2 %d MiB\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20);

  uint4 *src = nullptr, *dst = nullptr;
  CHECK(cudaMalloc(&src, buffer_bytes));
  CHECK(cudaMalloc(&dst, buffer_bytes));
  CHECK(cudaMemset(src, 1, buffer_bytes));
  CHECK(cudaMemset(dst, 0, buffer_bytes));
  cudaEvent_t start, stop;
  CHECK(cudaEventCreate(&start));
  CHECK(cudaEventCreate(&stop));

  std::printf("threads,unroll,volatile,blocks,bytes_per_block,best_gbps,median_gbps,best_gbps_per_block\n");
  const int thread_counts[] = {256, 512, 640, 1024};
  const int unrolls[] = {1, 2, 4, 8};
  const int block_counts[] = {1, 2, 4, 8, 16, 32, 66, 132};
  for (int threads : thread_counts) {
    for (int unroll : unrolls) {
      for (int is_volatile = 0; is_volatile < 2; ++is_volatile) {
        Kernel kernel = kernel_for(unroll, is_volatile != 0);
        for (int blocks : block_counts) {
          const size_t round = size_t(threads) * unroll;  // elements of 16 bytes per round
          size_t per_block = std::min(max_block_bytes, buffer_bytes / blocks) / 16;
          per_block = per_block / round * round;
          std::vector<float> gbps;
          for (int rep = 0; rep <= timed; ++rep) {
            CHECK(cudaEventRecord(start));
            kernel<<<blocks, threads>>>(src, dst, per_block);
            CHECK(cudaEventRecord(stop));
            CHECK(cudaEventSynchronize(stop));
            CHECK(cudaGetLastError());
            float ms = 0;
            CHECK(cudaEventElapsedTime(&ms, start, stop));
            if (rep > 0) gbps.push_back(float(double(per_block) * 16 * blocks / (ms * 1e-3) / 1e9));
          }
          std::sort(gbps.begin(), gbps.end());
          std::printf("%d,%d,%d,%d,%zu,%.2f,%.2f,%.2f\n", threads, unroll, is_volatile, blocks, per_block * 16,
                      gbps.back(), gbps[gbps.size() / 2], gbps.back() / blocks);
        }
      }
    }
  }
  CHECK(cudaFree(src));
  CHECK(cudaFree(dst));
  return 0;
}
