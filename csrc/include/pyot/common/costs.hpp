// Ground costs between points: the per-coordinate math (shared with the CUDA kernels through
// PYOT_HD) and the tile evaluator used by dense cost matrices and by online (lazy) costs.
//
// Costs are summed coordinate by coordinate, c = finish(sum_k term(x_k, y_k)), never through
// ||x||^2 + ||y||^2 - 2<x, y>, so there is no cancellation (ALGORITHMS 1). Cosine expects rows
// normalised beforehand (a zero row stays zero: distance 1 to everything, never NaN).
#pragma once
#include <cmath>
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
