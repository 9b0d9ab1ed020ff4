// Host-side entry points of the CUDA kernels in cuda/*.cu.
//
// This header needs no CUDA header, so the bindings (plain C++ compiled by the host compiler)
// can include it: the stream travels as `void*` and is cast to cudaStream_t inside the .cu.
// All pointers are device pointers; every launcher is asynchronous on `stream` (nullptr = the
// legacy default stream), runs on the current device, and throws CudaError (a
// std::runtime_error carrying the CUDA error string) when a launch fails, or
// std::invalid_argument for bad sizes, so nothing reaches the interpreter as a crash.
#pragma once
#include <cstddef>
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

// Device memory for callers without a tensor library (numpy's device="cuda"): plain
// cudaMalloc / cudaFree on the current device, and copies ordered on `stream` that return once
// done (the host side is pageable memory).
void* device_alloc(std::size_t bytes);
void device_free(void* ptr) noexcept;
void copy_to_device(void* dst, const void* src, std::size_t bytes, stream_t stream);
void copy_to_host(void* dst, const void* src, std::size_t bytes, stream_t stream);
void synchronize(stream_t stream);

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

// The dense log-domain half-steps (ALGORITHMS 2.1) on a row-major n x m cost C in T:
//   rows: out_i = LSE_j ( h_j - C_ij * inv_eps ),   i < n   (a warp per row, coalesced)
//   cols: out_j = LSE_i ( h_i - C_ij * inv_eps ),   j < m   (a thread per column; rows cut into
//         ranges merged in a fixed order when m is small)
// h and out in double, -inf for an empty or all -inf sum. Instantiated for float and double.
template <class T>
void lse_rows_dense(const T* C, std::int64_t n, std::int64_t m, const double* h, double inv_eps,
                    double* out, stream_t stream);
template <class T>
void lse_cols_dense(const T* C, std::int64_t n, std::int64_t m, const double* h, double inv_eps,
                    double* out, stream_t stream);

// The transport's row sums on point clouds at potentials (f, g), P_ij = a_i b_j exp((f_i + g_j
// - c(x_i, y_j)) / eps) never stored (ALGORITHMS 10, 1):
//   cost_rows_i = sum_j P_ij c(x_i, y_j)            (nullable: <P, C> = sum_i cost_rows_i)
//   grad_i      = sum_j P_ij grad_x c(x_i, y_j)     (nullable; n x d row-major doubles)
// x, y raw points (the cosine normalises copies itself and applies 1/|x_i|). The gradient with
// respect to y is the same call with the clouds, weights and potentials swapped.
template <class T>
void transport_rows(const T* x, const T* y, std::int64_t n, std::int64_t m, std::int64_t d,
                    pyot::Metric metric, double p, const double* a, const double* b,
                    const double* f, const double* g, double eps, double* cost_rows, double* grad,
                    stream_t stream);

// Options and outcome of the device Sinkhorn drivers; the defaults and the eps schedule are
// those of the CPU core (sinkhorn.hpp: kStageTol, kStageMaxIter, at most 200 stages).
struct SinkhornOptions {
  double eps = 1.0;
  double tol = 1e-6;
  std::int64_t max_iter = 10000;
  double eps_scaling = 0.0;  // q in (0, 1): stages eps_start q^k > eps, then eps; 0: eps only
  double eps_start = 0.0;
  bool value = true;      // compute <P, C> (one more pass); NaN when false
  bool overrelax = true;  // adaptive over-relaxation, as the CPU core (ALGORITHMS 2.5)
};
struct SinkhornOutcome {
  int status = 1;  // pyot::Status: 0 converged, 1 out of iterations, 2 not finite
  std::int64_t n_iter = 0;
  double marginal_error = 0.0;
  double value = 0.0;      // <P, C>
  double objective = 0.0;  // the dual value <a, f> + <b, g> - eps (sum b - sum a sum b)
};

// Balanced log-domain Sinkhorn entirely on the device (ALGORITHMS 2.1, 2.2, 2.4, 2.5): f, g (device
// doubles, n and m) hold the warm start on entry and the potentials on return; a, b device
// doubles of equal mass. Each iteration is one online (or dense) row and column half-step; the
// L1 row error is reduced on the device in a fixed order and read back once per iteration.
// Returns once the stream has finished the solve. Instantiated for float and double.
template <class T>
SinkhornOutcome sinkhorn_online(const T* x, const T* y, std::int64_t n, std::int64_t m,
                                std::int64_t d, pyot::Metric metric, double p, const double* a,
                                const double* b, double* f, double* g,
                                const SinkhornOptions& options, stream_t stream);
template <class T>
SinkhornOutcome sinkhorn_dense(const T* C, std::int64_t n, std::int64_t m, const double* a,
                               const double* b, double* f, double* g,
                               const SinkhornOptions& options, stream_t stream);

// Many small balanced Sinkhorn problems at once (mini-batch OT, ALGORITHMS 7): problem k has
// points x[k] (n x d) and y[k] (m x d), weights a[k], b[k], and is solved by one thread block
// to `tol` (L1 row error) or max_iter. Outputs per problem: f (B x n), g (B x m), value, err,
// objective, n_iter, status (pyot::Status codes). eps_scaling/eps_start are ignored.
template <class T>
void sinkhorn_batched(const T* x, const T* y, std::int64_t batches, std::int64_t n, std::int64_t m,
                      std::int64_t d, pyot::Metric metric, double p, const double* a,
                      const double* b, const SinkhornOptions& options, double* f, double* g,
                      double* value, double* err, double* objective, std::int64_t* n_iter,
                      int* status, stream_t stream);

// Sliced Wasserstein (ALGORITHMS 5): for each of the L unit directions (L x d doubles, row-major)
// the projections of x and y, a segmented sort (CUB), and the weighted merge of the sorted
// lines (every thread walks the pieces of one point's quantile interval: no atomics, fixed
// order). projected[l] = W_p^p of direction l (doubles). a, b: device doubles of total `mass`
// each, or both null (uniform, mass 1). grad_x (n x d) / grad_y (m x d), nullable: the gradient
// of mean_l projected[l] in the points. Directions go in chunks that keep the scratch under
// about 2 GiB. Synchronous on return.
template <class T>
void sliced_projected(const T* x, const T* y, std::int64_t n, std::int64_t m, std::int64_t d,
                      const double* a, const double* b, double mass, const double* directions,
                      std::int64_t L, double p, double* projected, double* grad_x, double* grad_y,
                      stream_t stream);

}  // namespace pyot::cuda
