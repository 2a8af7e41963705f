/*
 * cuda13_compat.h - lets msccl-executor-nccl (NCCL 2.23.4 base) build and run with CUDA 13.
 *
 * The build force-includes this header in every host and device compile (NPKIT_FLAGS="-include ...",
 * see build.sh); the executor's sources are not edited.
 *
 * Two things changed in CUDA 13 that the executor's src/include/cudawrap.h and src/misc/cudawrap.cc
 * rely on:
 *
 * 1. cudaTypedefs.h no longer defines the unversioned driver function-pointer types (PFN_cuMemCreate
 *    and so on), only the versioned ones (PFN_cuMemCreate_v10020). Below, each unversioned name the
 *    executor uses is defined as the versioned type whose signature matches the call the executor
 *    makes, which is the type CUDA 12's headers gave that name.
 *
 * 2. cudaGetDriverEntryPoint() returns the newest driver ABI for the CUDA runtime it was built with.
 *    Built with CUDA 13 that is cuCtxCreate_v4 (four arguments) and the CUDA 13 cuCtxGetDevice, whose
 *    signatures differ from the calls the executor makes. Below, the executor's calls are redirected
 *    to cudaGetDriverEntryPointByVersion() with the version of the type chosen in 1, so the pointer
 *    it gets and the type it calls it through always agree.
 *
 * 3. Stream capture: cudaStreamGetCaptureInfo_v2() is gone (cudaStreamGetCaptureInfo() now also returns
 *    the edge data), and cudaStreamUpdateCaptureDependencies() takes the edge data as a new third
 *    argument. Below, both old forms are defined on the new ones with no edge data, which is what the
 *    old forms meant.
 *
 * 4. cudaDeviceProp::clockRate is gone. NPKit's trace dump (src/misc/npkit.cc) reads it; build.sh
 *    rewrites that one expression to collcCuda13ClockRateKHz(dev), defined below on the
 *    cudaDevAttrClockRate attribute, which gives the same kHz figure.
 *
 * Building with the dynamic CUDA runtime (CUDARTLIB=cudart, see build.sh) leaves out the executor's
 * src/enhcompat.cc, whose weak stand-ins for older static runtimes would clash with the definitions
 * below.
 */
#ifndef COLLC_CUDA13_COMPAT_H_
#define COLLC_CUDA13_COMPAT_H_

#include <cuda.h>
#include <cuda_runtime.h>

#if defined(__cplusplus) && CUDART_VERSION >= 13000
#include <cudaTypedefs.h>
#include <string.h>

/* One line per driver function the executor loads: its name and the ABI version it calls. */
#define COLLC_CUDA13_PFNS(X)                   \
  X(cuGetErrorString, 6000)                    \
  X(cuGetErrorName, 6000)                      \
  X(cuDeviceGet, 2000)                         \
  X(cuDeviceGetAttribute, 2000)                \
  X(cuMemGetAddressRange, 3020)                \
  X(cuCtxCreate, 11040)                        \
  X(cuCtxDestroy, 4000)                        \
  X(cuCtxGetCurrent, 4000)                     \
  X(cuCtxSetCurrent, 4000)                     \
  X(cuCtxGetDevice, 2000)                      \
  X(cuPointerGetAttribute, 4000)               \
  X(cuLaunchKernel, 4000)                      \
  X(cuLaunchKernelEx, 11060)                   \
  X(cuMemAddressReserve, 10020)                \
  X(cuMemAddressFree, 10020)                   \
  X(cuMemCreate, 10020)                        \
  X(cuMemGetAllocationGranularity, 10020)      \
  X(cuMemExportToShareableHandle, 10020)       \
  X(cuMemImportFromShareableHandle, 10020)     \
  X(cuMemMap, 10020)                           \
  X(cuMemRelease, 10020)                       \
  X(cuMemRetainAllocationHandle, 11000)        \
  X(cuMemSetAccess, 10020)                     \
  X(cuMemUnmap, 10020)                         \
  X(cuMemGetAllocationPropertiesFromHandle, 10020) \
  X(cuMemGetHandleForAddressRange, 11070)      \
  X(cuMulticastAddDevice, 12010)               \
  X(cuMulticastBindMem, 12010)                 \
  X(cuMulticastBindAddr, 12010)                \
  X(cuMulticastCreate, 12010)                  \
  X(cuMulticastGetGranularity, 12010)          \
  X(cuMulticastUnbind, 12010)

#define COLLC_CUDA13_TYPEDEF(symbol, version) typedef PFN_##symbol##_v##version PFN_##symbol;
COLLC_CUDA13_PFNS(COLLC_CUDA13_TYPEDEF)
#undef COLLC_CUDA13_TYPEDEF

/* The ABI version the executor calls `symbol` with; 0 for a name it does not load. */
static inline unsigned int collcCuda13AbiVersion(const char* symbol) {
#define COLLC_CUDA13_VERSION_OF(name, version) \
  if (strcmp(symbol, #name) == 0) return version;
  COLLC_CUDA13_PFNS(COLLC_CUDA13_VERSION_OF)
#undef COLLC_CUDA13_VERSION_OF
  return 0;
}

/* The executor's four-argument cudaGetDriverEntryPoint(), pinned to the versions above. */
static inline cudaError_t collcCuda13GetDriverEntryPoint(const char* symbol, void** funcPtr,
                                                         unsigned long long flags,
                                                         cudaDriverEntryPointQueryResult* driverStatus = NULL) {
  unsigned int version = collcCuda13AbiVersion(symbol);
  if (version == 0) {
    if (funcPtr) *funcPtr = NULL;
    if (driverStatus) *driverStatus = cudaDriverEntryPointSymbolNotFound;
    return cudaSuccess;
  }
  return cudaGetDriverEntryPointByVersion(symbol, funcPtr, version, flags, driverStatus);
}
#define cudaGetDriverEntryPoint collcCuda13GetDriverEntryPoint

static inline cudaError_t cudaStreamGetCaptureInfo_v2(cudaStream_t stream, cudaStreamCaptureStatus* status,
                                                      unsigned long long* id, cudaGraph_t* graph,
                                                      const cudaGraphNode_t** dependencies,
                                                      size_t* numDependencies) {
  return cudaStreamGetCaptureInfo(stream, status, id, graph, dependencies, NULL, numDependencies);
}

static inline cudaError_t cudaStreamUpdateCaptureDependencies(cudaStream_t stream, cudaGraphNode_t* dependencies,
                                                              size_t numDependencies, unsigned int flags) {
  return cudaStreamUpdateCaptureDependencies(stream, dependencies, (const cudaGraphEdgeData*)NULL,
                                             numDependencies, flags);
}

/* The SM clock in kHz, what cudaDeviceProp::clockRate held before CUDA 13. */
static inline int collcCuda13ClockRateKHz(int dev) {
  int kHz = 0;
  if (cudaDeviceGetAttribute(&kHz, cudaDevAttrClockRate, dev) != cudaSuccess) return 0;
  return kHz;
}

#endif /* __cplusplus && CUDART_VERSION >= 13000 */
#endif /* COLLC_CUDA13_COMPAT_H_ */
