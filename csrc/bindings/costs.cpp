// Dense cost matrices from point clouds, evaluated by the same tile code as online costs (the
// squared Euclidean cost in d >= kGemmMinDim by the GEMM form of common/costs.hpp).
#include "pyot/common/costs.hpp"

#include <pybind11/stl.h>

#include <algorithm>
#include <limits>
#include <utility>
#include <vector>

#include "common.hpp"
#include "pyot/common/threads.hpp"

namespace {

using namespace pyot;
using namespace pyot::bind;

// The direct form, coordinate by coordinate, in row tiles.
template <class T>
void direct_cost(MatrixView<T> xv, MatrixView<T> yv, Metric mt, double p, int threads, T* dst) {
  const index_t n = xv.rows, m = yv.rows, block = 256;
  const bool normalise = mt == Metric::Cosine;
  const PointsT<T> xs(xv, normalise), ys(yv, normalise);
  dispatch_metric(mt, [&](auto tag) {
    constexpr Metric M = decltype(tag)::value;
    parallel_for(n, resolve_threads(threads), [&](index_t i) {
      for (index_t j0 = 0; j0 < m; j0 += block)
        cost_row_tile<M>(xs.point(i), ys, j0, std::min(m, j0 + block), T(p), dst + i * m + j0);
    });
    return 0;
  });
}

// The squared Euclidean cost in the GEMM form, in blocks of rows over the threads.
template <class T>
void gemm_cost(MatrixView<T> xv, MatrixView<T> yv, int threads, T* dst) {
  const index_t n = xv.rows, m = yv.rows;
  GemmPoints<T> g;
  g.assign(xv, yv);
  constexpr index_t rows = 16 * kGemmRows;
  for_blocks(n, rows, resolve_threads(threads),
             [&](index_t i0, index_t i1) { sqeuclidean_gemm_rows(g, i0, i1, dst + i0 * m, m); });
  // A self-cost keeps its exact zero diagonal (ALGORITHMS 1).
  if (xv.data == yv.data && n == m && xv.ld == yv.ld)
    for (index_t i = 0; i < n; ++i) dst[i * m + i] = T(0);
}

template <class T>
carray<T> cost_matrix(const carray<T>& x, const carray<T>& y, int metric, double p, int threads) {
  const MatrixView<T> xv = matrix(x, "x"), yv = matrix(y, "y");
  require(xv.cols == yv.cols, "x and y must have the same number of columns");
  carray<T> out({xv.rows, yv.rows});
  T* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    const Metric mt = static_cast<Metric>(metric);
    if (mt == Metric::SqEuclidean && xv.cols >= kGemmMinDim) {
      gemm_cost(xv, yv, threads, dst);
    } else {
      direct_cost(xv, yv, mt, p, threads, dst);
    }
  }
  return out;
}

// Per problem of a (B, ...) array: (least entry, largest entry), both NaN when any entry is
// NaN or inf. Blocks of the flattened problem are reduced in parallel; min and max do not
// depend on the order, so neither does the result.
template <class T>
std::pair<carray<double>, carray<double>> finite_ranges(const carray<T>& arr, int threads) {
  require(arr.ndim() >= 1, "the array must have a leading batch dimension");
  const index_t batch = arr.shape(0), len = batch > 0 ? arr.size() / batch : 0;
  carray<double> lo(batch), hi(batch);
  double* plo = lo.mutable_data();
  double* phi = hi.mutable_data();
  const T* data = arr.data();
  {
    py::gil_scoped_release release;
    constexpr index_t kBlock = index_t{1} << 16;
    const index_t blocks = n_blocks(len, kBlock);
    std::vector<double> blo(batch * blocks), bhi(batch * blocks);
    std::vector<char> ok(batch * blocks);
    parallel_for(batch * blocks, threads_for_work(threads, batch * len), [&](index_t t) {
      const index_t k = t / blocks, start = (t % blocks) * kBlock;
      ok[t] = finite_range(data + k * len + start, std::min(kBlock, len - start), blo[t], bhi[t]);
    });
    const double nan = std::numeric_limits<double>::quiet_NaN();
    for (index_t k = 0; k < batch; ++k) {
      double mn = std::numeric_limits<double>::infinity(), mx = -mn;
      bool finite = true;
      for (index_t t = k * blocks; t < (k + 1) * blocks; ++t) {
        finite = finite && ok[t];
        mn = std::min(mn, blo[t]);
        mx = std::max(mx, bhi[t]);
      }
      plo[k] = finite ? mn : nan;
      phi[k] = finite ? mx : nan;
    }
  }
  return {lo, hi};
}

// Internal (pyot.inverse): the bilinear cost C = -u y^T written into out (n, m), in blocks of
// rows over the threads, each block's range taken while it is in cache. Returns (min, max), both
// NaN when an entry is NaN or inf: the cost and the validation pass of a solve in one.
std::pair<double, double> bilinear_cost(const carray<double>& u, const carray<double>& y,
                                        carray<double>& out, int threads) {
  const MatrixView<double> uv = matrix(u, "u"), yv = matrix(y, "y");
  require(uv.cols == yv.cols, "u and y must have the same number of columns");
  require_shape(out, {uv.rows, yv.rows}, "out");
  const index_t n = uv.rows, m = yv.rows, d = uv.cols;
  double* dst = out.mutable_data();
  double mn = std::numeric_limits<double>::infinity(), mx = -mn;
  bool finite = true;
  {
    py::gil_scoped_release release;
    std::vector<double> panels;
    to_panels(m, d, [&](index_t j) { return yv.row(j); }, panels);
    // Blocks of 16 rows (256 KiB at m = 2000): each is written and its range read in cache.
    constexpr index_t rows = 2 * kGemmRows;
    const index_t blocks = n_blocks(n, rows);
    std::vector<double> blo(blocks), bhi(blocks);
    std::vector<char> ok(blocks);
    for_blocks(n, rows, threads_for_work(threads, n * m), [&](index_t i0, index_t i1) {
      bilinear_rows(uv.data, panels.data(), d, m, i0, i1, dst + i0 * m, m);
      const index_t t = i0 / rows;
      ok[t] = finite_range(dst + i0 * m, (i1 - i0) * m, blo[t], bhi[t]);
    });
    for (index_t t = 0; t < blocks; ++t) {
      finite = finite && ok[t];
      mn = std::min(mn, blo[t]);
      mx = std::max(mx, bhi[t]);
    }
  }
  if (!finite) mn = mx = std::numeric_limits<double>::quiet_NaN();
  return {mn, mx};
}

}  // namespace

void bind_costs(py::module_& m) {
  PYOT_DEF_FLOATING(m, "cost_matrix", cost_matrix, py::arg("x").noconvert(),
                    py::arg("y").noconvert(), py::arg("metric"), py::arg("p"),
                    py::arg("threads") = 0,
                    "Dense (n, m) cost matrix between the rows of x and y (direct sums).");
  PYOT_DEF_FLOATING(m, "finite_ranges", finite_ranges, py::arg("arr").noconvert(),
                    py::arg("threads") = 0,
                    "Per leading index: (min, max) of the entries, NaN when any is NaN or inf.");
  m.def("bilinear_cost", &bilinear_cost, py::arg("u").noconvert(), py::arg("y").noconvert(),
        py::arg("out").noconvert(), py::arg("threads") = 0,
        "Internal (pyot.inverse): out = -u @ y.T (float64, C-contiguous (n, m)); returns its "
        "(min, max), both NaN when an entry is NaN or inf.");
}
