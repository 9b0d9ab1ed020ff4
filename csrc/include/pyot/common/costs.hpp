// Ground costs between points: the per-coordinate math (shared with the CUDA kernels through
// PYOT_HD) and the tile evaluator used by dense cost matrices and by online (lazy) costs.
//
// Costs are summed coordinate by coordinate, c = finish(sum_k term(x_k, y_k)), so there is no
// cancellation (ALGORITHMS 1); the one exception is the dense squared-Euclidean matrix in
// d >= kGemmMinDim (dense_sqeuclidean), built as ||x||^2 + ||y||^2 - 2<x, y> on clouds centred
// by one common vector. Cosine expects rows normalised beforehand (a zero row stays zero:
// distance 1 to everything, never NaN).
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "pyot/common/config.hpp"
#include "pyot/common/view.hpp"

namespace pyot {

enum class Metric : int {
  SqEuclidean = 0,
  Euclidean = 1,
  Cityblock = 2,
  Minkowski = 3,
  Cosine = 4
};

template <Metric M>
struct CostOp {
  template <class T>
  PYOT_HD static T term(T x, T y, T p) {
    if constexpr (M == Metric::SqEuclidean || M == Metric::Euclidean) {
      const T d = x - y;
      return d * d;
    } else if constexpr (M == Metric::Cityblock) {
      return std::fabs(x - y);
    } else if constexpr (M == Metric::Minkowski) {
      return std::pow(std::fabs(x - y), p);
    } else {
      return x * y;
    }
  }
  template <class T>
  PYOT_HD static T finish(T acc, T p) {
    if constexpr (M == Metric::Euclidean) {
      return std::sqrt(acc);
    } else if constexpr (M == Metric::Minkowski) {
      return std::pow(acc, T(1) / p);
    } else if constexpr (M == Metric::Cosine) {
      const T c = T(1) - acc;
      return c < T(0) ? T(0) : (c > T(2) ? T(2) : c);
    } else {
      return acc;
    }
  }
};

// Calls fn(std::integral_constant<Metric, M>{}) for the run-time metric.
template <class Fn>
decltype(auto) dispatch_metric(Metric metric, Fn&& fn) {
  switch (metric) {
    case Metric::SqEuclidean:
      return fn(std::integral_constant<Metric, Metric::SqEuclidean>{});
    case Metric::Euclidean:
      return fn(std::integral_constant<Metric, Metric::Euclidean>{});
    case Metric::Cityblock:
      return fn(std::integral_constant<Metric, Metric::Cityblock>{});
    case Metric::Minkowski:
      return fn(std::integral_constant<Metric, Metric::Minkowski>{});
    case Metric::Cosine:
      return fn(std::integral_constant<Metric, Metric::Cosine>{});
  }
  throw std::invalid_argument("unknown metric");
}

// Points kept in both layouts: row-major (one point's d values together) and coordinate-major
// (d x n, row k holds coordinate k of every point) so a tile loop runs over contiguous points,
// the layout the SIMD and CUDA kernels both want.
template <class T>
struct PointsT {
  std::vector<T> rows, coords;
  index_t n = 0, d = 0;

  PointsT() = default;
  PointsT(MatrixView<T> x, bool normalise)
      : rows(x.rows * x.cols), coords(x.rows * x.cols), n(x.rows), d(x.cols) {
    for (index_t i = 0; i < n; ++i) {
      double scale = 1.0;
      if (normalise) {
        double s = 0.0;
        for (index_t k = 0; k < d; ++k) s += double(x(i, k)) * double(x(i, k));
        scale = s > 0.0 ? 1.0 / std::sqrt(s) : 0.0;
      }
      for (index_t k = 0; k < d; ++k) {
        const T v = T(double(x(i, k)) * scale);
        rows[i * d + k] = v;
        coords[k * n + i] = v;
      }
    }
  }
  const T* point(index_t i) const { return rows.data() + i * d; }
  const T* coord(index_t k) const { return coords.data() + k * n; }
};

// out[j - j0] = c(x, y_j) for j in [j0, j1): one point x (d values) against a tile of yT.
template <Metric M, class T>
PYOT_ALWAYS_INLINE void cost_row_tile(const T* x, const PointsT<T>& yT, index_t j0, index_t j1, T p,
                                      T* out) {
  const index_t len = j1 - j0;
  for (index_t j = 0; j < len; ++j) out[j] = T(0);
  for (index_t k = 0; k < yT.d; ++k) {
    const T xk = x[k];
    const T* yk = yT.coord(k) + j0;
#pragma omp simd
    for (index_t j = 0; j < len; ++j) out[j] += CostOp<M>::term(xk, yk[j], p);
  }
  if constexpr (M != Metric::SqEuclidean) {
#pragma omp simd
    for (index_t j = 0; j < len; ++j) out[j] = CostOp<M>::finish(out[j], p);
  }
}

// Dense squared-Euclidean costs in the GEMM form (ALGORITHMS 1): C_ij = max(0, ||x_i||^2 +
// ||y_j||^2 - 2 <x_i, y_j>) with both clouds centred by the mean of all their points first
// (exact for the cost, and it removes the cancellation of clouds far from the origin: the
// absolute error is then ~ u (||x_i - c||^2 + ||y_j - c||^2)). The dot products run in a
// register-blocked micro-kernel (kGemmRows rows of x against one vector of y columns, summed
// over the coordinates), in T like the direct sums. From kGemmMinDim coordinates on it is
// several times faster than the direct form (one FMA per term instead of a subtraction and an
// FMA, and no pass over the output per coordinate); below it the direct form is kept.
constexpr index_t kGemmMinDim = 16;
constexpr index_t kGemmRows = 6;

// The centred clouds: x row-major (n x d), y coordinate-major (d x m), and their squared norms.
template <class T>
struct GemmPoints {
  std::vector<T> xr, yc, xn, yn;
  index_t n = 0, m = 0, d = 0;

  void assign(MatrixView<T> x, MatrixView<T> y) { assign(x, nullptr, x.rows, y, nullptr, y.rows); }

  // The clouds x[I[0..n)] and y[J[0..m)] (I or J null: the first n or m rows).
  void assign(MatrixView<T> x, const index_t* I, index_t rows_x, MatrixView<T> y, const index_t* J,
              index_t rows_y) {
    n = rows_x, m = rows_y, d = x.cols;
    auto xrow = [&](index_t i) { return x.row(I ? I[i] : i); };
    auto yrow = [&](index_t j) { return y.row(J ? J[j] : j); };
    std::vector<double> mean(std::size_t(d), 0.0);
    // Rows of a batch are scattered: the next ones are fetched while one is summed.
    constexpr index_t kAhead = 4;
    auto prefetch = [&](const T* r) {
      for (index_t k = 0; k < d; k += index_t(64 / sizeof(T))) __builtin_prefetch(r + k);
    };
    for (index_t i = 0; i < n; ++i) {
      if (i + kAhead < n) prefetch(xrow(i + kAhead));
      for (index_t k = 0; k < d; ++k) mean[k] += double(xrow(i)[k]);
    }
    for (index_t j = 0; j < m; ++j) {
      if (j + kAhead < m) prefetch(yrow(j + kAhead));
      for (index_t k = 0; k < d; ++k) mean[k] += double(yrow(j)[k]);
    }
    for (double& c : mean) c /= double(n + m);
    xr.resize(std::size_t(n * d));
    yc.resize(std::size_t(d * m));
    xn.resize(std::size_t(n));
    yn.resize(std::size_t(m));
    for (index_t i = 0; i < n; ++i) {
      double s = 0.0;
      for (index_t k = 0; k < d; ++k) {
        const T v = T(double(xrow(i)[k]) - mean[k]);
        xr[i * d + k] = v;
        s += double(v) * double(v);
      }
      xn[i] = T(s);
    }
    for (index_t j = 0; j < m; ++j) {
      double s = 0.0;
      for (index_t k = 0; k < d; ++k) {
        const T v = T(double(yrow(j)[k]) - mean[k]);
        yc[k * m + j] = v;
        s += double(v) * double(v);
      }
      yn[j] = T(s);
    }
  }
};

// Rows [i0, i1) of the GEMM-form cost into out (row i at out + (i - i0) * ld).
template <class T>
PYOT_MULTIVERSION void sqeuclidean_gemm_rows(const GemmPoints<T>& g, index_t i0, index_t i1, T* out,
                                             index_t ld) {
  constexpr index_t R = kGemmRows, W = index_t(64 / sizeof(T));
  const index_t m = g.m, d = g.d;
  const T* xr = g.xr.data();
  const T* yc = g.yc.data();
  for (index_t j0 = 0; j0 < m; j0 += W) {
    const index_t w = std::min(W, m - j0);
    for (index_t r0 = i0; r0 < i1; r0 += R) {
      const index_t h = std::min(R, i1 - r0);
      T acc[R][W] = {};
      if (h == R && w == W) {
        for (index_t k = 0; k < d; ++k) {
          const T* yk = yc + k * m + j0;
          for (index_t r = 0; r < R; ++r) {
            const T xv = xr[(r0 + r) * d + k];
#pragma omp simd
            for (index_t c = 0; c < W; ++c) acc[r][c] += xv * yk[c];
          }
        }
      } else {
        for (index_t k = 0; k < d; ++k) {
          const T* yk = yc + k * m + j0;
          for (index_t r = 0; r < h; ++r) {
            const T xv = xr[(r0 + r) * d + k];
            for (index_t c = 0; c < w; ++c) acc[r][c] += xv * yk[c];
          }
        }
      }
      for (index_t r = 0; r < h; ++r) {
        T* o = out + (r0 + r - i0) * ld + j0;
        const T xn = g.xn[r0 + r];
        for (index_t c = 0; c < w; ++c) {
          const T v = xn + g.yn[j0 + c] - T(2) * acc[r][c];
          o[c] = v > T(0) ? v : T(0);
        }
      }
    }
  }
}

// Least and largest entries of x[0, len) in one vector pass; false when an entry is NaN or inf
// (x - x is then NaN, and the probe sum with it). Validation and the cost range share it.
template <class T>
PYOT_MULTIVERSION bool finite_range(const T* x, index_t len, double& lo, double& hi) {
  double mn = std::numeric_limits<double>::infinity(), mx = -mn, probe = 0.0;
#pragma omp simd reduction(min : mn) reduction(max : mx) reduction(+ : probe)
  for (index_t k = 0; k < len; ++k) {
    const double v = double(x[k]);
    mn = std::min(mn, v);
    mx = std::max(mx, v);
    probe += v - v;
  }
  lo = mn;
  hi = mx;
  return probe == 0.0;
}

}  // namespace pyot
