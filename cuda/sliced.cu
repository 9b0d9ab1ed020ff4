// CUDA kernels of sliced Wasserstein (ALGORITHMS 5): projection, segmented sort (CUB) and the
// weighted merge of the sorted lines, with the slopes that give the gradient in the points.
//
// Why this shape: a direction's work is a sort of n + m projections, so the directions of a
// chunk are sorted together as segments by cub::DeviceSegmentedSort. The 1D transport between
// two sorted weighted lines is the pairing of their quantile functions: on [0, mass], x's
// element i covers [F_x(i-1), F_x(i)) and y's element j covers [F_y(j-1), F_y(j)). Every piece
// of the common refinement lies in exactly one x interval, so a thread per x element finds the
// first y interval of its own by binary search and walks the few that follow: the pieces are
// summed without atomics or a sequential merge, in a fixed order. The y slopes come from the
// same walk with the lines swapped.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cub/block/block_scan.cuh>
#include <cub/device/device_segmented_sort.cuh>
#include <string>
#include <vector>

#include "common.cuh"
#include "pyot_cuda.hpp"

namespace pyot::cuda {
namespace {

using detail::check;
using detail::check_launch;
using detail::require;
using detail::Scratch;

constexpr int kThreads = 256;  // = detail::kReduceThreads (the walk reduces with block_sum)
static_assert(kThreads == detail::kReduceThreads, "the walk kernel uses block_sum");
// Scratch of one chunk of directions, about this many bytes.
constexpr double kChunkBytes = 2.0 * (1 << 30);

// out[l * n + i] = <theta_l, x_i> (summed in double, stored in T).
template <class T>
__global__ void project_kernel(const T* __restrict__ x, index_t n, index_t d,
                               const double* __restrict__ dirs, T* __restrict__ out) {
  const index_t i = index_t(blockIdx.x) * kThreads + threadIdx.x;
  if (i >= n) return;
  const double* theta = dirs + index_t(blockIdx.y) * d;
  double s = 0.0;
  for (index_t k = 0; k < d; ++k) s += theta[k] * double(x[i * d + k]);
  out[index_t(blockIdx.y) * n + i] = T(s);
}

// idx[l * n + i] = i (the values the sort permutes).
__global__ void iota_kernel(index_t n, index_t segments, int* __restrict__ idx) {
  const index_t t = index_t(blockIdx.x) * kThreads + threadIdx.x;
  if (t < n * segments) idx[t] = int(t % n);
}

// cum[l * n + r] = sum_{s <= r} w[idx[l * n + s]]: the sorted line's cumulative weights, one
// block per direction scanning its segment tile by tile (cub::BlockScan, double).
__global__ void __launch_bounds__(kThreads)
    cumulative_kernel(const double* __restrict__ w, const int* __restrict__ idx, index_t n,
                      double* __restrict__ cum) {
  using Scan = cub::BlockScan<double, kThreads>;
  __shared__ typename Scan::TempStorage storage;
  __shared__ double carry;
  const index_t base = index_t(blockIdx.x) * n;
  if (threadIdx.x == 0) carry = 0.0;
  __syncthreads();
  for (index_t r0 = 0; r0 < n; r0 += kThreads) {
    const index_t r = r0 + threadIdx.x;
    const double v = r < n ? w[idx[base + r]] : 0.0;
    double incl = 0.0, total = 0.0;
    Scan(storage).InclusiveSum(v, incl, total);
    const double c = carry;
    if (r < n) cum[base + r] = c + incl;
    __syncthreads();
    if (threadIdx.x == 0) carry = c + total;
    __syncthreads();
  }
}

// F(i) of a line: the cumulative weight up to and including element i (uniform: (i + 1) mass /
// n, the last one exactly mass).
struct Line {
  const double* cum;  // null: uniform
  index_t n;
  double mass;
  __device__ __forceinline__ double F(index_t i) const {
    if (i < 0) return 0.0;
    if (cum != nullptr) return cum[i];
    return i + 1 >= n ? mass : double(i + 1) * (mass / double(n));
  }
  // First element whose F exceeds t (n - 1 if none: rounding at the end).
  __device__ __forceinline__ index_t upper(double t) const {
    index_t lo = 0, hi = n - 1;
    while (lo < hi) {
      const index_t mid = lo + (hi - lo) / 2;
      if (F(mid) > t) {
        hi = mid;
      } else {
        lo = mid + 1;
      }
    }
    return lo;
  }
};

// A thread per element i of the sorted line u (of direction blockIdx.y): the pieces of its
// quantile interval against the sorted line v. parts[l * gridDim.x + block] gets the block's
// sum of len |u_i - v_j|^p (when parts is not null), slope[l * n + i] (when not null) the sum of
// len h'(u_i - v_j), h(t) = |t|^p.
template <class T>
__global__ void __launch_bounds__(kThreads)
    walk_kernel(const T* __restrict__ u, const T* __restrict__ v, const double* __restrict__ cu,
                const double* __restrict__ cv, index_t n, index_t m, double mass, double p,
                double* __restrict__ parts, double* __restrict__ slope) {
  __shared__ double shared[kThreads];
  const index_t l = blockIdx.y;
  const index_t i = index_t(blockIdx.x) * kThreads + threadIdx.x;
  const Line lu{cu == nullptr ? nullptr : cu + l * n, n, mass};
  const Line lv{cv == nullptr ? nullptr : cv + l * m, m, mass};
  const T* ul = u + l * n;
  const T* vl = v + l * m;
  double value = 0.0, d_value = 0.0;
  if (i < n) {
    double s = lu.F(i - 1);
    const double e = lu.F(i);
    const double ui = double(ul[i]);
    if (e > s) {
      for (index_t j = lv.upper(s);; ++j) {
        const double fj = lv.F(j);
        const double end = fj < e ? fj : e;
        const double len = end - s;
        if (len > 0.0) {
          const double t = ui - double(vl[j]);
          const double a = fabs(t);
          value += len * (p == 2.0 ? a * a : pow(a, p));
          const double sgn = t > 0.0 ? 1.0 : (t < 0.0 ? -1.0 : 0.0);
          d_value += len * p * sgn * (p == 2.0 ? a : (p == 1.0 ? 1.0 : pow(a, p - 1.0)));
          s = end;
        }
        if (fj >= e || j + 1 >= m) break;
      }
    }
    if (slope != nullptr) slope[l * n + i] = d_value;
  }
  if (parts == nullptr) return;
  value = detail::block_sum(value, shared);
  if (threadIdx.x == 0) parts[l * gridDim.x + blockIdx.x] = value;
}

// alpha[l * n + idx[l * n + r]] = slope[l * n + r]: slopes back to the points' order.
__global__ void scatter_kernel(const double* __restrict__ slope, const int* __restrict__ idx,
                               index_t n, index_t segments, double* __restrict__ alpha) {
  const index_t t = index_t(blockIdx.x) * kThreads + threadIdx.x;
  if (t >= n * segments) return;
  const index_t l = t / n;
  alpha[l * n + idx[t]] = slope[t];
}

// grad[i, k] += scale sum_l alpha[l, i] theta_l[k] over the chunk's directions, in order.
__global__ void gradient_kernel(const double* __restrict__ alpha, const double* __restrict__ dirs,
                                index_t n, index_t d, index_t segments, double scale,
                                double* __restrict__ grad) {
  const index_t i = index_t(blockIdx.x) * kThreads + threadIdx.x;
  if (i >= n) return;
  for (index_t k = 0; k < d; ++k) {
    double s = 0.0;
    for (index_t l = 0; l < segments; ++l) s += alpha[l * n + i] * dirs[l * d + k];
    grad[i * d + k] += scale * s;
  }
}

__global__ void zero_kernel(double* __restrict__ v, index_t n) {
  const index_t t = index_t(blockIdx.x) * kThreads + threadIdx.x;
  if (t < n) v[t] = 0.0;
}

unsigned blocks_for(index_t count) { return unsigned((count + kThreads - 1) / kThreads); }

// One side's sorted line of a chunk: projections (sorted in keys), the sort permutation and
// the cumulative weights when needed.
template <class T>
struct SortedLine {
  Scratch raw, keys, idx_in, idx, cum, temp, offsets;
  std::size_t temp_bytes = 0;

  void run(const T* x, index_t n, index_t d, const double* dirs, index_t segments, const double* w,
           bool need_idx, cudaStream_t s) {
    const index_t items = n * segments;
    raw.allocate(std::size_t(items) * sizeof(T), s);
    keys.allocate(std::size_t(items) * sizeof(T), s);
    project_kernel<T>
        <<<dim3{blocks_for(n), unsigned(segments)}, kThreads, 0, s>>>(x, n, d, dirs, raw.as<T>());
    check_launch("project_kernel launch");
    std::vector<std::int64_t> host(std::size_t(segments + 1));
    for (index_t l = 0; l <= segments; ++l) host[std::size_t(l)] = l * n;
    offsets.allocate(host.size() * sizeof(std::int64_t), s);
    check(cudaMemcpyAsync(offsets.as<std::int64_t>(), host.data(),
                          host.size() * sizeof(std::int64_t), cudaMemcpyHostToDevice, s),
          "cudaMemcpyAsync (offsets)");
    const std::int64_t* begin = offsets.as<std::int64_t>();
    const bool pairs = need_idx || w != nullptr;
    if (pairs) {
      idx_in.allocate(std::size_t(items) * sizeof(int), s);
      idx.allocate(std::size_t(items) * sizeof(int), s);
      iota_kernel<<<blocks_for(items), kThreads, 0, s>>>(n, segments, idx_in.as<int>());
      check_launch("iota_kernel launch");
      check(cub::DeviceSegmentedSort::SortPairs(nullptr, temp_bytes, raw.as<T>(), keys.as<T>(),
                                                idx_in.as<int>(), idx.as<int>(), items, segments,
                                                begin, begin + 1, s),
            "cub::DeviceSegmentedSort::SortPairs (size)");
      temp.allocate(std::max<std::size_t>(temp_bytes, 1), s);
      check(cub::DeviceSegmentedSort::SortPairs(temp.as<void>(), temp_bytes, raw.as<T>(),
                                                keys.as<T>(), idx_in.as<int>(), idx.as<int>(),
                                                items, segments, begin, begin + 1, s),
            "cub::DeviceSegmentedSort::SortPairs");
    } else {
      check(cub::DeviceSegmentedSort::SortKeys(nullptr, temp_bytes, raw.as<T>(), keys.as<T>(),
                                               items, segments, begin, begin + 1, s),
            "cub::DeviceSegmentedSort::SortKeys (size)");
      temp.allocate(std::max<std::size_t>(temp_bytes, 1), s);
      check(cub::DeviceSegmentedSort::SortKeys(temp.as<void>(), temp_bytes, raw.as<T>(),
                                               keys.as<T>(), items, segments, begin, begin + 1, s),
            "cub::DeviceSegmentedSort::SortKeys");
    }
    temp.allocate(0, s);
    raw.allocate(0, s);
    idx_in.allocate(0, s);
    if (w != nullptr) {
      cum.allocate(std::size_t(items) * sizeof(double), s);
      cumulative_kernel<<<unsigned(segments), kThreads, 0, s>>>(w, idx.as<int>(), n,
                                                                cum.as<double>());
      check_launch("cumulative_kernel launch");
    }
  }
};

// Slopes of one side into its gradient (points' order).
template <class T>
void side_gradient(const SortedLine<T>& mine, const SortedLine<T>& other, index_t n, index_t m,
                   index_t d, index_t segments, const double* dirs, double mass, double p,
                   double scale, double* grad, cudaStream_t s) {
  const index_t items = n * segments;
  Scratch slope(std::size_t(items) * sizeof(double), s);
  Scratch alpha(std::size_t(items) * sizeof(double), s);
  walk_kernel<T><<<dim3{blocks_for(n), unsigned(segments)}, kThreads, 0, s>>>(
      mine.keys.template as<T>(), other.keys.template as<T>(), mine.cum.template as<double>(),
      other.cum.template as<double>(), n, m, mass, p, nullptr, slope.data());
  check_launch("walk_kernel launch");
  scatter_kernel<<<blocks_for(items), kThreads, 0, s>>>(slope.data(), mine.idx.template as<int>(),
                                                        n, segments, alpha.data());
  check_launch("scatter_kernel launch");
  gradient_kernel<<<blocks_for(n), kThreads, 0, s>>>(alpha.data(), dirs, n, d, segments, scale,
                                                     grad);
  check_launch("gradient_kernel launch");
}

}  // namespace

template <class T>
void sliced_projected(const T* x, const T* y, std::int64_t n, std::int64_t m, std::int64_t d,
                      const double* a, const double* b, double mass, const double* directions,
                      std::int64_t L, double p, double* projected, double* grad_x, double* grad_y,
                      stream_t stream) {
  constexpr const char* fn = "sliced_projected";
  detail::require_sizes(fn, n, m, d);
  require(n > 0 && m > 0 && d > 0 && L > 0, fn, "empty clouds, dimension or directions");
  require((a == nullptr) == (b == nullptr), fn, "give both weights or neither");
  require(mass > 0.0 && std::isfinite(mass), fn, "mass must be positive and finite");
  require(p >= 1.0 && std::isfinite(p), fn, "p must be >= 1 and finite");
  require(x != nullptr && y != nullptr && directions != nullptr && projected != nullptr, fn,
          "a device pointer is null");
  require(n < (std::int64_t(1) << 31) && m < (std::int64_t(1) << 31), fn,
          "clouds of 2^31 points or more are not supported");
  const auto s = detail::as_cuda(stream);
  const bool grad = grad_x != nullptr || grad_y != nullptr;
  // Bytes per projected point and direction: keys twice, indices, cumulative weights, slopes.
  double per = 2.0 * sizeof(T);
  if (grad || a != nullptr) per += 2.0 * sizeof(int);
  if (a != nullptr) per += sizeof(double);
  if (grad) per += 2.0 * sizeof(double);
  const index_t biggest = std::max(n, m);
  index_t chunk = index_t(kChunkBytes / (per * double(n + m)));
  chunk = std::max<index_t>(
      1, std::min({chunk, L, index_t(detail::kMaxGridY), ((std::int64_t(1) << 31) - 1) / biggest}));
  const double scale = 1.0 / double(L);
  if (grad_x != nullptr) {
    zero_kernel<<<blocks_for(n * d), kThreads, 0, s>>>(grad_x, n * d);
    check_launch("zero_kernel launch");
  }
  if (grad_y != nullptr) {
    zero_kernel<<<blocks_for(m * d), kThreads, 0, s>>>(grad_y, m * d);
    check_launch("zero_kernel launch");
  }
  const index_t xblocks = (n + kThreads - 1) / kThreads;
  for (index_t l0 = 0; l0 < L; l0 += chunk) {
    const index_t segments = std::min(chunk, L - l0);
    const double* dirs = directions + l0 * d;
    SortedLine<T> lx, ly;
    lx.run(x, n, d, dirs, segments, a, grad_x != nullptr, s);
    ly.run(y, m, d, dirs, segments, b, grad_y != nullptr, s);
    Scratch parts(std::size_t(segments * xblocks) * sizeof(double), s);
    walk_kernel<T><<<dim3{unsigned(xblocks), unsigned(segments)}, kThreads, 0, s>>>(
        lx.keys.template as<T>(), ly.keys.template as<T>(), lx.cum.template as<double>(),
        ly.cum.template as<double>(), n, m, mass, p, parts.data(), nullptr);
    check_launch("walk_kernel launch");
    detail::sum_parts(parts.data(), xblocks, segments, projected + l0, s);
    if (grad_x != nullptr)
      side_gradient(lx, ly, n, m, d, segments, dirs, mass, p, scale, grad_x, s);
    if (grad_y != nullptr)
      side_gradient(ly, lx, m, n, d, segments, dirs, mass, p, scale, grad_y, s);
  }
  check(cudaStreamSynchronize(s), "cudaStreamSynchronize (sliced)");
}

template void sliced_projected<float>(const float*, const float*, std::int64_t, std::int64_t,
                                      std::int64_t, const double*, const double*, double,
                                      const double*, std::int64_t, double, double*, double*,
                                      double*, stream_t);
template void sliced_projected<double>(const double*, const double*, std::int64_t, std::int64_t,
                                       std::int64_t, const double*, const double*, double,
                                       const double*, std::int64_t, double, double*, double*,
                                       double*, stream_t);

}  // namespace pyot::cuda
