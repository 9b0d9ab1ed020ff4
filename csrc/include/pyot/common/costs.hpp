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
#include "pyot/common/gemm.hpp"
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

// Pieces of the point gradient sum_j w_j grad_x c(x, y_j) shared by the CPU core and the CUDA
// kernels. The first three metrics are "linear": the gradient is alpha x' - sum_j coef_j y'_j.
template <Metric M>
constexpr bool kLinearGradient =
    M == Metric::SqEuclidean || M == Metric::Euclidean || M == Metric::Cosine;

// coef_j from the plan weight w and the cost c of one pair (linear metrics; the cosine's 1/|x_i|
// is applied once per row by the caller; Minkowski: w / c^(p-1), pm1 = p - 1).
template <Metric M>
PYOT_HD double pair_coef(double w, double c, double pm1) {
  if constexpr (M == Metric::SqEuclidean) {
    return 2.0 * w;
  } else if constexpr (M == Metric::Euclidean) {
    return c > 0.0 ? w / c : 0.0;
  } else if constexpr (M == Metric::Cosine || M == Metric::Cityblock) {
    return w;
  } else {
    return c > 0.0 ? w / std::pow(c, pm1) : 0.0;
  }
}

// d/dt |t|^p / p: sign(t) |t|^(p - 1) (cityblock: sign(t)).
template <Metric M>
PYOT_HD double coordinate_slope(double t, double pm1) {
  const double s = t > 0.0 ? 1.0 : (t < 0.0 ? -1.0 : 0.0);
  if constexpr (M == Metric::Cityblock) {
    return s;
  } else {
    return s * std::pow(std::fabs(t), pm1);
  }
}

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
// absolute error is then ~ u (||x_i - c||^2 + ||y_j - c||^2)). The dot products run in the
// shared register-blocked micro-kernel (gemm.hpp: dot_block), in T like the direct sums. From
// kGemmMinDim coordinates on it is several times faster than the direct form (one FMA per term
// instead of a subtraction and an FMA, and no pass over the output per coordinate); below it
// the direct form is kept. The Euclidean cost is the square root of it, and the cosine cost
// 1 - <x_i, y_j> on unit rows is a dot product too (the online tiles of the entropic map and
// point gradients use all three, gemm_cost_block).
constexpr index_t kGemmMinDim = 16;

// How GemmPoints prepares the clouds: both centred by the mean of all their points, both by
// the mean of y (a query's costs then do not depend on the other queries: the entropic map), or
// rows scaled to unit norm and not centred (the cosine cost).
enum class GemmCentre { Both, Y, Unit };

// The centred clouds: x row-major (n x d), y in dot_block's panel layout, their squared norms.
template <class T>
struct GemmPoints {
  std::vector<T> xr, yc, xn, yn;
  index_t n = 0, m = 0, d = 0;

  void assign(MatrixView<T> x, MatrixView<T> y, GemmCentre centre = GemmCentre::Both) {
    assign(x, nullptr, x.rows, y, nullptr, y.rows, centre);
  }

  // The clouds x[I[0..n)] and y[J[0..m)] (I or J null: the first n or m rows).
  void assign(MatrixView<T> x, const index_t* I, index_t rows_x, MatrixView<T> y, const index_t* J,
              index_t rows_y, GemmCentre centre = GemmCentre::Both) {
    const bool unit = centre == GemmCentre::Unit;
    n = rows_x, m = rows_y, d = x.cols;
    auto xrow = [&](index_t i) { return x.row(I ? I[i] : i); };
    auto yrow = [&](index_t j) { return y.row(J ? J[j] : j); };
    std::vector<double> mean(std::size_t(d), 0.0);
    // Rows of a batch are scattered: the next ones are fetched while one is summed.
    constexpr index_t kAhead = 4;
    auto prefetch = [&](const T* r) {
      for (index_t k = 0; k < d; k += index_t(64 / sizeof(T))) __builtin_prefetch(r + k);
    };
    if (centre == GemmCentre::Both)
      for (index_t i = 0; i < n; ++i) {
        if (i + kAhead < n) prefetch(xrow(i + kAhead));
        for (index_t k = 0; k < d; ++k) mean[k] += double(xrow(i)[k]);
      }
    if (!unit) {
      for (index_t j = 0; j < m; ++j) {
        if (j + kAhead < m) prefetch(yrow(j + kAhead));
        for (index_t k = 0; k < d; ++k) mean[k] += double(yrow(j)[k]);
      }
      const double count = double(centre == GemmCentre::Both ? n + m : m);
      for (double& c : mean) c /= count > 0.0 ? count : 1.0;
    }
    constexpr index_t P = kPanel<T>;
    xr.resize(std::size_t(n * d));
    yc.assign(std::size_t((m + P - 1) / P * P * d), T(0));
    xn.resize(std::size_t(n));
    yn.resize(std::size_t(m));
    // Row r centred (or scaled to unit norm: a zero row stays zero) into dst[k * stride], its
    // squared norm returned.
    auto put_row = [&](const T* r, T* dst, index_t stride) {
      double scale = 1.0;
      if (unit) {
        double s = 0.0;
        for (index_t k = 0; k < d; ++k) s += double(r[k]) * double(r[k]);
        scale = s > 0.0 ? 1.0 / std::sqrt(s) : 0.0;
      }
      double s = 0.0;
      for (index_t k = 0; k < d; ++k) {
        const T v = T((double(r[k]) - mean[k]) * scale);
        dst[k * stride] = v;
        s += double(v) * double(v);
      }
      return T(s);
    };
    for (index_t i = 0; i < n; ++i) xn[i] = put_row(xrow(i), xr.data() + i * d, 1);
    for (index_t j = 0; j < m; ++j)
      yn[j] = put_row(yrow(j), yc.data() + (j / P) * P * d + j % P, P);
  }

  // The same centred clouds with the roles of x and y exchanged: its costs are those of this
  // one transposed, bit for bit (the same coordinates, products and sums).
  GemmPoints swapped() const {
    constexpr index_t P = kPanel<T>;
    GemmPoints out;
    out.n = m, out.m = n, out.d = d;
    out.xn = yn, out.yn = xn;
    out.xr.resize(std::size_t(m * d));
    for (index_t j = 0; j < m; ++j)
      for (index_t k = 0; k < d; ++k) out.xr[j * d + k] = yc[(j / P) * P * d + k * P + j % P];
    to_panels<T>(n, d, [&](index_t i) { return xr.data() + i * d; }, out.yc);
    return out;
  }
};

// out[(i - i0) * ld + (j - j0)] = c(x_i, y_j) for i in [i0, i1), j in [j0, j1) in the GEMM form:
// max(0, ||x_i||^2 + ||y_j||^2 - 2 <x_i, y_j>) on centred clouds, 1 - <x_i, y_j> clamped to
// [0, 2] on unit rows (GemmCentre::Unit) for the cosine, and for the Euclidean cost the square
// root of the first. The root would turn the expansion's absolute error ~ u (||x_i||^2 +
// ||y_j||^2) into ~ sqrt(u) (||x_i|| + ||y_j||) for nearby pairs (a query on a target: a cost of
// 3e-3 instead of 0 in float32), so pairs with a squared cost below sqrt(u) (||x_i||^2 +
// ||y_j||^2) are summed again directly from the centred coordinates (rare: exact zeros stay 0).
template <Metric M, class T>
PYOT_ALWAYS_INLINE void gemm_cost_block(const GemmPoints<T>& g, index_t i0, index_t i1,
                                        index_t j0, index_t j1, T* out, index_t ld) {
  static_assert(M == Metric::SqEuclidean || M == Metric::Euclidean || M == Metric::Cosine,
                "the GEMM form covers the squared Euclidean, Euclidean and cosine costs");
  const T* xn = g.xn.data();
  const T* yn = g.yn.data();
  dot_block<T>(g.xr.data(), g.yc.data(), g.d, i0, i1, j0, j1,
               [&](index_t i, index_t j, T s) {
                 T c;
                 if constexpr (M == Metric::Cosine) {
                   c = CostOp<M>::finish(s, T(2));
                 } else {
                   const T v = xn[i] + yn[j] - T(2) * s;
                   c = v > T(0) ? v : T(0);
                 }
                 out[(i - i0) * ld + (j - j0)] = c;
               });
  if constexpr (M == Metric::Euclidean) {
    const T small = std::sqrt(std::numeric_limits<T>::epsilon());
    const index_t len = j1 - j0;
    for (index_t i = i0; i < i1; ++i) {
      T* o = out + (i - i0) * ld;
      const T* yj = yn + j0;
      const T xi = xn[i];
      int near = 0;
#pragma omp simd reduction(| : near)
      for (index_t t = 0; t < len; ++t) near |= int(o[t] < small * (xi + yj[t]));
      if (near) {
        constexpr index_t P = kPanel<T>;
        const T* x = g.xr.data() + i * g.d;
        for (index_t t = 0; t < len; ++t) {
          if (!(o[t] < small * (xi + yj[t]))) continue;
          const index_t j = j0 + t;
          const T* y = g.yc.data() + (j / P) * P * g.d + j % P;
          T s = T(0);
          for (index_t k = 0; k < g.d; ++k) {
            const T e = x[k] - y[k * P];
            s += e * e;
          }
          o[t] = s;
        }
      }
#pragma omp simd
      for (index_t t = 0; t < len; ++t) o[t] = std::sqrt(o[t]);
    }
  }
}

// Rows [i0, i1) of the GEMM-form squared Euclidean cost into out (row i at out + (i - i0) * ld).
template <class T>
PYOT_MULTIVERSION void sqeuclidean_gemm_rows(const GemmPoints<T>& g, index_t i0, index_t i1, T* out,
                                             index_t ld) {
  gemm_cost_block<Metric::SqEuclidean>(g, i0, i1, 0, g.m, out, ld);
}

// Rows [i0, i1) of the bilinear cost C_ij = -<u_i, y_j> into out (row i at out + (i - i0) * ld):
// u row-major (d values a row), y in dot_block's panel layout (pyot.inverse's learned costs).
template <class T>
PYOT_MULTIVERSION void bilinear_rows(const T* u, const T* y_panels, index_t d, index_t m,
                                     index_t i0, index_t i1, T* out, index_t ld) {
  dot_block<T>(u, y_panels, d, i0, i1, 0, m,
               [&](index_t i, index_t j, T s) { out[(i - i0) * ld + j] = -s; });
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
