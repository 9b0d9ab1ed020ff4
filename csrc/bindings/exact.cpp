// Bindings of the exact family: the network simplex, single or batched.
#include "pyot/exact.hpp"

#include <pybind11/stl.h>

#include <cmath>
#include <optional>
#include <tuple>
#include <vector>

#include "common.hpp"

namespace {

using namespace pyot;
using namespace pyot::bind;
namespace ex = pyot::exact;

// (status (B,), n_iter (B,), value (B,), f (B, n), g (B, m), and the plans' support as
// problem, row, column and mass arrays of one length).
using EmdOut =
    std::tuple<carray<int>, carray<index_t>, carray<double>, carray<double>, carray<double>,
               carray<index_t>, carray<index_t>, carray<index_t>, carray<double>>;

EmdOut pack(const std::vector<ex::Result>& results, index_t n, index_t m) {
  const index_t batch = index_t(results.size());
  index_t nnz = 0;
  for (const auto& r : results) nnz += index_t(r.mass.size());
  carray<int> status(batch);
  carray<index_t> n_iter(batch), problem(nnz), rows(nnz), cols(nnz);
  carray<double> value(batch), f({batch, n}), g({batch, m}), mass(nnz);
  index_t at = 0;
  for (index_t k = 0; k < batch; ++k) {
    const ex::Result& r = results[k];
    status.mutable_data()[k] = static_cast<int>(r.status);
    n_iter.mutable_data()[k] = r.n_iter;
    value.mutable_data()[k] = r.value;
    std::copy(r.f.begin(), r.f.end(), f.mutable_data() + k * n);
    std::copy(r.g.begin(), r.g.end(), g.mutable_data() + k * m);
    for (size_t s = 0; s < r.mass.size(); ++s, ++at) {
      problem.mutable_data()[at] = k;
      rows.mutable_data()[at] = r.rows[s];
      cols.mutable_data()[at] = r.cols[s];
      mass.mutable_data()[at] = r.mass[s];
    }
  }
  return {status, n_iter, value, f, g, problem, rows, cols, mass};
}

template <class T>
EmdOut emd(const carray<T>& cost, const carray<double>& a, const carray<double>& b,
           index_t max_iter, int threads) {
  require_ndim(cost, 3, "cost");
  const index_t batch = cost.shape(0), n = cost.shape(1), m = cost.shape(2);
  require(n > 0 && m > 0, "cost must not be empty");
  require_shape(a, {batch, n}, "a");
  require_shape(b, {batch, m}, "b");
  require(max_iter >= 0, "max_iter must be non-negative");
  ex::Options opt;
  opt.max_iter = max_iter;
  opt.threads = threads;
  std::vector<ex::Result> results;
  {
    py::gil_scoped_release release;
    results = ex::emd_batch(cost.data(), batch, n, m, a.data(), b.data(), opt);
  }
  return pack(results, n, m);
}

// u (n, k), v (m, k); weights None (uniform) or probability vectors. Returns W_p^p (k,).
template <class T>
carray<double> wasserstein_1d(const carray<T>& u, const carray<T>& v,
                              const std::optional<carray<double>>& wu,
                              const std::optional<carray<double>>& wv, double p, int threads) {
  require_ndim(u, 2, "u");
  require_ndim(v, 2, "v");
  const index_t n = u.shape(0), m = v.shape(0), k = u.shape(1);
  require(v.shape(1) == k, "u and v must have the same number of columns");
  require(n > 0 && m > 0 && k > 0, "u and v must not be empty");
  require(std::isfinite(p) && p >= 1.0, "p must be >= 1");
  if (wu) require_shape(*wu, {n}, "u_weights");
  if (wv) require_shape(*wv, {m}, "v_weights");
  carray<double> out(k);
  double* o = out.mutable_data();
  const double* pu = wu ? wu->data() : nullptr;
  const double* pv = wv ? wv->data() : nullptr;
  {
    py::gil_scoped_release release;
    ex::wasserstein_1d(u.data(), n, v.data(), m, k, pu, pv, p, threads, o);
  }
  return out;
}

}  // namespace

void bind_exact(py::module_& m) {
  PYOT_DEF_FLOATING(m, "emd", emd, py::arg("cost").noconvert(), py::arg("a").noconvert(),
                    py::arg("b").noconvert(), py::kw_only(), py::arg("max_iter"),
                    py::arg("threads"),
                    "Batched network simplex. Returns (status, n_iter, value, f, g, problem, "
                    "row, col, mass): per-problem fields, then the plans' support.");
  PYOT_DEF_FLOATING(m, "wasserstein_1d", wasserstein_1d, py::arg("u").noconvert(),
                    py::arg("v").noconvert(), py::arg("u_weights").noconvert(),
                    py::arg("v_weights").noconvert(), py::kw_only(), py::arg("p"),
                    py::arg("threads"),
                    "W_p^p on the line between the columns of u (n, k) and v (m, k).");
}
