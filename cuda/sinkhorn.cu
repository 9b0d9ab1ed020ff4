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

#include "pyot/common/config.hpp"
#include "pyot/common/costs.hpp"
#include "pyot_cuda.hpp"

namespace pyot::cuda {
namespace {

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

// Largest grid.x a launch may ask for.
constexpr std::int64_t kMaxGridX = 2147483647;

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    throw CudaError(std::string("pyot.cuda: ") + what + " failed: " + cudaGetErrorName(status) +
                    ": " + cudaGetErrorString(status));
  }
}

// Checks the launch just made (bad configuration, no device, an earlier sticky error).
void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

void require(bool ok, const char* fn, const std::string& what) {
  if (!ok) throw std::invalid_argument(std::string("pyot.cuda.") + fn + ": " + what);
}

void require_sizes(const char* fn, std::int64_t n, std::int64_t m, std::int64_t d) {
  require(n >= 0 && m >= 0 && d >= 0, fn,
          "sizes must be non-negative, got n=" + std::to_string(n) + ", m=" + std::to_string(m) +
              ", d=" + std::to_string(d));
}

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
    if (j < cols) s += exp(hs[j] - double(cost[j]) * inv_eps - new_max);
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
    out[i] = run_max == -INFINITY ? -INFINITY : run_max + log(run_sum);
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
  for (int s = 0; s < splits; ++s) {
    const double mx = part_max[index_t(s) * n + i];
    const double new_max = dmax(run_max, mx);
    if (new_max == -INFINITY) continue;
    run_sum = run_sum * exp(run_max - new_max) + part_sum[index_t(s) * n + i] * exp(mx - new_max);
    run_max = new_max;
  }
  out[i] = run_max == -INFINITY ? -INFINITY : run_max + log(run_sum);
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

// Stream-ordered scratch for the partials (none for 0 bytes), freed on the stream however the
// launches end. A failed allocation is not fatal: data() is null and the caller runs unsplit.
class Scratch {
 public:
  Scratch(std::size_t bytes, cudaStream_t stream) : stream_(stream) {
    if (bytes > 0 && cudaMallocAsync(&ptr_, bytes, stream) != cudaSuccess) {
      ptr_ = nullptr;
      (void)cudaGetLastError();  // clear it, so the launch check does not report it
    }
  }
  ~Scratch() {
    if (ptr_ != nullptr) (void)cudaFreeAsync(ptr_, stream_);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  double* data() const { return static_cast<double*>(ptr_); }

 private:
  void* ptr_ = nullptr;
  cudaStream_t stream_;
};

template <Metric M, class T>
void launch_lse_rows(const T* x, const T* y, index_t n, index_t m, index_t d, double p,
                     const double* h, double inv_eps, double* out, cudaStream_t stream) {
  const index_t row_blocks = (n + kBlockRows - 1) / kBlockRows;
  Split split = plan_split(n, m);
  const Scratch scratch(split.splits > 1 ? std::size_t(2 * split.splits * n) * sizeof(double) : 0,
                        stream);
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

}  // namespace

int device_count() noexcept {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // clear it, so a later launch check does not report it
    return 0;
  }
  return count;
}

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

template void lse_rows_online<float>(const float*, const float*, std::int64_t, std::int64_t,
                                     std::int64_t, pyot::Metric, double, const double*, double,
                                     double*, stream_t);
template void lse_rows_online<double>(const double*, const double*, std::int64_t, std::int64_t,
                                      std::int64_t, pyot::Metric, double, const double*, double,
                                      double*, stream_t);
template void normalize_rows<float>(const float*, std::int64_t, std::int64_t, float*, stream_t);
template void normalize_rows<double>(const double*, std::int64_t, std::int64_t, double*, stream_t);

}  // namespace pyot::cuda
