// CUDA kernels of the online (point-cloud) Sinkhorn half-step (ALGORITHMS 2.1, 2.2).
//
// Why this shape: the half-step is out_i = LSE_j(h_j - c(x_i, y_j) / eps) with c never stored,
// so the work is n*m cost evaluations plus n*m exps, and the memory traffic is what the tiling
// has to keep small. One block owns kBlockRows rows of x (one row per thread); y goes through
// shared memory in tiles of kTileCols points and chunks of kChunk coordinates, so y is read from
// global memory once per block and each staged value is broadcast to every thread. Each thread
// keeps its tile of costs in registers, then folds the tile into a running (max, sum) pair in
// double: one pass over y, O(1) state per row.
//
// One thread per row leaves a GPU mostly idle when n is small (n = 20000 is ~160 blocks), so y
// may be cut into a few column ranges (grid.y): each block streams its range into a partial
// (max, sum), and a second kernel merges the partials of a row in range order. The cut depends
// on n and m only, and every sum runs in a fixed order, so results are reproducible and do not
// depend on the device, the stream or timing.
//
// The per-coordinate cost math is pyot::CostOp from the C++ core (PYOT_HD makes it
// __host__ __device__), so CPU and GPU costs agree term by term.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "common.cuh"
#include "pyot/common/config.hpp"
#include "pyot/common/costs.hpp"
#include "pyot/common/relaxation.hpp"
#include "pyot/common/status.hpp"
#include "pyot_cuda.hpp"

namespace pyot::cuda {
namespace {

using detail::check;
using detail::check_launch;
using detail::kMaxGridX;
using detail::lse_merge;
using detail::lse_push;
using detail::lse_value;
using detail::require;
using detail::require_sizes;
using detail::Scratch;

constexpr int kBlockRows = 128;  // threads per block = rows of x per block
constexpr int kTileCols = 32;    // points of y per shared-memory tile (costs held in registers)
constexpr int kChunk = 16;       // coordinates per shared-memory chunk (any d works)
constexpr int kNormWarps = 8;    // rows per block of the normalisation kernel (a warp per row)
constexpr int kMergeThreads = 256;

// The y split: aim for this many blocks in all (a few waves on today's largest GPUs), but give
// each range at least kMinSplitCols points so the partials stay cheap next to the work.
constexpr std::int64_t kTargetBlocks = 1024;
constexpr std::int64_t kMinSplitCols = 256;
constexpr std::int64_t kMaxSplits = 65535;  // grid.y limit

__device__ __forceinline__ double dmax(double a, double b) { return a > b ? a : b; }

// Stages `count` rows x `kc` coordinates (from coordinate k0) of a row-major matrix into a
// shared tile whose rows are `ld` apart; rows at or past `rows` are zero-filled.
template <class T>
__device__ __forceinline__ void stage_tile(const T* __restrict__ src, index_t first, index_t rows,
                                           index_t d, index_t k0, int kc, int count, T* tile,
                                           int ld) {
  for (int t = threadIdx.x; t < count * kc; t += blockDim.x) {
    const int r = t / kc;
    const int c = t - r * kc;
    const index_t row = first + r;
    tile[r * ld + c] = row < rows ? src[row * d + k0 + c] : T(0);
  }
}

// exp(t) for t <= 0 (a shifted LSE term), summed in double by the caller. float32 data: the
// hardware's single-precision exp of the shift rounded to float (relative error ~1e-7, the
// data's own precision; the shift itself is taken in double), several times faster than a
// double exp; float64 data: the double exp.
template <class T>
__device__ __forceinline__ double unit_exp(double t) {
  if constexpr (std::is_same_v<T, float>) {
    return double(__expf(float(t)));
  } else {
    return exp(t);
  }
}

// Folds one tile of finished costs into the running (run_max, run_sum) of the streamed LSE:
// M' = max(M, tile max), S <- S exp(M - M') + sum_j exp(v_j - M'), v_j = h_j - c_j * inv_eps.
// All terms -inf so far: the pair stays (-inf, 0).
template <class T>
__device__ __forceinline__ void fold_tile(const T (&cost)[kTileCols], const double* hs, int cols,
                                          double inv_eps, double& run_max, double& run_sum) {
  double tile_max = -INFINITY;
#pragma unroll
  for (int j = 0; j < kTileCols; ++j) {
    if (j < cols) tile_max = dmax(tile_max, hs[j] - double(cost[j]) * inv_eps);
  }
  const double new_max = dmax(run_max, tile_max);
  if (new_max == -INFINITY) return;
  double s = 0.0;
#pragma unroll
  for (int j = 0; j < kTileCols; ++j) {
    if (j < cols) s += unit_exp<T>(hs[j] - double(cost[j]) * inv_eps - new_max);
  }
  run_sum = run_sum * exp(run_max - new_max) + s;
  run_max = new_max;
}

// One thread per row of x; the block walks its range of y, [blockIdx.y * span, + span), tile by
// tile (see the file comment). x is staged once when d <= kChunk (the common low-dimensional
// case), else chunk by chunk alongside y. Without partials (one range) it writes out_i; with
// them, the range's (max, sum) at [blockIdx.y * n + i] for merge_splits_kernel.
template <Metric M, class T>
__global__ void __launch_bounds__(kBlockRows)
    lse_rows_kernel(const T* __restrict__ x, const T* __restrict__ y, index_t n, index_t m,
                    index_t d, T p, const double* __restrict__ h, double inv_eps, index_t span,
                    double* __restrict__ out, double* __restrict__ part_max,
                    double* __restrict__ part_sum) {
  __shared__ T xs[kBlockRows * (kChunk + 1)];  // +1: rows land in different banks
  __shared__ T ys[kTileCols * kChunk];         // read as broadcasts: no padding needed
  __shared__ double hs[kTileCols];

  const index_t i0 = index_t(blockIdx.x) * kBlockRows;
  const index_t j_begin = index_t(blockIdx.y) * span;
  const index_t j_end = m - j_begin < span ? m : j_begin + span;
  const bool x_resident = d <= kChunk;
  if (x_resident) stage_tile(x, i0, n, d, 0, int(d), kBlockRows, xs, kChunk + 1);

  double run_max = -INFINITY;
  double run_sum = 0.0;
  for (index_t j0 = j_begin; j0 < j_end; j0 += kTileCols) {
    const int cols = int(j_end - j0 < kTileCols ? j_end - j0 : kTileCols);
    __syncthreads();  // the previous tile's hs/ys (and xs) are no longer read
    if (threadIdx.x < kTileCols) {
      hs[threadIdx.x] = int(threadIdx.x) < cols ? h[j0 + threadIdx.x] : -INFINITY;
    }
    T cost[kTileCols];
#pragma unroll
    for (int j = 0; j < kTileCols; ++j) cost[j] = T(0);

    for (index_t k0 = 0; k0 < d; k0 += kChunk) {
      const int kc = int(d - k0 < kChunk ? d - k0 : kChunk);
      if (k0 > 0) __syncthreads();  // the previous chunk is no longer read
      if (!x_resident) stage_tile(x, i0, n, d, k0, kc, kBlockRows, xs, kChunk + 1);
      stage_tile(y, j0, m, d, k0, kc, kTileCols, ys, kChunk);
      __syncthreads();
      for (int c = 0; c < kc; ++c) {
        const T xc = xs[threadIdx.x * (kChunk + 1) + c];
#pragma unroll
        for (int j = 0; j < kTileCols; ++j) cost[j] += CostOp<M>::term(xc, ys[j * kChunk + c], p);
      }
    }
    if (d == 0) __syncthreads();  // hs must still become visible
    if constexpr (M != Metric::SqEuclidean) {
#pragma unroll
      for (int j = 0; j < kTileCols; ++j) cost[j] = CostOp<M>::finish(cost[j], p);
    }
    fold_tile(cost, hs, cols, inv_eps, run_max, run_sum);
  }

  const index_t i = i0 + threadIdx.x;
  if (i >= n) return;
  if (part_max == nullptr) {
    out[i] = lse_value(run_max, run_sum);
  } else {
    part_max[index_t(blockIdx.y) * n + i] = run_max;
    part_sum[index_t(blockIdx.y) * n + i] = run_sum;
  }
}

// out_i = LSE over the partial (max, sum) pairs of row i, merged in range order.
__global__ void merge_splits_kernel(const double* __restrict__ part_max,
                                    const double* __restrict__ part_sum, index_t n, int splits,
                                    double* __restrict__ out) {
  const index_t i = index_t(blockIdx.x) * kMergeThreads + threadIdx.x;
  if (i >= n) return;
  double run_max = -INFINITY;
  double run_sum = 0.0;
  for (int s = 0; s < splits; ++s)
    lse_merge(run_max, run_sum, part_max[index_t(s) * n + i], part_sum[index_t(s) * n + i]);
  out[i] = lse_value(run_max, run_sum);
}

// A warp per row: the squared norm is reduced in double across the lanes, then each lane
// rescales the coordinates it read (so out == x is safe). Same rule as pyot::PointsT.
template <class T>
__global__ void normalize_rows_kernel(const T* x, index_t n, index_t d, T* out) {
  const int lane = threadIdx.x % 32;
  const index_t row = index_t(blockIdx.x) * kNormWarps + threadIdx.x / 32;
  if (row >= n) return;  // whole warps exit together: the shuffles below stay full-warp
  const T* src = x + row * d;
  double s = 0.0;
  for (index_t k = lane; k < d; k += 32) s += double(src[k]) * double(src[k]);
  for (int offset = 16; offset > 0; offset /= 2) s += __shfl_xor_sync(0xffffffffu, s, offset);
  const double scale = s > 0.0 ? 1.0 / sqrt(s) : 0.0;
  T* dst = out + row * d;
  for (index_t k = lane; k < d; k += 32) dst[k] = T(double(src[k]) * scale);
}

// How y is cut: `splits` ranges of `span` points (a multiple of kTileCols); one range = all of y.
struct Split {
  index_t splits = 1;
  index_t span = 0;
};

Split plan_split(index_t n, index_t m) {
  const index_t row_blocks = (n + kBlockRows - 1) / kBlockRows;
  const index_t tiles = (m + kTileCols - 1) / kTileCols;
  const index_t by_blocks = (kTargetBlocks + row_blocks - 1) / row_blocks;
  const index_t by_work = m / kMinSplitCols;
  index_t splits = std::min({by_blocks, by_work, kMaxSplits});
  if (splits <= 1 || tiles == 0) return Split{1, m};
  const index_t tiles_per = (tiles + splits - 1) / splits;
  return Split{(tiles + tiles_per - 1) / tiles_per, tiles_per * kTileCols};  // no empty range
}

template <Metric M, class T>
void launch_lse_rows(const T* x, const T* y, index_t n, index_t m, index_t d, double p,
                     const double* h, double inv_eps, double* out, cudaStream_t stream) {
  const index_t row_blocks = (n + kBlockRows - 1) / kBlockRows;
  Split split = plan_split(n, m);
  const Scratch scratch(split.splits > 1 ? std::size_t(2 * split.splits * n) * sizeof(double) : 0,
                        stream, /*optional=*/true);
  if (scratch.data() == nullptr) split = Split{1, m};
  double* part_max = scratch.data();
  double* part_sum = part_max == nullptr ? nullptr : part_max + split.splits * n;
  const dim3 grid(unsigned(row_blocks), unsigned(split.splits));
  lse_rows_kernel<M, T><<<grid, kBlockRows, 0, stream>>>(x, y, n, m, d, T(p), h, inv_eps,
                                                         split.span, out, part_max, part_sum);
  check_launch("lse_rows_kernel launch");
  if (split.splits > 1) {
    const index_t blocks = (n + kMergeThreads - 1) / kMergeThreads;
    merge_splits_kernel<<<unsigned(blocks), kMergeThreads, 0, stream>>>(part_max, part_sum, n,
                                                                        int(split.splits), out);
    check_launch("merge_splits_kernel launch");
  }
}

// ---------------------------------------------------------------------------------------------
// Dense log-domain half-steps.

constexpr int kDenseRowWarps = 8;      // rows per block of the dense row kernel (a warp per row)
constexpr int kDenseColThreads = 256;  // columns per block of the dense column kernel
constexpr std::int64_t kMinSplitRows = 256;

// A warp per row: lane l streams columns l, l + 32, ... (coalesced), then the lanes' pairs are
// merged by a butterfly of shuffles (a fixed order).
template <class T>
__global__ void __launch_bounds__(kDenseRowWarps * 32)
    dense_rows_kernel(const T* __restrict__ C, index_t n, index_t m, const double* __restrict__ h,
                      double inv_eps, double* __restrict__ out) {
  const int lane = threadIdx.x % 32;
  const index_t i = index_t(blockIdx.x) * kDenseRowWarps + threadIdx.x / 32;
  if (i >= n) return;  // whole warps exit together
  const T* row = C + i * m;
  double run_max = -INFINITY, run_sum = 0.0;
  for (index_t j = lane; j < m; j += 32)
    lse_push(run_max, run_sum, h[j] - double(row[j]) * inv_eps);
  for (int offset = 16; offset > 0; offset /= 2) {
    const double mx = __shfl_xor_sync(0xffffffffu, run_max, offset);
    const double sm = __shfl_xor_sync(0xffffffffu, run_sum, offset);
    lse_merge(run_max, run_sum, mx, sm);
  }
  if (lane == 0) out[i] = lse_value(run_max, run_sum);
}

// A thread per column j over the rows of its range [blockIdx.y * span, + span): consecutive
// threads read consecutive entries of a row (coalesced). One range writes out_j, several write
// partials merged by merge_splits_kernel.
template <class T>
__global__ void __launch_bounds__(kDenseColThreads)
    dense_cols_kernel(const T* __restrict__ C, index_t n, index_t m, const double* __restrict__ h,
                      double inv_eps, index_t span, double* __restrict__ out,
                      double* __restrict__ part_max, double* __restrict__ part_sum) {
  const index_t j = index_t(blockIdx.x) * kDenseColThreads + threadIdx.x;
  if (j >= m) return;
  const index_t i_begin = index_t(blockIdx.y) * span;
  const index_t i_end = n - i_begin < span ? n : i_begin + span;
  double run_max = -INFINITY, run_sum = 0.0;
  for (index_t i = i_begin; i < i_end; ++i)
    lse_push(run_max, run_sum, h[i] - double(C[i * m + j]) * inv_eps);
  if (part_max == nullptr) {
    out[j] = lse_value(run_max, run_sum);
  } else {
    part_max[index_t(blockIdx.y) * m + j] = run_max;
    part_sum[index_t(blockIdx.y) * m + j] = run_sum;
  }
}

// sum_j exp(ha_i + hb_j - C_ij inv_eps) C_ij per row (a warp per row): <P, C> by rows.
template <class T>
__global__ void __launch_bounds__(kDenseRowWarps * 32)
    dense_cost_rows_kernel(const T* __restrict__ C, index_t n, index_t m,
                           const double* __restrict__ ha, const double* __restrict__ hb,
                           double inv_eps, double* __restrict__ out) {
  const int lane = threadIdx.x % 32;
  const index_t i = index_t(blockIdx.x) * kDenseRowWarps + threadIdx.x / 32;
  if (i >= n) return;
  const T* row = C + i * m;
  double s = 0.0;
  if (ha[i] != -INFINITY) {
    for (index_t j = lane; j < m; j += 32) {
      const double c = double(row[j]);
      const double w = exp(ha[i] + hb[j] - c * inv_eps);
      if (w > 0.0) s += w * c;
    }
  }
  for (int offset = 16; offset > 0; offset /= 2) s += __shfl_xor_sync(0xffffffffu, s, offset);
  if (lane == 0) out[i] = s;
}

// ---------------------------------------------------------------------------------------------
// The transport's row sums on point clouds: value and point gradient (ALGORITHMS 10).

constexpr int kTransportThreads = 128;
constexpr int kGradChunk = 8;  // gradient coordinates per pass (registers)

// A thread per row of x; y is read from global memory by every thread of a warp at the same
// address (a broadcast served by L1). Coordinates [k0, k0 + kc) of the gradient are summed
// (kc <= kGradChunk); the caller loops over chunks. x, y: for the cosine, unit rows (the
// caller divides by |x_i|).
template <Metric M, class T>
__global__ void __launch_bounds__(kTransportThreads)
    transport_rows_kernel(const T* __restrict__ x, const T* __restrict__ y, index_t n, index_t m,
                          index_t d, T p, const double* __restrict__ ha,
                          const double* __restrict__ hb, double inv_eps, index_t k0, int kc,
                          double* __restrict__ cost_rows, double* __restrict__ grad) {
  const index_t i = index_t(blockIdx.x) * kTransportThreads + threadIdx.x;
  if (i >= n) return;
  const T* xi = x + i * d;
  const double hai = ha[i];
  const double pm1 = double(p) - 1.0;
  double value = 0.0, alpha = 0.0;
  double acc[kGradChunk];
#pragma unroll
  for (int k = 0; k < kGradChunk; ++k) acc[k] = 0.0;
  if (hai != -INFINITY) {
    for (index_t j = 0; j < m; ++j) {
      const T* yj = y + j * d;
      T s = T(0);
      for (index_t k = 0; k < d; ++k) s += CostOp<M>::term(xi[k], __ldg(yj + k), p);
      const double c = double(CostOp<M>::finish(s, p));
      const double w = exp(hai + __ldg(hb + j) - c * inv_eps);
      if (!(w > 0.0)) continue;
      value += w * c;
      if (grad == nullptr) continue;
      const double coef = pair_coef<M>(w, c, pm1);
      if constexpr (kLinearGradient<M>) {
        alpha += M == Metric::Cosine ? w * (1.0 - c) : coef;
#pragma unroll
        for (int k = 0; k < kGradChunk; ++k)
          if (k < kc) acc[k] -= coef * double(__ldg(yj + k0 + k));
      } else {
#pragma unroll
        for (int k = 0; k < kGradChunk; ++k)
          if (k < kc)
            acc[k] +=
                coef * coordinate_slope<M>(double(xi[k0 + k]) - double(__ldg(yj + k0 + k)), pm1);
      }
    }
  }
  if (cost_rows != nullptr) cost_rows[i] = value;
  if (grad == nullptr) return;
#pragma unroll
  for (int k = 0; k < kGradChunk; ++k) {
    if (k >= kc) break;
    double gk = acc[k];
    if constexpr (kLinearGradient<M>) gk += alpha * double(xi[k0 + k]);
    grad[i * d + k0 + k] = gk;
  }
}

// grad_i /= |x_i| (raw rows; 0 for a zero row): the cosine's last factor.
template <class T>
__global__ void divide_by_norm_kernel(const T* __restrict__ x, index_t n, index_t d,
                                      double* __restrict__ grad) {
  const index_t i = index_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  double s = 0.0;
  for (index_t k = 0; k < d; ++k) s += double(x[i * d + k]) * double(x[i * d + k]);
  const double scale = s > 0.0 ? 1.0 / sqrt(s) : 0.0;
  for (index_t k = 0; k < d; ++k) grad[i * d + k] *= scale;
}

// ---------------------------------------------------------------------------------------------
// Elementwise pieces of the device Sinkhorn loop.

constexpr int kVecThreads = 256;
constexpr index_t kMaxErrBlocks = 1024;

unsigned vec_blocks(index_t n) { return unsigned((n + kVecThreads - 1) / kVecThreads); }

// out_i = log w_i (log 0 = -inf)
__global__ void log_kernel(const double* __restrict__ w, index_t n, double* __restrict__ out) {
  const index_t i = index_t(blockIdx.x) * kVecThreads + threadIdx.x;
  if (i < n) out[i] = w[i] > 0.0 ? log(w[i]) : -INFINITY;
}

// h_i = logw_i + pot_i * inv_eps
__global__ void shift_kernel(const double* __restrict__ logw, const double* __restrict__ pot,
                             double inv_eps, index_t n, double* __restrict__ h) {
  const index_t i = index_t(blockIdx.x) * kVecThreads + threadIdx.x;
  if (i < n) h[i] = logw[i] + pot[i] * inv_eps;
}

// The c-transform -eps out_i, relaxed by w (ALGORITHMS 2.5): pot_i <- (1 - w) pot_i + w (-eps
// out_i), and the other side's next h: logw_i + pot_i / eps (logw_i - out_i exactly at w = 1).
__global__ void apply_kernel(const double* __restrict__ out, const double* __restrict__ logw,
                             double eps, double w, index_t n, double* __restrict__ pot,
                             double* __restrict__ h) {
  const index_t i = index_t(blockIdx.x) * kVecThreads + threadIdx.x;
  if (i >= n) return;
  const double c = -eps * out[i];
  if (w == 1.0) {
    pot[i] = c;
    h[i] = logw[i] - out[i];
  } else {
    pot[i] = (1.0 - w) * pot[i] + w * c;
    h[i] = logw[i] + pot[i] / eps;
  }
}

// Per-block partials of sum_i w_i |exp(pot_i inv_eps + out_i) - 1| (the L1 marginal error of
// this side, ALGORITHMS 2.1), or with `dot` of sum_i w_i pot_i (zero weights masked); a fixed
// grid-stride order, then block_sum.
__global__ void __launch_bounds__(detail::kReduceThreads)
    side_sum_kernel(const double* __restrict__ w, const double* __restrict__ pot,
                    const double* __restrict__ out, double inv_eps, index_t n, bool dot,
                    double* __restrict__ parts) {
  __shared__ double shared[detail::kReduceThreads];
  double s = 0.0;
  const index_t stride = index_t(gridDim.x) * detail::kReduceThreads;
  for (index_t i = index_t(blockIdx.x) * detail::kReduceThreads + threadIdx.x; i < n; i += stride) {
    if (w[i] == 0.0) continue;
    if (dot) {
      s += pot == nullptr ? w[i] : w[i] * pot[i];
    } else {
      s += w[i] * fabs(exp(pot[i] * inv_eps + out[i]) - 1.0);
    }
  }
  s = detail::block_sum(s, shared);
  if (threadIdx.x == 0) parts[blockIdx.x] = s;
}

// Plain sum of v (n doubles) into parts.
__global__ void __launch_bounds__(detail::kReduceThreads)
    plain_sum_kernel(const double* __restrict__ v, index_t n, double* __restrict__ parts) {
  __shared__ double shared[detail::kReduceThreads];
  double s = 0.0;
  const index_t stride = index_t(gridDim.x) * detail::kReduceThreads;
  for (index_t i = index_t(blockIdx.x) * detail::kReduceThreads + threadIdx.x; i < n; i += stride)
    s += v[i];
  s = detail::block_sum(s, shared);
  if (threadIdx.x == 0) parts[blockIdx.x] = s;
}

// ---------------------------------------------------------------------------------------------
// Host side of the pieces above.

template <class T>
void launch_dense_cols(const T* C, index_t n, index_t m, const double* h, double inv_eps,
                       double* out, cudaStream_t stream) {
  const index_t col_blocks = (m + kDenseColThreads - 1) / kDenseColThreads;
  index_t splits = std::min(
      {(kTargetBlocks + col_blocks - 1) / col_blocks, n / kMinSplitRows, detail::kMaxGridY});
  if (splits < 1) splits = 1;
  index_t span = (n + splits - 1) / splits;
  if (span < 1) span = 1;
  splits = (n + span - 1) / span;  // no empty range
  if (splits < 1) splits = 1;
  const Scratch scratch(splits > 1 ? std::size_t(2 * splits * m) * sizeof(double) : 0, stream,
                        /*optional=*/true);
  if (scratch.data() == nullptr) splits = 1, span = n;
  double* part_max = splits > 1 ? scratch.data() : nullptr;
  double* part_sum = splits > 1 ? scratch.data() + splits * m : nullptr;
  const dim3 grid{unsigned(col_blocks), unsigned(splits)};
  dense_cols_kernel<T>
      <<<grid, kDenseColThreads, 0, stream>>>(C, n, m, h, inv_eps, span, out, part_max, part_sum);
  check_launch("dense_cols_kernel launch");
  if (splits > 1) {
    const index_t blocks = (m + kMergeThreads - 1) / kMergeThreads;
    merge_splits_kernel<<<unsigned(blocks), kMergeThreads, 0, stream>>>(part_max, part_sum, m,
                                                                        int(splits), out);
    check_launch("merge_splits_kernel launch");
  }
}

// Row sums of the transport on clouds already prepared (unit rows for the cosine).
template <Metric M, class T>
void launch_transport(const T* x, const T* y, index_t n, index_t m, index_t d, double p,
                      const double* ha, const double* hb, double inv_eps, double* cost_rows,
                      double* grad, cudaStream_t stream) {
  const unsigned blocks = unsigned((n + kTransportThreads - 1) / kTransportThreads);
  if (grad == nullptr || d == 0) {
    transport_rows_kernel<M, T><<<blocks, kTransportThreads, 0, stream>>>(
        x, y, n, m, d, T(p), ha, hb, inv_eps, 0, 0, cost_rows, nullptr);
    check_launch("transport_rows_kernel launch");
    return;
  }
  for (index_t k0 = 0; k0 < d; k0 += kGradChunk) {
    const int kc = int(std::min<index_t>(kGradChunk, d - k0));
    transport_rows_kernel<M, T><<<blocks, kTransportThreads, 0, stream>>>(
        x, y, n, m, d, T(p), ha, hb, inv_eps, k0, kc, k0 == 0 ? cost_rows : nullptr, grad);
    check_launch("transport_rows_kernel launch");
  }
}

// Sums reduced on the device in a fixed order and read back (the only host syncs of a solve).
class Reducer {
 public:
  explicit Reducer(cudaStream_t stream)
      : stream_(stream), parts_(std::size_t(kMaxErrBlocks + 1) * sizeof(double), stream) {}

  double side_error(const double* w, const double* pot, const double* out, double inv_eps,
                    index_t n) {
    const unsigned g = blocks(n);
    side_sum_kernel<<<g, detail::kReduceThreads, 0, stream_>>>(w, pot, out, inv_eps, n, false,
                                                               parts_.data());
    check_launch("side_sum_kernel launch");
    return read(g);
  }
  // sum_i w_i pot_i over w_i != 0 (pot null: sum_i w_i).
  double dot(const double* w, const double* pot, index_t n) {
    const unsigned g = blocks(n);
    side_sum_kernel<<<g, detail::kReduceThreads, 0, stream_>>>(w, pot, nullptr, 0.0, n, true,
                                                               parts_.data());
    check_launch("side_sum_kernel launch");
    return read(g);
  }
  double sum(const double* v, index_t n) {
    const unsigned g = blocks(n);
    plain_sum_kernel<<<g, detail::kReduceThreads, 0, stream_>>>(v, n, parts_.data());
    check_launch("plain_sum_kernel launch");
    return read(g);
  }

 private:
  static unsigned blocks(index_t n) {
    const index_t b = (n + detail::kReduceThreads - 1) / detail::kReduceThreads;
    return unsigned(std::max<index_t>(1, std::min(kMaxErrBlocks, b)));
  }
  double read(unsigned g) {
    double* total = parts_.data() + kMaxErrBlocks;
    detail::sum_parts(parts_.data(), g, 1, total, stream_);
    double host = 0.0;
    check(cudaMemcpyAsync(&host, total, sizeof(double), cudaMemcpyDeviceToHost, stream_),
          "cudaMemcpyAsync (reduction)");
    check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize (reduction)");
    return host;
  }
  cudaStream_t stream_;
  Scratch parts_;
};

// Intermediate eps-scaling stages (as the CPU core: sinkhorn.hpp).
constexpr double kStageTol = 1e-1;
constexpr std::int64_t kStageMaxIter = 10;
constexpr std::size_t kMaxStages = 200;

// The balanced log-domain loop (ALGORITHMS 2.1) on the device, for any pair of half-steps:
// row(h, inv_eps, out): out_i = LSE_j(h_j - C_ij inv_eps); col likewise over i; cost_rows(ha,
// hb, inv_eps, out): out_i = sum_j exp(ha_i + hb_j - C_ij inv_eps) C_ij.
template <class Row, class Col, class CostRows>
SinkhornOutcome run_sinkhorn(index_t n, index_t m, const double* a, const double* b, double* f,
                             double* g, const SinkhornOptions& o, cudaStream_t stream, Row row,
                             Col col, CostRows cost_rows) {
  SinkhornOutcome res;
  const Scratch buffers(std::size_t(3 * (n + m)) * sizeof(double), stream);
  double* loga = buffers.data();
  double* logb = loga + n;
  double* ha = logb + m;
  double* hb = ha + n;
  double* outn = hb + m;
  double* outm = outn + n;
  Reducer reduce(stream);
  log_kernel<<<vec_blocks(n), kVecThreads, 0, stream>>>(a, n, loga);
  check_launch("log_kernel launch");
  log_kernel<<<vec_blocks(m), kVecThreads, 0, stream>>>(b, m, logb);
  check_launch("log_kernel launch");

  std::vector<double> schedule;
  if (o.eps_scaling > 0.0 && o.eps_scaling < 1.0)
    for (double e = o.eps_start; e > o.eps && schedule.size() < kMaxStages; e *= o.eps_scaling)
      schedule.push_back(e);
  schedule.push_back(o.eps);

  double err = INFINITY;
  bool reached_last = false;
  for (std::size_t stage = 0; stage < schedule.size(); ++stage) {
    reached_last = stage + 1 == schedule.size();
    const double eps = schedule[stage];
    const double inv_eps = 1.0 / eps;
    const double tol = reached_last ? o.tol : std::max(o.tol, kStageTol);
    const std::int64_t cap =
        reached_last ? o.max_iter : std::min(o.max_iter, res.n_iter + kStageMaxIter);
    shift_kernel<<<vec_blocks(m), kVecThreads, 0, stream>>>(logb, g, inv_eps, m, hb);
    check_launch("shift_kernel launch");
    bool cols_exact = false;
    double col_err = INFINITY;
    pyot::sinkhorn::detail::Relaxation relax(o.overrelax);
    res.status = int(Status::MaxIter);
    while (true) {
      row(hb, inv_eps, outn);
      err = reduce.side_error(a, f, outn, inv_eps, n);
      if (std::isnan(err)) {
        res.status = int(Status::NotFinite);
        break;
      }
      if (cols_exact && err <= tol) {
        res.status = int(Status::Converged);
        break;
      }
      if (res.n_iter >= cap) break;
      // As the CPU driver: relaxed updates leave the columns inexact, so the error estimate
      // then needs their term too (measured only while w != 1: one more read-back).
      const double est = cols_exact ? err : err + col_err;
      double w = relax.observe(est);
      if (w != 1.0 && est <= tol) {
        relax.finish_plain();  // the last iterations are plain so the columns are exact
        w = 1.0;
      }
      apply_kernel<<<vec_blocks(n), kVecThreads, 0, stream>>>(outn, loga, eps, w, n, f, ha);
      check_launch("apply_kernel launch");
      col(ha, inv_eps, outm);
      if (w != 1.0) col_err = reduce.side_error(b, g, outm, inv_eps, m);
      apply_kernel<<<vec_blocks(m), kVecThreads, 0, stream>>>(outm, logb, eps, w, m, g, hb);
      check_launch("apply_kernel launch");
      cols_exact = w == 1.0;
      ++res.n_iter;
    }
    if (res.status == int(Status::NotFinite) || res.n_iter >= o.max_iter) break;
  }
  const double eps = o.eps, inv_eps = 1.0 / eps;
  if (!reached_last && res.status != int(Status::NotFinite)) {
    // Out of iterations while annealing: one c-transform at the target eps makes the rows
    // exact, so (f, g) and the objective belong to the target problem (converged=False).
    res.status = int(Status::MaxIter);
    shift_kernel<<<vec_blocks(m), kVecThreads, 0, stream>>>(logb, g, inv_eps, m, hb);
    check_launch("shift_kernel launch");
    row(hb, inv_eps, outn);
    apply_kernel<<<vec_blocks(n), kVecThreads, 0, stream>>>(outn, loga, eps, 1.0, n, f, ha);
    check_launch("apply_kernel launch");
    row(hb, inv_eps, outn);
    err = reduce.side_error(a, f, outn, inv_eps, n);
  }
  res.marginal_error = err;
  if (res.status == int(Status::NotFinite)) return res;
  const double sum_a = reduce.dot(a, nullptr, n), sum_b = reduce.dot(b, nullptr, m);
  res.objective = reduce.dot(a, f, n) + reduce.dot(b, g, m) - eps * (sum_b - sum_a * sum_b);
  if (o.value) {
    shift_kernel<<<vec_blocks(n), kVecThreads, 0, stream>>>(loga, f, inv_eps, n, ha);
    check_launch("shift_kernel launch");
    shift_kernel<<<vec_blocks(m), kVecThreads, 0, stream>>>(logb, g, inv_eps, m, hb);
    check_launch("shift_kernel launch");
    cost_rows(ha, hb, inv_eps, outn);
    res.value = reduce.sum(outn, n);
  } else {
    res.value = NAN;
  }
  if (!std::isfinite(res.objective)) res.status = int(Status::NotFinite);
  return res;
}

void require_options(const char* fn, const SinkhornOptions& o) {
  require(o.eps > 0.0 && std::isfinite(o.eps), fn, "eps must be positive and finite");
  require(o.tol >= 0.0, fn, "tol must be non-negative");
  require(o.max_iter >= 0, fn, "max_iter must be non-negative");
}

}  // namespace

template <class T>
void lse_rows_online(const T* x, const T* y, std::int64_t n, std::int64_t m, std::int64_t d,
                     pyot::Metric metric, double p, const double* h, double inv_eps, double* out,
                     stream_t stream) {
  constexpr const char* fn = "lse_rows_online";
  require_sizes(fn, n, m, d);
  require(inv_eps > 0.0 && std::isfinite(inv_eps), fn,
          "inv_eps must be positive and finite, got " + std::to_string(inv_eps));
  require(metric != Metric::Minkowski || (p > 0.0 && std::isfinite(p)), fn,
          "Minkowski p must be positive and finite, got " + std::to_string(p));
  require((x != nullptr || n * d == 0) && (y != nullptr || m * d == 0) &&
              (h != nullptr || m == 0) && (out != nullptr || n == 0),
          fn, "a device pointer is null");
  require((n + kBlockRows - 1) / kBlockRows <= kMaxGridX, fn,
          "n=" + std::to_string(n) + " rows exceed the grid limit");
  if (n == 0) return;
  const auto s = static_cast<cudaStream_t>(stream);
  pyot::dispatch_metric(metric, [&](auto tag) {
    launch_lse_rows<decltype(tag)::value, T>(x, y, n, m, d, p, h, inv_eps, out, s);
  });
}

template <class T>
void normalize_rows(const T* x, std::int64_t n, std::int64_t d, T* out, stream_t stream) {
  constexpr const char* fn = "normalize_rows";
  require_sizes(fn, n, 0, d);
  require((x != nullptr && out != nullptr) || n * d == 0, fn, "a device pointer is null");
  const index_t blocks = (n + kNormWarps - 1) / kNormWarps;
  require(blocks <= kMaxGridX, fn, "n=" + std::to_string(n) + " rows exceed the grid limit");
  if (n * d == 0) return;
  normalize_rows_kernel<T>
      <<<unsigned(blocks), kNormWarps * 32, 0, static_cast<cudaStream_t>(stream)>>>(x, n, d, out);
  check_launch("normalize_rows_kernel launch");
}

namespace {

// The dense half-steps' checks: out (`outputs` long) from h (`inputs` long).
void require_dense(const char* fn, const void* C, index_t n, index_t m, const double* h,
                   index_t inputs, double inv_eps, const double* out, index_t outputs) {
  require_sizes(fn, n, m, 0);
  require(inv_eps > 0.0 && std::isfinite(inv_eps), fn, "inv_eps must be positive and finite");
  require((C != nullptr || n * m == 0) && (h != nullptr || inputs == 0) &&
              (out != nullptr || outputs == 0),
          fn, "a device pointer is null");
  // Both kernels give a block at least kDenseRowWarps outputs.
  require((outputs + kDenseRowWarps - 1) / kDenseRowWarps <= kMaxGridX, fn,
          std::to_string(outputs) + " outputs exceed the grid limit");
}

}  // namespace

template <class T>
void lse_rows_dense(const T* C, std::int64_t n, std::int64_t m, const double* h, double inv_eps,
                    double* out, stream_t stream) {
  require_dense("lse_rows_dense", C, n, m, h, m, inv_eps, out, n);
  if (n == 0) return;
  const index_t blocks = (n + kDenseRowWarps - 1) / kDenseRowWarps;
  dense_rows_kernel<T><<<unsigned(blocks), kDenseRowWarps * 32, 0, detail::as_cuda(stream)>>>(
      C, n, m, h, inv_eps, out);
  check_launch("dense_rows_kernel launch");
}

template <class T>
void lse_cols_dense(const T* C, std::int64_t n, std::int64_t m, const double* h, double inv_eps,
                    double* out, stream_t stream) {
  require_dense("lse_cols_dense", C, n, m, h, n, inv_eps, out, m);
  if (m == 0) return;
  launch_dense_cols(C, n, m, h, inv_eps, out, detail::as_cuda(stream));
}

namespace {

// Unit-row copies of x for the cosine (owned by the returned scratch), else x itself.
template <class T>
const T* prepared(const T* x, index_t n, index_t d, Metric metric, Scratch& keep,
                  cudaStream_t stream) {
  if (metric != Metric::Cosine || n * d == 0) return x;
  keep.allocate(std::size_t(n * d) * sizeof(T), stream);
  normalize_rows(x, n, d, keep.as<T>(), stream);
  return keep.as<T>();
}

}  // namespace

template <class T>
void transport_rows(const T* x, const T* y, std::int64_t n, std::int64_t m, std::int64_t d,
                    pyot::Metric metric, double p, const double* a, const double* b,
                    const double* f, const double* g, double eps, double* cost_rows, double* grad,
                    stream_t stream) {
  constexpr const char* fn = "transport_rows";
  require_sizes(fn, n, m, d);
  require(eps > 0.0 && std::isfinite(eps), fn, "eps must be positive and finite");
  require(metric != Metric::Minkowski || (p > 0.0 && std::isfinite(p)), fn,
          "Minkowski p must be positive and finite, got " + std::to_string(p));
  require((x != nullptr || n * d == 0) && (y != nullptr || m * d == 0) &&
              ((a != nullptr && f != nullptr) || n == 0) &&
              ((b != nullptr && g != nullptr) || m == 0),
          fn, "a device pointer is null");
  require((n + kTransportThreads - 1) / kTransportThreads <= kMaxGridX, fn,
          "n=" + std::to_string(n) + " rows exceed the grid limit");
  if (n == 0 || (cost_rows == nullptr && grad == nullptr)) return;
  const auto s = detail::as_cuda(stream);
  Scratch hx, hy;
  const T* xp = prepared(x, n, d, metric, hx, s);
  const T* yp = prepared(y, m, d, metric, hy, s);
  const Scratch h(std::size_t(2 * (n + m)) * sizeof(double), s);
  double* ha = h.data();
  double* hb = ha + n;
  double* tmp = hb + m;  // log weights
  const double inv_eps = 1.0 / eps;
  log_kernel<<<vec_blocks(n), kVecThreads, 0, s>>>(a, n, tmp);
  check_launch("log_kernel launch");
  shift_kernel<<<vec_blocks(n), kVecThreads, 0, s>>>(tmp, f, inv_eps, n, ha);
  check_launch("shift_kernel launch");
  if (m > 0) {
    log_kernel<<<vec_blocks(m), kVecThreads, 0, s>>>(b, m, tmp + n);
    check_launch("log_kernel launch");
    shift_kernel<<<vec_blocks(m), kVecThreads, 0, s>>>(tmp + n, g, inv_eps, m, hb);
    check_launch("shift_kernel launch");
  }
  pyot::dispatch_metric(metric, [&](auto tag) {
    launch_transport<decltype(tag)::value, T>(xp, yp, n, m, d, p, ha, hb, inv_eps, cost_rows, grad,
                                              s);
  });
  if (metric == Metric::Cosine && grad != nullptr && d > 0) {
    divide_by_norm_kernel<T><<<vec_blocks(n), kVecThreads, 0, s>>>(x, n, d, grad);
    check_launch("divide_by_norm_kernel launch");
  }
}

template <class T>
SinkhornOutcome sinkhorn_online(const T* x, const T* y, std::int64_t n, std::int64_t m,
                                std::int64_t d, pyot::Metric metric, double p, const double* a,
                                const double* b, double* f, double* g,
                                const SinkhornOptions& options, stream_t stream) {
  constexpr const char* fn = "sinkhorn_online";
  require_sizes(fn, n, m, d);
  require(n > 0 && m > 0, fn, "both clouds need at least one point");
  require_options(fn, options);
  require(metric != Metric::Minkowski || (p > 0.0 && std::isfinite(p)), fn,
          "Minkowski p must be positive and finite, got " + std::to_string(p));
  require(
      x != nullptr && y != nullptr && a != nullptr && b != nullptr && f != nullptr && g != nullptr,
      fn, "a device pointer is null");
  const auto s = detail::as_cuda(stream);
  Scratch hx, hy;
  const T* xp = prepared(x, n, d, metric, hx, s);
  const T* yp = prepared(y, m, d, metric, hy, s);
  SinkhornOutcome out;
  pyot::dispatch_metric(metric, [&](auto tag) {
    constexpr Metric M = decltype(tag)::value;
    auto row = [&](const double* h, double inv_eps, double* o) {
      launch_lse_rows<M, T>(xp, yp, n, m, d, p, h, inv_eps, o, s);
    };
    auto col = [&](const double* h, double inv_eps, double* o) {
      launch_lse_rows<M, T>(yp, xp, m, n, d, p, h, inv_eps, o, s);
    };
    auto cost_rows = [&](const double* ha, const double* hb, double inv_eps, double* o) {
      launch_transport<M, T>(xp, yp, n, m, d, p, ha, hb, inv_eps, o, nullptr, s);
    };
    out = run_sinkhorn(n, m, a, b, f, g, options, s, row, col, cost_rows);
  });
  return out;
}

template <class T>
SinkhornOutcome sinkhorn_dense(const T* C, std::int64_t n, std::int64_t m, const double* a,
                               const double* b, double* f, double* g,
                               const SinkhornOptions& options, stream_t stream) {
  constexpr const char* fn = "sinkhorn_dense";
  require_sizes(fn, n, m, 0);
  require(n > 0 && m > 0, fn, "the cost needs at least one row and one column");
  require_options(fn, options);
  require(C != nullptr && a != nullptr && b != nullptr && f != nullptr && g != nullptr, fn,
          "a device pointer is null");
  const auto s = detail::as_cuda(stream);
  auto row = [&](const double* h, double inv_eps, double* o) {
    lse_rows_dense(C, n, m, h, inv_eps, o, stream);
  };
  auto col = [&](const double* h, double inv_eps, double* o) {
    lse_cols_dense(C, n, m, h, inv_eps, o, stream);
  };
  auto cost_rows = [&](const double* ha, const double* hb, double inv_eps, double* o) {
    const index_t blocks = (n + kDenseRowWarps - 1) / kDenseRowWarps;
    dense_cost_rows_kernel<T>
        <<<unsigned(blocks), kDenseRowWarps * 32, 0, s>>>(C, n, m, ha, hb, inv_eps, o);
    check_launch("dense_cost_rows_kernel launch");
  };
  return run_sinkhorn(n, m, a, b, f, g, options, s, row, col, cost_rows);
}

template void lse_rows_online<float>(const float*, const float*, std::int64_t, std::int64_t,
                                     std::int64_t, pyot::Metric, double, const double*, double,
                                     double*, stream_t);
template void lse_rows_online<double>(const double*, const double*, std::int64_t, std::int64_t,
                                      std::int64_t, pyot::Metric, double, const double*, double,
                                      double*, stream_t);
template void normalize_rows<float>(const float*, std::int64_t, std::int64_t, float*, stream_t);
template void normalize_rows<double>(const double*, std::int64_t, std::int64_t, double*, stream_t);

#define PYOT_CUDA_SINKHORN_INSTANTIATE(T)                                                         \
  template void lse_rows_dense<T>(const T*, std::int64_t, std::int64_t, const double*, double,    \
                                  double*, stream_t);                                             \
  template void lse_cols_dense<T>(const T*, std::int64_t, std::int64_t, const double*, double,    \
                                  double*, stream_t);                                             \
  template void transport_rows<T>(const T*, const T*, std::int64_t, std::int64_t, std::int64_t,   \
                                  pyot::Metric, double, const double*, const double*,             \
                                  const double*, const double*, double, double*, double*,         \
                                  stream_t);                                                      \
  template SinkhornOutcome sinkhorn_online<T>(                                                    \
      const T*, const T*, std::int64_t, std::int64_t, std::int64_t, pyot::Metric, double,         \
      const double*, const double*, double*, double*, const SinkhornOptions&, stream_t);          \
  template SinkhornOutcome sinkhorn_dense<T>(const T*, std::int64_t, std::int64_t, const double*, \
                                             const double*, double*, double*,                     \
                                             const SinkhornOptions&, stream_t);
PYOT_CUDA_SINKHORN_INSTANTIATE(float)
PYOT_CUDA_SINKHORN_INSTANTIATE(double)
#undef PYOT_CUDA_SINKHORN_INSTANTIATE

}  // namespace pyot::cuda
