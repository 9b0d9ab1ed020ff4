// Dense cost matrices from point clouds, evaluated by the same tile code as online costs.
#include "pyot/common/costs.hpp"

#include <algorithm>

#include "common.hpp"
#include "pyot/common/threads.hpp"

namespace {

using namespace pyot;
using namespace pyot::bind;

template <class T>
carray<T> cost_matrix(const carray<T>& x, const carray<T>& y, int metric, double p, int threads) {
  const MatrixView<T> xv = matrix(x, "x"), yv = matrix(y, "y");
  require(xv.cols == yv.cols, "x and y must have the same number of columns");
  carray<T> out({xv.rows, yv.rows});
  T* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    const Metric mt = static_cast<Metric>(metric);
    const bool normalise = mt == Metric::Cosine;
    const PointsT<T> xs(xv, normalise), ys(yv, normalise);
    const index_t n = xv.rows, m = yv.rows, block = 256;
    dispatch_metric(mt, [&](auto tag) {
      constexpr Metric M = decltype(tag)::value;
      parallel_for(n, resolve_threads(threads), [&](index_t i) {
        for (index_t j0 = 0; j0 < m; j0 += block)
          cost_row_tile<M>(xs.point(i), ys, j0, std::min(m, j0 + block), T(p), dst + i * m + j0);
      });
      return 0;
    });
  }
  return out;
}

}  // namespace

void bind_costs(py::module_& m) {
  PYOT_DEF_FLOATING(m, "cost_matrix", cost_matrix, py::arg("x").noconvert(),
                    py::arg("y").noconvert(), py::arg("metric"), py::arg("p"),
                    py::arg("threads") = 0,
                    "Dense (n, m) cost matrix between the rows of x and y (direct sums).");
}
