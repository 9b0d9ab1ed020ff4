// Bindings of the sparse family: sparsity-constrained / quadratic OT solves and the (semi-)dual
// objective itself (tests check its gradient; the driver comparison calls it from SciPy).
#include "pyot/sparse.hpp"

#include <algorithm>
#include <cmath>
#include <tuple>
#include <vector>

#include "common.hpp"

namespace {

using namespace pyot;
using namespace pyot::bind;
namespace sp = pyot::sparse;

sp::Options make_options(index_t k, double reg, double tol, index_t max_iter, int formulation,
                         int threads, bool polish = true, bool assignment = true,
                         bool transpose = true) {
  require(k >= 1, "k must be >= 1");
  require(std::isfinite(reg) && reg > 0.0, "reg must be a positive finite number");
  require(tol >= 0.0, "tol must be non-negative");
  require(max_iter >= 0, "max_iter must be non-negative");
  require(formulation == 0 || formulation == 1, "unknown formulation");
  sp::Options o;
  o.k = k;
  o.reg = reg;
  o.tol = tol;
  o.max_iter = max_iter;
  o.formulation = static_cast<sp::Formulation>(formulation);
  o.threads = threads;
  o.polish = polish;
  o.assignment = assignment;
  o.transpose = transpose;
  return o;
}

template <class T>
carray<T> to_array(const std::vector<double>& v) {
  carray<T> out(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), out.mutable_data());
  return out;
}

template <class T>
carray<index_t> to_index_array(const std::vector<T>& v) {
  carray<index_t> out(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), out.mutable_data());
  return out;
}

// (status, stalled, polished, n_iter, marginal_error, value, objective, f, g, col_ptr, rows,
// values): f, g and values in the cost's dtype.
template <class T>
py::tuple sparse_solve(const carray<T>& cost, const carray<double>& a, const carray<double>& b,
                       index_t k, double reg, double tol, index_t max_iter, int formulation,
                       int threads, bool polish, bool assignment, bool transpose) {
  const MatrixView<T> cv = matrix(cost, "cost");
  const index_t n = cv.rows, m = cv.cols;
  require_shape(a, {n}, "a");
  require_shape(b, {m}, "b");
  const sp::Options o =
      make_options(k, reg, tol, max_iter, formulation, threads, polish, assignment, transpose);
  std::vector<double> x(static_cast<size_t>(formulation == 1 ? n + m : n), 0.0);
  std::vector<double> g(static_cast<size_t>(m));
  sp::CscPlan plan;
  sp::Result r;
  {
    py::gil_scoped_release release;
    r = sp::solve(cv, a.data(), b.data(), x, g.data(), plan, o);
  }
  x.resize(static_cast<size_t>(n));
  return py::make_tuple(static_cast<int>(r.status), r.stalled, r.polished, r.n_iter,
                        r.marginal_error, r.value, r.objective, to_array<T>(x), to_array<T>(g),
                        to_index_array(plan.col_ptr), to_index_array(plan.rows),
                        to_array<T>(plan.values));
}

// F(x) and grad F(x) of the (semi-)dual over the column-major cost cost_t (shape (m, n)).
template <class T>
std::tuple<double, carray<double>, double> sparse_objective(
    const carray<T>& cost_t, const carray<double>& a, const carray<double>& b,
    const carray<double>& x, index_t k, double reg, int formulation, int threads) {
  const MatrixView<T> ct = matrix(cost_t, "cost_t");
  const index_t m = ct.rows, n = ct.cols;
  require_shape(a, {n}, "a");
  require_shape(b, {m}, "b");
  const sp::Options o = make_options(k, reg, 0.0, 0, formulation, threads);
  require_shape(x, {formulation == 1 ? n + m : n}, "x");
  carray<double> grad(x.size());
  double f = 0.0, err = 0.0;
  {
    py::gil_scoped_release release;
    sp::Objective<T> obj(ct.data, n, m, a.data(), b.data(), o);
    f = obj.evaluate(x.data(), grad.mutable_data());
    err = obj.marginal_error();
  }
  return {f, grad, err};
}

}  // namespace

void bind_sparse(py::module_& m) {
  PYOT_DEF_FLOATING(m, "sparse_solve", sparse_solve, py::arg("cost").noconvert(),
                    py::arg("a").noconvert(), py::arg("b").noconvert(), py::kw_only(), py::arg("k"),
                    py::arg("reg"), py::arg("tol"), py::arg("max_iter"), py::arg("formulation"),
                    py::arg("threads"), py::arg("polish") = true, py::arg("assignment") = true,
                    py::arg("transpose") = true,
                    "Sparsity-constrained OT by L-BFGS on the semi-dual (formulation=0) or dual "
                    "(1); polish: where k binds, try quadratic OT on the top-k support; "
                    "assignment: k = 1 with equal column weights and row weights that are integer "
                    "multiples of them is solved exactly as an assignment problem; transpose: with "
                    "m < n, quadratic OT over the column potentials first (kept when no column "
                    "exceeds k nonzeros). Returns "
                    "(status, stalled, polished, n_iter, marginal_error, value, objective, f, g, "
                    "col_ptr, rows, values); the last three are the plan in CSC form.");
  PYOT_DEF_FLOATING(m, "sparse_objective", sparse_objective, py::arg("cost_t").noconvert(),
                    py::arg("a").noconvert(), py::arg("b").noconvert(), py::arg("x").noconvert(),
                    py::kw_only(), py::arg("k"), py::arg("reg"), py::arg("formulation"),
                    py::arg("threads"),
                    "The concave (semi-)dual F(x) over the transposed cost (m, n): returns (F, "
                    "grad F, marginal error of the plan at x).");
}
