// Pieces shared by the CUDA sources in cuda/: error checks, size checks, stream-ordered
// scratch memory and a deterministic sum of per-block partials.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "pyot/common/config.hpp"
#include "pyot_cuda.hpp"

namespace pyot::cuda::detail {

// Largest grid.x a launch may ask for; grid.y and grid.z stop at 65535.
constexpr std::int64_t kMaxGridX = 2147483647;
constexpr std::int64_t kMaxGridY = 65535;

inline void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    throw CudaError(std::string("pyot.cuda: ") + what + " failed: " + cudaGetErrorName(status) +
                    ": " + cudaGetErrorString(status));
  }
}

// Checks the launch just made (bad configuration, no device, an earlier sticky error).
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

inline void require(bool ok, const char* fn, const std::string& what) {
  if (!ok) throw std::invalid_argument(std::string("pyot.cuda.") + fn + ": " + what);
}

inline void require_sizes(const char* fn, std::int64_t n, std::int64_t m, std::int64_t d) {
  require(n >= 0 && m >= 0 && d >= 0, fn,
          "sizes must be non-negative, got n=" + std::to_string(n) + ", m=" + std::to_string(m) +
              ", d=" + std::to_string(d));
}

inline cudaStream_t as_cuda(stream_t stream) { return static_cast<cudaStream_t>(stream); }

// Stream-ordered scratch memory from the device's default pool, freed on the stream however
// the launches end. `optional`: a failed allocation leaves data() null (the caller has a
// fallback) instead of throwing.
class Scratch {
 public:
  Scratch() = default;
  Scratch(std::size_t bytes, cudaStream_t stream, bool optional = false) {
    allocate(bytes, stream, optional);
  }
  // (Re)allocates: what was held is freed on its stream first.
  void allocate(std::size_t bytes, cudaStream_t stream, bool optional = false) {
    if (ptr_ != nullptr) (void)cudaFreeAsync(ptr_, stream_);
    ptr_ = nullptr;
    stream_ = stream;
    if (bytes == 0) return;
    const cudaError_t status = cudaMallocAsync(&ptr_, bytes, stream);
    if (status != cudaSuccess) {
      ptr_ = nullptr;
      (void)cudaGetLastError();  // clear it, so a later launch check does not report it
      if (!optional) check(status, "cudaMallocAsync (scratch)");
    }
  }
  ~Scratch() {
    if (ptr_ != nullptr) (void)cudaFreeAsync(ptr_, stream_);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <class U = double>
  U* as() const {
    return static_cast<U*>(ptr_);
  }
  double* data() const { return static_cast<double*>(ptr_); }

 private:
  void* ptr_ = nullptr;
  cudaStream_t stream_ = nullptr;
};

// One streamed log-sum-exp (ALGORITHMS 2.2) keeps (run_max, run_sum) with sum = sum_j exp(v_j -
// run_max); merging another pair (mx, sm) rescales to the larger maximum. All terms -inf so
// far: the pair stays (-inf, 0). lse_push adds a single term, lse_value reads LSE off a pair
// (-inf when empty).
__device__ __forceinline__ void lse_merge(double& run_max, double& run_sum, double mx, double sm) {
  const double new_max = run_max > mx ? run_max : mx;
  if (new_max == -INFINITY) return;
  run_sum = run_sum * exp(run_max - new_max) + sm * exp(mx - new_max);
  run_max = new_max;
}
// Adds one term v (one exp).
__device__ __forceinline__ void lse_push(double& run_max, double& run_sum, double v) {
  if (v > run_max) {
    run_sum = run_sum * exp(run_max - v) + 1.0;  // exp(-inf) = 0 for the first finite term
    run_max = v;
  } else if (v != -INFINITY) {
    run_sum += exp(v - run_max);
  }
}
__device__ __forceinline__ double lse_value(double run_max, double run_sum) {
  return run_max == -INFINITY ? -INFINITY : run_max + log(run_sum);
}

// Threads per block of the reductions below (a power of two).
constexpr int kReduceThreads = 256;

// Sum of the block's `v` in a fixed tree (the same order on every run and device); the result
// is valid in thread 0. `shared` holds kReduceThreads doubles.
__device__ __forceinline__ double block_sum(double v, double* shared) {
  shared[threadIdx.x] = v;
  __syncthreads();
  for (int half = kReduceThreads / 2; half > 0; half /= 2) {
    if (int(threadIdx.x) < half) shared[threadIdx.x] += shared[threadIdx.x + half];
    __syncthreads();
  }
  return shared[0];
}

// out[s] = sum of parts[s * count + (0 .. count)] for s < segments, in a fixed order (one block
// per segment).
void sum_parts(const double* parts, index_t count, index_t segments, double* out,
               cudaStream_t stream);

}  // namespace pyot::cuda::detail
