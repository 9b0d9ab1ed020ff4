// Host-side entry points of the CUDA kernels in cuda/*.cu.
//
// This header needs no CUDA header, so the bindings (plain C++ compiled by the host compiler)
// can include it: the stream travels as `void*` and is cast to cudaStream_t inside the .cu.
// All pointers are device pointers; every launcher is asynchronous on `stream` (nullptr = the
// legacy default stream), runs on the current device, and throws CudaError (a
// std::runtime_error carrying the CUDA error string) when a launch fails, or
// std::invalid_argument for bad sizes, so nothing reaches the interpreter as a crash.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

#include "pyot/common/costs.hpp"

namespace pyot::cuda {

// The caller's stream (cudaStream_t), opaque here.
using stream_t = void*;

// A failed CUDA call; a distinct type so the bindings can translate it to pyot.CudaError
// without catching every std::runtime_error.
class CudaError : public std::runtime_error {
 public:
  explicit CudaError(const std::string& what) : std::runtime_error(what) {}
};

// Number of usable CUDA devices; 0 when there is no driver, no device or any other error.
// Safe to call on a machine without a GPU (it is how `pyot.cuda_available()` answers).
int device_count() noexcept;

// The online log-sum-exp half-step of Sinkhorn on point clouds (ALGORITHMS 2.1, 2.2):
//
//   out_i = LSE_j ( h_j - c(x_i, y_j) * inv_eps ),   i < n,
//
// with c from pyot::CostOp<metric> (p used by Minkowski only) evaluated in T, and the LSE
// streamed over tiles of y and accumulated in double; out_i = -inf when every term is -inf
// (e.g. m == 0, or all h_j = -inf). The caller sets f_i = -eps * out_i.
// x: n x d, y: m x d, both row-major T; h: m doubles; out: n doubles (must not alias h).
// Metric::Cosine expects rows already normalised (see normalize_rows), as the CPU core does.
// When n is small next to m, y is cut into ranges whose partial sums are merged in a fixed
// order (deterministic); their scratch (16 bytes per row and range) comes stream-ordered from
// the device's default memory pool (cudaMallocAsync), and if it cannot, the call runs unsplit.
// Explicitly instantiated for float and double.
template <class T>
void lse_rows_online(const T* x, const T* y, std::int64_t n, std::int64_t m, std::int64_t d,
                     pyot::Metric metric, double p, const double* h, double inv_eps, double* out,
                     stream_t stream);

// out_i = x_i / ||x_i||_2 (norm taken in double; a zero row stays zero), the preparation the
// Cosine metric expects. x, out: n x d row-major T; out may equal x (in place).
// Explicitly instantiated for float and double.
template <class T>
void normalize_rows(const T* x, std::int64_t n, std::int64_t d, T* out, stream_t stream);

}  // namespace pyot::cuda
