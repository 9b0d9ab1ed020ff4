// Bindings of the partial family: exact partial OT, and entropic partial OT on a dense cost or
// on point clouds.
#include "pyot/partial.hpp"

#include <algorithm>
#include <cmath>
#include <tuple>

#include "common.hpp"

namespace {

using namespace pyot;
using namespace pyot::bind;
namespace pt = pyot::partial;

// (status, n_iter, marginal_error, value, objective, lam)
using PartialOut = std::tuple<int, index_t, double, double, double, double>;

pt::Options make_options(double eps, double mass, double tol, index_t max_iter, double eps_start,
                         double eps_scaling, int threads) {
  require(std::isfinite(eps) && eps > 0.0, "eps must be a positive finite number");
  require(std::isfinite(mass) && mass > 0.0, "mass must be a positive finite number");
  require(tol >= 0.0, "tol must be non-negative");
  require(max_iter >= 0, "max_iter must be non-negative");
  pt::Options o;
  o.eps = eps;
  o.mass = mass;
  o.tol = tol;
  o.max_iter = max_iter;
  o.eps_start = eps_start;
  o.eps_scaling = eps_scaling;
  o.threads = threads;
  return o;
}

PartialOut pack(const pt::Result& r) {
  return {static_cast<int>(r.status), r.n_iter, r.marginal_error, r.value, r.objective, r.lam};
}

template <class T>
PartialOut partial_entropic_dense(const carray<T>& cost, const carray<double>& a,
                                  const carray<double>& b, carray<double>& f, carray<double>& g,
                                  double lam, double eps, double mass, double tol, index_t max_iter,
                                  double eps_start, double eps_scaling, int threads) {
  const MatrixView<T> cv = matrix(cost, "cost");
  require_shape(a, {cv.rows}, "a");
  require_shape(b, {cv.cols}, "b");
  require_shape(f, {cv.rows}, "f");
  require_shape(g, {cv.cols}, "g");
  const pt::Options o = make_options(eps, mass, tol, max_iter, eps_start, eps_scaling, threads);
  double* fp = f.mutable_data();
  double* gp = g.mutable_data();
  py::gil_scoped_release release;
  return pack(pt::solve_entropic_dense(cv, a.data(), b.data(), fp, gp, lam, o));
}

template <class T>
PartialOut partial_entropic_online(const carray<T>& x, const carray<T>& y, int metric, double p,
                                   const carray<double>& a, const carray<double>& b,
                                   carray<double>& f, carray<double>& g, double lam, double eps,
                                   double mass, double tol, index_t max_iter, double eps_start,
                                   double eps_scaling, int threads) {
  const auto [xv, yv] = point_clouds(x, y, metric, a, b, f, g);
  const pt::Options o = make_options(eps, mass, tol, max_iter, eps_start, eps_scaling, threads);
  double* fp = f.mutable_data();
  double* gp = g.mutable_data();
  py::gil_scoped_release release;
  return pack(pt::solve_entropic_online(xv, yv, static_cast<Metric>(metric), p, a.data(), b.data(),
                                        fp, gp, lam, o));
}

// (status, n_iter, value, f, g, rows, cols, mass): the plan's support and capacity prices.
using ExactOut = std::tuple<int, index_t, double, carray<double>, carray<double>, carray<index_t>,
                            carray<index_t>, carray<double>>;

template <class T>
ExactOut partial_exact(const carray<T>& cost, const carray<double>& a, const carray<double>& b,
                       double mass, index_t max_iter, int threads) {
  const MatrixView<T> cv = matrix(cost, "cost");
  require(cv.rows > 0 && cv.cols > 0, "cost must not be empty");
  require_shape(a, {cv.rows}, "a");
  require_shape(b, {cv.cols}, "b");
  require(std::isfinite(mass) && mass > 0.0, "mass must be a positive finite number");
  require(max_iter >= 0, "max_iter must be non-negative");
  exact::Options opt;
  opt.max_iter = max_iter;
  opt.threads = threads;
  exact::Result r;
  {
    py::gil_scoped_release release;
    r = pt::solve_exact(cv, a.data(), b.data(), mass, opt);
  }
  const index_t nnz = index_t(r.mass.size());
  carray<double> f(cv.rows), g(cv.cols), flow(nnz);
  carray<index_t> rows(nnz), cols(nnz);
  std::copy(r.f.begin(), r.f.end(), f.mutable_data());
  std::copy(r.g.begin(), r.g.end(), g.mutable_data());
  std::copy(r.rows.begin(), r.rows.end(), rows.mutable_data());
  std::copy(r.cols.begin(), r.cols.end(), cols.mutable_data());
  std::copy(r.mass.begin(), r.mass.end(), flow.mutable_data());
  return {static_cast<int>(r.status), r.n_iter, r.value, f, g, rows, cols, flow};
}

}  // namespace

void bind_partial(py::module_& m) {
  PYOT_DEF_FLOATING(m, "partial_exact", partial_exact, py::arg("cost").noconvert(),
                    py::arg("a").noconvert(), py::arg("b").noconvert(), py::kw_only(),
                    py::arg("mass"), py::arg("max_iter"), py::arg("threads"),
                    "Exact partial OT (network simplex on the augmented problem). Returns "
                    "(status, n_iter, value, f, g, rows, cols, mass).");
  PYOT_DEF_FLOATING(m, "partial_entropic_dense", partial_entropic_dense,
                    py::arg("cost").noconvert(), py::arg("a").noconvert(), py::arg("b").noconvert(),
                    py::arg("f").noconvert(), py::arg("g").noconvert(), py::kw_only(),
                    py::arg("lam"), py::arg("eps"), py::arg("mass"), py::arg("tol"),
                    py::arg("max_iter"), py::arg("eps_start"), py::arg("eps_scaling"),
                    py::arg("threads"),
                    "Entropic partial OT; f and g are updated in place. Returns (status, n_iter, "
                    "marginal_error, value, objective, lam).");
  PYOT_DEF_FLOATING(m, "partial_entropic_online", partial_entropic_online, py::arg("x").noconvert(),
                    py::arg("y").noconvert(), py::arg("metric"), py::arg("p"),
                    py::arg("a").noconvert(), py::arg("b").noconvert(), py::arg("f").noconvert(),
                    py::arg("g").noconvert(), py::kw_only(), py::arg("lam"), py::arg("eps"),
                    py::arg("mass"), py::arg("tol"), py::arg("max_iter"), py::arg("eps_start"),
                    py::arg("eps_scaling"), py::arg("threads"),
                    "Entropic partial OT between point clouds, cost evaluated on the fly.");
}
