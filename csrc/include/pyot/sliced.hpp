// Sliced and max-sliced Wasserstein (ALGORITHMS 5): project both clouds on L directions, sort
// each slice, and take the 1D transport cost of every slice by the merge of common/line.hpp.
//
// Work is done in chunks of directions so memory stays O(chunk (n + m)) however large L is:
//   1. projection of x and y on the chunk's directions, in blocks of rows (each block is
//      transposed once into a small coordinate-major tile and reused by every direction, four
//      directions at a time: a small GEMM, SIMD over rows, threads over row blocks);
//   2. one task per direction (threads over directions): sort both slices, merge.
// Every slice's value is computed by one thread in a fixed order and written to its own slot,
// so the per-direction values, and their sum in Python, do not depend on the thread count.
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

#include "pyot/common/config.hpp"
#include "pyot/common/line.hpp"
#include "pyot/common/threads.hpp"
#include "pyot/common/view.hpp"

namespace pyot::sliced {

constexpr index_t kRowBlock = 256;  // rows per projection task (one transposed tile)
// Max-sliced steps on fewer points run on one thread.
constexpr index_t kSerialBelow = 16384;
// Bounds of the automatic chunk budget (Options::chunk_bytes).
constexpr index_t kMinChunkBytes = index_t(128) << 20;
constexpr index_t kMaxChunkBytes = index_t(512) << 20;

struct Options {
  double p = 2.0;
  int threads = 0;  // 0: all cores
  // Projected values held at once (both clouds). 0: automatic, the size of x and y clamped to
  // [kMinChunkBytes, kMaxChunkBytes]: memory at most doubles (and never grows by more than
  // 512 MiB), while each chunk reads the points once, so large inputs are read a few times
  // rather than once per direction.
  index_t chunk_bytes = 0;
};

// One weighted cloud: weights == nullptr means uniform 1/n (the fast paths).
template <class T>
struct Cloud {
  MatrixView<T> points;
  const double* weights = nullptr;
  bool uniform() const { return weights == nullptr; }
};

// Thread-seconds spent per phase (filled when asked for; the bench reads it).
struct PhaseTimes {
  double project = 0.0;  // wall seconds of the projection phases
  double sort = 0.0;     // thread-seconds in sorts
  double merge = 0.0;    // thread-seconds in merges
  index_t sorted = 0;    // values sorted
};

// ---------------------------------------------------------------------------------------------
// Projection

// out[l * ld + i] = <x_i, dirs_l> for rows [i0, i1) and l < n_dirs. `tile` holds kRowBlock * d
// values: the rows transposed, so that the inner loop runs over contiguous rows. Four
// directions at a time over strips of kStrip rows, the 4 x kStrip sums kept in registers
// across the d coordinates: each tile load feeds four FMAs and each output is stored once.
template <class T>
PYOT_MULTIVERSION void project_rows(MatrixView<T> x, index_t i0, index_t i1, const T* dirs,
                                    index_t n_dirs, T* out, index_t ld, T* tile) {
  constexpr index_t kStrip = 64 / index_t(sizeof(T));  // two AVX2 vectors per direction
  const index_t len = i1 - i0, d = x.cols;
  const index_t padded = std::min(kRowBlock, (len + kStrip - 1) / kStrip * kStrip);
  for (index_t k = 0; k < d; ++k) {
    T* tk = tile + k * kRowBlock;
    for (index_t r = 0; r < len; ++r) tk[r] = x(i0 + r, k);
    std::fill(tk + len, tk + padded, T(0));  // the last strip reads defined zeros
  }
  for (index_t l = 0; l < n_dirs; l += 4) {
    const index_t nl = std::min<index_t>(4, n_dirs - l);
    const T* t[4];
    for (index_t q = 0; q < 4; ++q) t[q] = dirs + (l + (q < nl ? q : 0)) * d;
    for (index_t r0 = 0; r0 < len; r0 += kStrip) {
      T acc0[kStrip] = {}, acc1[kStrip] = {}, acc2[kStrip] = {}, acc3[kStrip] = {};
      for (index_t k = 0; k < d; ++k) {
        const T a0 = t[0][k], a1 = t[1][k], a2 = t[2][k], a3 = t[3][k];
        const T* xk = tile + k * kRowBlock + r0;
#pragma omp simd
        for (index_t s = 0; s < kStrip; ++s) {
          acc0[s] += a0 * xk[s];
          acc1[s] += a1 * xk[s];
          acc2[s] += a2 * xk[s];
          acc3[s] += a3 * xk[s];
        }
      }
      const index_t w = std::min(kStrip, len - r0);
      const T* acc[4] = {acc0, acc1, acc2, acc3};
      for (index_t q = 0; q < nl; ++q) std::copy(acc[q], acc[q] + w, out + (l + q) * ld + i0 + r0);
    }
  }
}

// Projects every row of x on dirs[0..n_dirs) into out (n_dirs slices of stride x.rows).
template <class T>
void project(MatrixView<T> x, const T* dirs, index_t n_dirs, T* out, int threads) {
  for_blocks(x.rows, kRowBlock, threads, [&](index_t i0, index_t i1) {
    std::vector<T> tile(std::size_t(kRowBlock * x.cols));
    project_rows(x, i0, i1, dirs, n_dirs, out, x.rows, tile.data());
  });
}

// ---------------------------------------------------------------------------------------------
// One slice: W_p^p between the projected samples u (n) and v (m), sorted in place.

template <class T>
struct SliceScratch {
  line::SortScratch<T> sort;
  std::vector<T> su, sv;       // sorted weighted values
  std::vector<double> cu, cv;  // their cumulative weights

  void reserve(index_t n, index_t m, bool weighted) {
    sort.reserve(std::max(n, m), weighted);
    if (weighted) {
      su.resize(std::size_t(n));
      sv.resize(std::size_t(m));
      cu.resize(std::size_t(n));
      cv.resize(std::size_t(m));
    }
  }
};

using Clock = std::chrono::steady_clock;
inline double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// W_p^p of one slice; adds the time spent to `sort_s` and `merge_s`.
template <class T, class H>
double slice_wpp(T* u, const Cloud<T>& x, T* v, const Cloud<T>& y, double mass, const H& h,
                 SliceScratch<T>& s, double& sort_s, double& merge_s) {
  const index_t n = x.points.rows, m = y.points.rows;
  auto t0 = Clock::now();
  if (x.uniform() && y.uniform()) {
    line::sort_values(u, n, s.sort);
    line::sort_values(v, m, s.sort);
    const auto t1 = Clock::now();
    sort_s += std::chrono::duration<double>(t1 - t0).count();
    const double w = line::wpp_sorted_uniform(u, n, v, m, h);
    merge_s += seconds_since(t1);
    return w;
  }
  // Weighted clouds (both: projected_wpp requires it; Python makes a missing one uniform).
  line::sort_with_weights(u, x.weights, n, mass, s.sort, s.su.data(), s.cu.data());
  line::sort_with_weights(v, y.weights, m, mass, s.sort, s.sv.data(), s.cv.data());
  const auto t1 = Clock::now();
  sort_s += std::chrono::duration<double>(t1 - t0).count();
  const double w = line::wpp_sorted(s.su.data(), s.cu.data(), n, s.sv.data(), s.cv.data(), m, h);
  merge_s += seconds_since(t1);
  return w;
}

// Directions per chunk: as many as fit in `chunk_bytes` (0: automatic, see Options), at least
// one per thread.
inline index_t chunk_size(index_t n_dirs, index_t values_per_dir, index_t input_values,
                          index_t bytes_per_value, index_t chunk_bytes, int threads) {
  if (chunk_bytes <= 0)
    chunk_bytes = std::clamp(input_values * bytes_per_value, kMinChunkBytes, kMaxChunkBytes);
  const index_t fit = chunk_bytes / std::max<index_t>(1, values_per_dir * bytes_per_value);
  return std::max<index_t>(1, std::min(n_dirs, std::max<index_t>(fit, threads)));
}

// out[l] = W_p^p(dirs_l # x, dirs_l # y) for the L rows of dirs (unit vectors, L x d). Both
// clouds weighted or both uniform; weighted clouds have total mass `mass` (equal masses).
template <class T>
void projected_wpp(const Cloud<T>& x, const Cloud<T>& y, MatrixView<T> dirs, double mass,
                   const Options& opt, double* out, PhaseTimes* times = nullptr) {
  const index_t n = x.points.rows, m = y.points.rows, d = x.points.cols, L = dirs.rows;
  require(y.points.cols == d && dirs.cols == d, "x, y and directions must have the same dimension");
  require(x.uniform() == y.uniform(), "weights must be given for both clouds or neither");
  require(n > 0 && m > 0 && L > 0, "empty input");
  require(opt.p >= 1.0 && std::isfinite(opt.p), "p must be a finite number >= 1");
  const int threads = resolve_threads(opt.threads);
  const index_t chunk = chunk_size(L, n + m, (n + m) * d, sizeof(T), opt.chunk_bytes, threads);
  std::vector<T> buffer(std::size_t(chunk * (n + m)));
  std::vector<T> dir_rows(std::size_t(L * d));  // contiguous copy of the directions
  for (index_t l = 0; l < L; ++l) std::copy(dirs.row(l), dirs.row(l) + d, &dir_rows[l * d]);
  const int slots = std::max(1, threads);
  std::vector<SliceScratch<T>> scratch(slots);
  std::vector<double> sort_s(slots, 0.0), merge_s(slots, 0.0);
  line::dispatch_power(opt.p, [&](auto h) {
    for (index_t c0 = 0; c0 < L; c0 += chunk) {
      const index_t nd = std::min(chunk, L - c0);
      T* px = buffer.data();
      T* py = buffer.data() + chunk * n;
      const auto t0 = Clock::now();
      project(x.points, &dir_rows[c0 * d], nd, px, threads);
      project(y.points, &dir_rows[c0 * d], nd, py, threads);
      if (times) times->project += seconds_since(t0);
      parallel_for(nd, threads, [&](index_t l) {
        const int t = thread_id();
        SliceScratch<T>& s = scratch[t];
        if (s.sort.keys.empty()) s.reserve(n, m, !x.uniform());
        out[c0 + l] = slice_wpp(px + l * n, x, py + l * m, y, mass, h, s, sort_s[t], merge_s[t]);
      });
    }
    return 0;
  });
  if (times) {
    for (int t = 0; t < slots; ++t) {
      times->sort += sort_s[t];
      times->merge += merge_s[t];
    }
    times->sorted += L * (n + m);
  }
}

// ---------------------------------------------------------------------------------------------
// Max-sliced: W_p^p along one direction theta and its gradient with respect to theta,
// G = sum_ij P_ij h'(<theta, x_i - y_j>) (x_i - y_j) with P the monotone coupling of the slice
// (locally constant in theta). G = X^T alpha - Y^T beta with alpha_i = sum_j P_ij h'(.) and
// beta_j = sum_i P_ij h'(.), accumulated along the merge. Everything in double.

// W_p^p along the unit direction theta and the slopes of the slice's monotone coupling:
// alpha_i = sum_j P_ij h'(u_i - v_j), beta_j = sum_i P_ij h'(u_i - v_j) (u, v the projections).
template <class T>
double slice_slopes(const Cloud<T>& x, const Cloud<T>& y, const double* theta, double mass,
                    double p, double* alpha, double* beta, int threads) {
  const index_t n = x.points.rows, m = y.points.rows, d = x.points.cols;
  require(y.points.cols == d, "x and y must have the same dimension");
  require(x.uniform() == y.uniform(), "weights must be given for both clouds or neither");
  require(p >= 1.0 && std::isfinite(p), "p must be a finite number >= 1");
  std::vector<double> u(n), v(m);
  std::fill(alpha, alpha + n, 0.0);
  std::fill(beta, beta + m, 0.0);
  const auto dot = [&](const T* row) {
    double s = 0.0;
    for (index_t k = 0; k < d; ++k) s += double(row[k]) * theta[k];
    return s;
  };
  for_blocks(n, kRowBlock, threads, [&](index_t i0, index_t i1) {
    for (index_t i = i0; i < i1; ++i) u[i] = dot(x.points.row(i));
  });
  for_blocks(m, kRowBlock, threads, [&](index_t j0, index_t j1) {
    for (index_t j = j0; j < j1; ++j) v[j] = dot(y.points.row(j));
  });
  std::vector<index_t> ou(n), ov(m);
  parallel_for(2, threads, [&](index_t side) {
    line::SortScratch<double> scratch;
    const index_t len = side == 0 ? n : m;
    scratch.reserve(len, false, true);
    line::argsort(side == 0 ? u.data() : v.data(), len, side == 0 ? ou.data() : ov.data(), scratch);
  });
  double value = 0.0;
  line::dispatch_power(p, [&](auto h) {
    const auto visit = [&](index_t r, index_t s, double w) {
      const index_t i = ou[r], j = ov[s];
      const double t = u[i] - v[j];
      value += w * h.value(t);
      const double c = w * h.slope(t);
      alpha[i] += c;
      beta[j] += c;
    };
    if (x.uniform()) {
      line::merge_uniform(n, m, visit);
    } else {
      std::vector<double> cu(n), cv(m);
      for (index_t r = 0; r < n; ++r) cu[r] = x.weights[ou[r]];
      for (index_t s = 0; s < m; ++s) cv[s] = y.weights[ov[s]];
      line::cumulative_weights(cu.data(), n, mass, cu.data());
      line::cumulative_weights(cv.data(), m, mass, cv.data());
      line::merge_cumulative(cu.data(), n, cv.data(), m, visit);
    }
    return 0;
  });
  return value;
}

// W_p^p along theta and its gradient with respect to theta, G = X^T alpha - Y^T beta (the
// coupling is locally constant in theta). Everything in double.
template <class T>
double direction_value_and_gradient(const Cloud<T>& x, const Cloud<T>& y, const double* theta,
                                    double mass, double p, double* grad, int threads) {
  const index_t n = x.points.rows, m = y.points.rows, d = x.points.cols;
  // Small slices: a parallel region costs more than the whole step (measured: 85 us against
  // 5 us for n + m = 90), and max-sliced makes one call per ascent step.
  threads = n + m < kSerialBelow ? 1 : resolve_threads(threads);
  std::vector<double> alpha(n), beta(m);
  const double value = slice_slopes(x, y, theta, mass, p, alpha.data(), beta.data(), threads);
  std::fill(grad, grad + d, 0.0);
  for (index_t i = 0; i < n; ++i) {
    const T* row = x.points.row(i);
    for (index_t k = 0; k < d; ++k) grad[k] += alpha[i] * double(row[k]);
  }
  for (index_t j = 0; j < m; ++j) {
    const T* row = y.points.row(j);
    for (index_t k = 0; k < d; ++k) grad[k] -= beta[j] * double(row[k]);
  }
  return value;
}

// Per-direction W_p^p (values, L) and the gradient of their sum with respect to the points:
// gx_i = sum_l alpha_il theta_l, gy_j = -sum_l beta_jl theta_l (n x d and m x d). Threads over
// the directions of a chunk, then over rows to fold the chunk's slopes in (fixed order).
template <class T>
void projected_wpp_gradient(const Cloud<T>& x, const Cloud<T>& y, MatrixView<double> dirs,
                            double mass, double p, double* values, double* gx, double* gy,
                            int threads) {
  const index_t n = x.points.rows, m = y.points.rows, d = x.points.cols, L = dirs.rows;
  require(dirs.cols == d, "directions must have the dimension of the points");
  threads = resolve_threads(threads);
  const index_t chunk = std::min<index_t>(L, std::max(16, 2 * threads));
  std::vector<double> alpha(std::size_t(chunk * n)), beta(std::size_t(chunk * m));
  std::fill(gx, gx + n * d, 0.0);
  std::fill(gy, gy + m * d, 0.0);
  const auto fold = [&](const std::vector<double>& slopes, index_t len, index_t c0, index_t nd,
                        double sign, double* out) {
    for_blocks(len, kRowBlock, threads, [&](index_t i0, index_t i1) {
      for (index_t i = i0; i < i1; ++i)
        for (index_t l = 0; l < nd; ++l) {
          const double s = sign * slopes[l * len + i];
          for (index_t k = 0; k < d; ++k) out[i * d + k] += s * dirs(c0 + l, k);
        }
    });
  };
  for (index_t c0 = 0; c0 < L; c0 += chunk) {
    const index_t nd = std::min(chunk, L - c0);
    parallel_for(nd, threads, [&](index_t l) {
      values[c0 + l] = slice_slopes(x, y, dirs.row(c0 + l), mass, p, alpha.data() + l * n,
                                    beta.data() + l * m, 1);
    });
    fold(alpha, n, c0, nd, 1.0, gx);
    fold(beta, m, c0, nd, -1.0, gy);
  }
}

// ---------------------------------------------------------------------------------------------
// Bench probe: thread-seconds to std::sort each of the `rows` slices of `values` (rows x n,
// copied first), threads over slices, each sort timed on its own thread and the times summed:
// measured like PhaseTimes::sort, so the two compare per value even on a loaded machine.
template <class T>
double std_sort_seconds(const T* values, index_t rows, index_t n, int threads) {
  std::vector<T> copy(values, values + rows * n);
  std::vector<double> seconds(std::size_t(rows), 0.0);
  parallel_for(rows, resolve_threads(threads), [&](index_t r) {
    const auto t0 = Clock::now();
    std::sort(copy.data() + r * n, copy.data() + (r + 1) * n);
    seconds[r] = seconds_since(t0);
  });
  double total = 0.0;
  for (double s : seconds) total += s;
  return total;
}

}  // namespace pyot::sliced
