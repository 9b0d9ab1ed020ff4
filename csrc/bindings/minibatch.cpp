// Bindings of the mini-batch family: all the batch problems of one call, one per thread.
#include "pyot/minibatch.hpp"

#include <pybind11/stl.h>

#include <cmath>
#include <tuple>
#include <vector>

#include "common.hpp"

namespace {

using namespace pyot;
using namespace pyot::bind;
namespace mb = pyot::minibatch;

// (status, n_iter, value) per problem, then the plans' support as problem, row (of x), column
// (of y) and mass arrays of one length (empty without plans).
using MinibatchOut = std::tuple<carray<int>, carray<index_t>, carray<double>, carray<index_t>,
                                carray<index_t>, carray<index_t>, carray<double>>;

MinibatchOut pack(const std::vector<mb::BatchResult>& results) {
  const index_t count = index_t(results.size());
  index_t nnz = 0;
  for (const auto& r : results) nnz += index_t(r.mass.size());
  carray<int> status(count);
  carray<index_t> n_iter(count), problem(nnz), rows(nnz), cols(nnz);
  carray<double> value(count), mass(nnz);
  index_t at = 0;
  for (index_t k = 0; k < count; ++k) {
    const mb::BatchResult& r = results[std::size_t(k)];
    status.mutable_data()[k] = static_cast<int>(r.status);
    n_iter.mutable_data()[k] = r.n_iter;
    value.mutable_data()[k] = r.value;
    for (std::size_t s = 0; s < r.mass.size(); ++s, ++at) {
      problem.mutable_data()[at] = k;
      rows.mutable_data()[at] = r.rows[s];
      cols.mutable_data()[at] = r.cols[s];
      mass.mutable_data()[at] = r.mass[s];
    }
  }
  return {status, n_iter, value, problem, rows, cols, mass};
}

template <class T>
MinibatchOut minibatch_solve(const carray<T>& x, const carray<T>& y, const carray<index_t>& ix,
                             const carray<index_t>& iy, const carray<index_t>& pairs, int solver,
                             int metric, double p, double weight_x, double weight_y, double eps,
                             double tol, index_t max_iter, double tau_a, double tau_b, double mass,
                             double eps_scaling, double scaling_ratio, bool plans, int threads) {
  const MatrixView<T> xv = matrix(x, "x"), yv = matrix(y, "y");
  require(xv.cols == yv.cols, "x and y must have the same number of columns");
  require_ndim(ix, 2, "ix");
  require_ndim(iy, 2, "iy");
  require_ndim(pairs, 2, "pairs");
  require(pairs.shape(1) == 2, "pairs must have shape (P, 2)");
  require(solver >= 0 && solver <= 3, "unknown solver");
  require(metric >= 0 && metric <= 4, "unknown metric");
  require(std::isfinite(weight_x) && weight_x > 0 && std::isfinite(weight_y) && weight_y > 0,
          "batch weights must be positive and finite");
  require(eps >= 0.0 && std::isfinite(eps), "eps must be a non-negative finite number");
  require(solver == int(mb::Solver::Emd) || solver == int(mb::Solver::Partial) || eps > 0.0,
          "the entropic solvers need a positive eps");
  require(tol >= 0.0, "tol must be non-negative");
  require(max_iter >= 0, "max_iter must be non-negative");
  require(tau_a > 0.0 && tau_b > 0.0, "reg_marginals must be positive");
  require(solver != int(mb::Solver::Partial) || (std::isfinite(mass) && mass > 0.0),
          "mass must be a positive finite number");
  mb::Options o;
  o.solver = static_cast<mb::Solver>(solver);
  o.metric = static_cast<Metric>(metric);
  o.p = p;
  o.weight_x = weight_x;
  o.weight_y = weight_y;
  o.eps = eps;
  o.tol = tol;
  o.max_iter = max_iter;
  o.tau_a = tau_a;
  o.tau_b = tau_b;
  o.mass = mass;
  o.eps_scaling = eps_scaling;
  o.scaling_ratio = scaling_ratio;
  o.plans = plans;
  o.threads = threads;
  mb::Batches bt;
  bt.ix = ix.data();
  bt.kx = ix.shape(0);
  bt.nb = ix.shape(1);
  bt.iy = iy.data();
  bt.ky = iy.shape(0);
  bt.mb = iy.shape(1);
  std::vector<mb::BatchResult> results;
  {
    py::gil_scoped_release release;
    results = mb::solve(xv, yv, bt, pairs.data(), pairs.shape(0), o);
  }
  return pack(results);
}

}  // namespace

void bind_minibatch(py::module_& m) {
  PYOT_DEF_FLOATING(
      m, "minibatch_solve", minibatch_solve, py::arg("x").noconvert(), py::arg("y").noconvert(),
      py::arg("ix").noconvert(), py::arg("iy").noconvert(), py::arg("pairs").noconvert(),
      py::kw_only(), py::arg("solver"), py::arg("metric"), py::arg("p"), py::arg("weight_x"),
      py::arg("weight_y"), py::arg("eps"), py::arg("tol"), py::arg("max_iter"), py::arg("tau_a"),
      py::arg("tau_b"), py::arg("mass"), py::arg("eps_scaling"), py::arg("scaling_ratio"),
      py::arg("plans"), py::arg("threads"),
      "OT between batches of x (rows ix[k]) and y (rows iy[k]) for each pair (x batch, y batch) "
      "of pairs, one problem per thread. Returns (status, n_iter, value, problem, row, col, "
      "mass): per-problem fields, then the plans' support in x / y indices.");
}
