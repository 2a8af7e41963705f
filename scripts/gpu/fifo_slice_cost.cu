// What does one slice of a Simple-protocol connection cost a threadblock, besides moving its bytes?
//
// The event simulation (src/collc/predict/des.py, docs/cost-model.md §1) moves every send at most at
// one threadblock's copy rate and charges each call a fixed step overhead as latency. A smaller
// NCCL_BUFFSIZE cuts a call into smaller slices, and every slice is a handshake on the connection's
// FIFO: the sender waits for a free slot, copies the slice in, fences and posts the tail; the receiver
// polls the tail, copies the slice out and posts the head. This program measures what that handshake
// costs on one GPU: P pairs of threadblocks of 512 threads (the data threads of an MSCCL Simple
// kernel), each pair a sender and a receiver joined by a FIFO of 8 slots in device memory (NCCL_STEPS)
// and two flags on their own cache lines, stream 256 MiB per pair through the FIFO in slices of 2
// slots (the MSCCL kernel's SLICESTEPS on Simple), for connection buffers of 32 KiB to 4 MiB (a slot
// is an eighth). The receiver reads the FIFO with volatile 16-byte loads, as the runtime's copy loop
// reads a peer's data; both copy with 8 loads in flight per thread.
//
// The time per slice is fitted as  t = a + slice_bytes / r  by least squares over the buffer sizes:
// `a` is what a slice costs beyond its bytes (flag round trip on the GPU, fence, __syncthreads), `r`
// the streaming rate of the pair. Over NVLink a flag also crosses the link (the simulation charges the
// path's latency for that); this measures the part that stays on the GPU.
//
// Build and run on the GPU machine (one H200, CUDA 13):
//   nvcc -O3 -arch=sm_90 -o fifo_slice_cost scripts/gpu/fifo_slice_cost.cu && ./fifo_slice_cost
// Output: one CSV line per configuration,
//   pairs,fence,buffer_bytes,slice_bytes,slices,best_us,gbps_per_pair,us_per_slice
// then one fit line per (pairs, fence): fit,pairs,fence,a_us,r_gbps,max_rel_residual.

#include <cuda_runtime.h>

#include "cuda_check.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

constexpr int THREADS = 512;
constexpr int UNROLL = 8;
constexpr int SLOTS = 8;        // NCCL_STEPS
constexpr int SLICE_SLOTS = 2;  // MSCCL_SLICESTEPS on Simple
constexpr size_t BYTES_PER_PAIR = size_t(256) << 20;
constexpr int FLAG_STRIDE = 32;  // uint64 words: 256 bytes between flags, each on its own line

__device__ __forceinline__ uint4 load_volatile(const uint4* p) {
  uint4 v;
  asm volatile("ld.volatile.global.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

// The whole block copies n 16-byte elements, UNROLL loads in flight per thread.
template <bool VOLATILE>
__device__ __forceinline__ void block_copy(const uint4* s, uint4* d, size_t n) {
  const size_t round = size_t(blockDim.x) * UNROLL;
  for (size_t base = threadIdx.x; base < n; base += round) {
    uint4 v[UNROLL];
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) {
      size_t at = base + size_t(u) * blockDim.x;
      if (at < n) v[u] = VOLATILE ? load_volatile(s + at) : s[at];
    }
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) {
      size_t at = base + size_t(u) * blockDim.x;
      if (at < n) d[at] = v[u];
    }
  }
}

template <bool SYSTEM_FENCE>
__device__ __forceinline__ void post(volatile unsigned long long* flag, unsigned long long value) {
  if (SYSTEM_FENCE) {
    __threadfence_system();
  } else {
    __threadfence();
  }
  *flag = value;
}

// Block 2p sends pair p's data through its FIFO, block 2p + 1 receives it.
template <bool SYSTEM_FENCE>
__global__ void pipe_kernel(const uint4* src, uint4* dst, uint4* fifo, unsigned long long* flags,
                            size_t per_pair, size_t slot) {
  const int pair = blockIdx.x / 2;
  const bool sender = blockIdx.x % 2 == 0;
  const size_t slice = slot * SLICE_SLOTS;
  const size_t slices = per_pair / slice;
  uint4* ring = fifo + size_t(pair) * SLOTS * slot;
  volatile unsigned long long* head = flags + size_t(pair) * 2 * FLAG_STRIDE;
  volatile unsigned long long* tail = head + FLAG_STRIDE;
  const uint4* in = src + size_t(pair) * per_pair;
  uint4* out = dst + size_t(pair) * per_pair;
  for (size_t s = 0; s < slices; ++s) {
    const unsigned long long step = s * SLICE_SLOTS;
    uint4* at = ring + (step % SLOTS) * slot;
    if (sender) {
      if (threadIdx.x == 0)
        while (*head + SLOTS < step + SLICE_SLOTS) {
        }
      __syncthreads();
      block_copy<false>(in + s * slice, at, slice);
      __syncthreads();
      if (threadIdx.x == 0) post<SYSTEM_FENCE>(tail, step + SLICE_SLOTS);
    } else {
      if (threadIdx.x == 0)
        while (*tail < step + SLICE_SLOTS) {
        }
      __syncthreads();
      block_copy<true>(at, out + s * slice, slice);
      __syncthreads();
      if (threadIdx.x == 0) post<SYSTEM_FENCE>(head, step + SLICE_SLOTS);
    }
  }
}

struct Row {
  size_t slice_bytes;
  double us_per_slice;
};

int main() {
  const int pair_counts[] = {1, 8, 32};
  const size_t buffers[] = {32 << 10, 64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20, 2 << 20, 4 << 20};
  const int max_pairs = 32;
  const size_t per_pair = BYTES_PER_PAIR / sizeof(uint4);
  uint4 *src, *dst, *fifo;
  unsigned long long* flags;
  CHECK(cudaMalloc(&src, max_pairs * BYTES_PER_PAIR));
  CHECK(cudaMalloc(&dst, max_pairs * BYTES_PER_PAIR));
  CHECK(cudaMalloc(&fifo, size_t(max_pairs) * (4 << 20)));
  CHECK(cudaMalloc(&flags, size_t(max_pairs) * 2 * FLAG_STRIDE * sizeof(unsigned long long)));
  CHECK(cudaMemset(src, 1, max_pairs * BYTES_PER_PAIR));
  cudaEvent_t start, stop;
  CHECK(cudaEventCreate(&start));
  CHECK(cudaEventCreate(&stop));
  std::printf("pairs,fence,buffer_bytes,slice_bytes,slices,best_us,gbps_per_pair,us_per_slice\n");
  std::vector<std::string> fits;
  for (int system_fence = 0; system_fence < 2; ++system_fence) {
    for (int pairs : pair_counts) {
      std::vector<Row> rows;
      for (size_t buffer : buffers) {
        const size_t slot = buffer / SLOTS / sizeof(uint4);
        const size_t slice_bytes = slot * SLICE_SLOTS * sizeof(uint4);
        const size_t slices = BYTES_PER_PAIR / slice_bytes;
        float best = 1e30f;
        for (int launch = 0; launch < 6; ++launch) {  // the first is a warm-up
          CHECK(cudaMemset(flags, 0, size_t(pairs) * 2 * FLAG_STRIDE * sizeof(unsigned long long)));
          CHECK(cudaEventRecord(start));
          if (system_fence)
            pipe_kernel<true><<<2 * pairs, THREADS>>>(src, dst, fifo, flags, per_pair, slot);
          else
            pipe_kernel<false><<<2 * pairs, THREADS>>>(src, dst, fifo, flags, per_pair, slot);
          CHECK(cudaEventRecord(stop));
          CHECK(cudaEventSynchronize(stop));
          CHECK(cudaGetLastError());
          float ms = 0;
          CHECK(cudaEventElapsedTime(&ms, start, stop));
          if (launch > 0) best = std::min(best, ms);
        }
        const double us = best * 1000.0;
        const double per_slice = us / double(slices);
        rows.push_back({slice_bytes, per_slice});
        std::printf("%d,%s,%zu,%zu,%zu,%.1f,%.2f,%.4f\n", pairs, system_fence ? "system" : "gpu", buffer,
                    slice_bytes, slices, us, BYTES_PER_PAIR / us / 1000.0, per_slice);
      }
      // least squares of t = a + b * x, x = slice bytes; r = 1 / b (bytes per µs -> GB/s / 1000)
      double n = rows.size(), sx = 0, sy = 0, sxx = 0, sxy = 0;
      for (const Row& row : rows) {
        sx += row.slice_bytes;
        sy += row.us_per_slice;
        sxx += double(row.slice_bytes) * row.slice_bytes;
        sxy += row.slice_bytes * row.us_per_slice;
      }
      const double b = (n * sxy - sx * sy) / (n * sxx - sx * sx);
      const double a = (sy - b * sx) / n;
      double worst = 0;
      for (const Row& row : rows)
        worst = std::max(worst, std::abs(a + b * row.slice_bytes - row.us_per_slice) / row.us_per_slice);
      char line[160];
      std::snprintf(line, sizeof line, "fit,%d,%s,%.4f,%.2f,%.3f", pairs, system_fence ? "system" : "gpu", a,
                    1.0 / b / 1000.0, worst);
      fits.push_back(line);
    }
  }
  for (const std::string& line : fits) std::printf("%s\n", line.c_str());
  return 0;
}
