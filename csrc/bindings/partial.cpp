// Bindings of the partial family: entropic partial OT on a dense cost or on point clouds.
// (Exact partial OT is the network simplex on an augmented problem, assembled in Python.)
#include "pyot/partial.hpp"

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

}  // namespace

void bind_partial(py::module_& m) {
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
