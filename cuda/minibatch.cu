// Many small balanced Sinkhorn problems at once, for mini-batch OT (ALGORITHMS 7, 2.1).
//
// Why this shape: a mini-batch problem (a few hundred points a side) is far too small to fill a
// GPU, and launching its half-steps one by one would cost more than the arithmetic. So one
// thread block owns one problem for the whole solve: its threads share the rows (then the
// columns), costs are evaluated from the points on the fly (the points of a problem stay in L1
// and L2), the L1 row error is reduced in the block in a fixed order, and the block stops on its
// own when it reaches tol. Problems of one launch run side by side, one per block.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "common.cuh"
#include "pyot/common/costs.hpp"
#include "pyot/common/status.hpp"
#include "pyot_cuda.hpp"

namespace pyot::cuda {
namespace {

using detail::check_launch;
using detail::require;
using detail::Scratch;

constexpr int kThreads = detail::kReduceThreads;

// The block's sum, returned to every thread (the shared buffer is free again on return).
__device__ __forceinline__ double all_sum(double v, double* shared) {
  const double s = detail::block_sum(v, shared);
  __syncthreads();
  return s;
}

template <Metric M, class T>
__device__ __forceinline__ double pair_cost(const T* xi, const T* yj, index_t d, T p) {
  T s = T(0);
  for (index_t k = 0; k < d; ++k) s += CostOp<M>::term(xi[k], yj[k], p);
  return double(CostOp<M>::finish(s, p));
}

// out = LSE_j (lw_j + (pot_j - c(x_i, y_j)) inv_eps) over the m points of the other side.
template <Metric M, class T>
__device__ __forceinline__ double soft_min(const T* xi, const T* y, index_t m, index_t d, T p,
                                           const double* lw, const double* pot, double inv_eps) {
  double run_max = -INFINITY, run_sum = 0.0;
  for (index_t j = 0; j < m; ++j)
    detail::lse_push(run_max, run_sum,
                     lw[j] + (pot[j] - pair_cost<M>(xi, y + j * d, d, p)) * inv_eps);
  return detail::lse_value(run_max, run_sum);
}

template <Metric M, class T>
__global__ void __launch_bounds__(kThreads)
    batched_kernel(const T* __restrict__ x, const T* __restrict__ y, index_t n, index_t m,
                   index_t d, T p, const double* __restrict__ a, const double* __restrict__ b,
                   double eps, double tol, std::int64_t max_iter, double* __restrict__ f,
                   double* __restrict__ g, double* __restrict__ scratch, double* __restrict__ value,
                   double* __restrict__ err, double* __restrict__ objective,
                   std::int64_t* __restrict__ n_iter, int* __restrict__ status) {
  __shared__ double shared[kThreads];
  const index_t k = blockIdx.x;
  const T* xk = x + k * n * d;
  const T* yk = y + k * m * d;
  const double* ak = a + k * n;
  const double* bk = b + k * m;
  double* fk = f + k * n;
  double* gk = g + k * m;
  double* fnew = scratch + k * (2 * n + m);
  double* la = fnew + n;
  double* lb = la + n;
  const double inv_eps = 1.0 / eps;
  for (index_t i = threadIdx.x; i < n; i += kThreads) la[i] = ak[i] > 0.0 ? log(ak[i]) : -INFINITY;
  for (index_t j = threadIdx.x; j < m; j += kThreads) lb[j] = bk[j] > 0.0 ? log(bk[j]) : -INFINITY;
  __syncthreads();

  std::int64_t iter = 0;
  bool cols_exact = false;
  int st = int(Status::MaxIter);
  double e = INFINITY;
  while (true) {
    double local = 0.0;
    for (index_t i = threadIdx.x; i < n; i += kThreads) {
      const double out = soft_min<M>(xk + i * d, yk, m, d, p, lb, gk, inv_eps);
      fnew[i] = -eps * out;
      if (ak[i] > 0.0) local += ak[i] * fabs(exp((fk[i] - fnew[i]) * inv_eps) - 1.0);
    }
    e = all_sum(local, shared);
    if (isnan(e)) {
      st = int(Status::NotFinite);
      break;
    }
    if (cols_exact && e <= tol) {
      st = int(Status::Converged);
      break;
    }
    if (iter >= max_iter) break;
    for (index_t i = threadIdx.x; i < n; i += kThreads) fk[i] = fnew[i];
    __syncthreads();
    for (index_t j = threadIdx.x; j < m; j += kThreads)
      gk[j] = -eps * soft_min<M>(yk + j * d, xk, n, d, p, la, fk, inv_eps);
    __syncthreads();
    cols_exact = true;
    ++iter;
  }

  // Objective <a, f> + <b, g> - eps (sum b - sum a sum b) and value <P, C>.
  double af = 0.0, sa = 0.0, pc = 0.0;
  for (index_t i = threadIdx.x; i < n; i += kThreads) {
    if (!(ak[i] > 0.0)) continue;
    af += ak[i] * fk[i];
    sa += ak[i];
    const double hi = la[i] + fk[i] * inv_eps;
    for (index_t j = 0; j < m; ++j) {
      const double c = pair_cost<M>(xk + i * d, yk + j * d, d, p);
      const double w = exp(hi + lb[j] + (gk[j] - c) * inv_eps);
      if (w > 0.0) pc += w * c;
    }
  }
  double bg = 0.0, sb = 0.0;
  for (index_t j = threadIdx.x; j < m; j += kThreads) {
    if (!(bk[j] > 0.0)) continue;
    bg += bk[j] * gk[j];
    sb += bk[j];
  }
  af = all_sum(af, shared);
  sa = all_sum(sa, shared);
  pc = all_sum(pc, shared);
  bg = all_sum(bg, shared);
  sb = all_sum(sb, shared);
  if (threadIdx.x == 0) {
    const double obj = af + bg - eps * (sb - sa * sb);
    if (st != int(Status::NotFinite) && !isfinite(obj)) st = int(Status::NotFinite);
    value[k] = pc;
    err[k] = e;
    objective[k] = obj;
    n_iter[k] = iter;
    status[k] = st;
  }
}

}  // namespace

template <class T>
void sinkhorn_batched(const T* x, const T* y, std::int64_t batches, std::int64_t n, std::int64_t m,
                      std::int64_t d, pyot::Metric metric, double p, const double* a,
                      const double* b, const SinkhornOptions& options, double* f, double* g,
                      double* value, double* err, double* objective, std::int64_t* n_iter,
                      int* status, stream_t stream) {
  constexpr const char* fn = "sinkhorn_batched";
  detail::require_sizes(fn, n, m, d);
  require(batches >= 0, fn, "batches must be non-negative");
  require(n > 0 && m > 0, fn, "every problem needs at least one point a side");
  require(batches <= detail::kMaxGridX, fn, "too many problems for one launch");
  require(options.eps > 0.0 && std::isfinite(options.eps), fn, "eps must be positive and finite");
  require(options.tol >= 0.0 && options.max_iter >= 0, fn, "tol and max_iter must be >= 0");
  require(metric != Metric::Minkowski || (p > 0.0 && std::isfinite(p)), fn,
          "Minkowski p must be positive and finite, got " + std::to_string(p));
  if (batches == 0) return;
  require(x != nullptr && y != nullptr && a != nullptr && b != nullptr && f != nullptr &&
              g != nullptr && value != nullptr && err != nullptr && objective != nullptr &&
              n_iter != nullptr && status != nullptr,
          fn, "a device pointer is null");
  const auto s = detail::as_cuda(stream);
  Scratch unit_x, unit_y;
  const T* xp = x;
  const T* yp = y;
  if (metric == Metric::Cosine && d > 0) {
    unit_x.allocate(std::size_t(batches * n * d) * sizeof(T), s);
    unit_y.allocate(std::size_t(batches * m * d) * sizeof(T), s);
    normalize_rows(x, batches * n, d, unit_x.as<T>(), stream);
    normalize_rows(y, batches * m, d, unit_y.as<T>(), stream);
    xp = unit_x.as<T>();
    yp = unit_y.as<T>();
  }
  const Scratch scratch(std::size_t(batches * (2 * n + m)) * sizeof(double), s);
  pyot::dispatch_metric(metric, [&](auto tag) {
    batched_kernel<decltype(tag)::value, T><<<unsigned(batches), kThreads, 0, s>>>(
        xp, yp, n, m, d, T(p), a, b, options.eps, options.tol, options.max_iter, f, g,
        scratch.data(), value, err, objective, n_iter, status);
  });
  check_launch("batched_kernel launch");
}

template void sinkhorn_batched<float>(const float*, const float*, std::int64_t, std::int64_t,
                                      std::int64_t, std::int64_t, pyot::Metric, double,
                                      const double*, const double*, const SinkhornOptions&, double*,
                                      double*, double*, double*, double*, std::int64_t*, int*,
                                      stream_t);
template void sinkhorn_batched<double>(const double*, const double*, std::int64_t, std::int64_t,
                                       std::int64_t, std::int64_t, pyot::Metric, double,
                                       const double*, const double*, const SinkhornOptions&,
                                       double*, double*, double*, double*, double*, std::int64_t*,
                                       int*, stream_t);

}  // namespace pyot::cuda
