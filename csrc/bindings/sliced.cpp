// Bindings of the sliced family: per-direction W_p^p, the max-sliced value and gradient along
// one direction, and the bench's std::sort probe.
#include "pyot/sliced.hpp"

#include <pybind11/stl.h>

#include <cmath>
#include <optional>
#include <tuple>

#include "common.hpp"

namespace {

using namespace pyot;
using namespace pyot::bind;
namespace sl = pyot::sliced;

using Weights = std::optional<carray<double>>;

// A cloud over the rows of `points`, weighted when `w` holds an array of matching length.
template <class T>
sl::Cloud<T> cloud(const carray<T>& points, const Weights& w, const char* name, const char* wname) {
  sl::Cloud<T> c;
  c.points = matrix(points, name);
  if (w) {
    require_shape(*w, {c.points.rows}, wname);
    c.weights = w->data();
  }
  return c;
}

template <class T>
carray<double> sliced_projected(const carray<T>& x, const carray<T>& y, const Weights& a,
                                const Weights& b, const carray<T>& directions, double mass,
                                double p, int threads, index_t chunk_bytes) {
  const sl::Cloud<T> cx = cloud(x, a, "x", "a"), cy = cloud(y, b, "y", "b");
  const MatrixView<T> dirs = matrix(directions, "directions");
  require(chunk_bytes >= 0, "chunk_bytes must be non-negative (0: automatic)");
  sl::Options opt;
  opt.p = p;
  opt.threads = threads;
  opt.chunk_bytes = chunk_bytes;
  carray<double> out(dirs.rows);
  double* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    sl::projected_wpp(cx, cy, dirs, mass, opt, dst);
  }
  return out;
}

// Same, also returning the phase times {project, sort, merge (seconds), sorted (values)}.
template <class T>
std::tuple<carray<double>, py::dict> sliced_projected_timed(const carray<T>& x, const carray<T>& y,
                                                            const carray<T>& directions, double p,
                                                            int threads) {
  const sl::Cloud<T> cx = cloud(x, Weights{}, "x", "a"), cy = cloud(y, Weights{}, "y", "b");
  const MatrixView<T> dirs = matrix(directions, "directions");
  sl::Options opt;
  opt.p = p;
  opt.threads = threads;
  carray<double> out(dirs.rows);
  double* dst = out.mutable_data();
  sl::PhaseTimes times;
  {
    py::gil_scoped_release release;
    sl::projected_wpp(cx, cy, dirs, 1.0, opt, dst, &times);
  }
  py::dict t;
  t["project"] = times.project;
  t["sort"] = times.sort;
  t["merge"] = times.merge;
  t["sorted"] = times.sorted;
  return {out, t};
}

template <class T>
std::tuple<double, carray<double>> max_sliced_step(const carray<T>& x, const carray<T>& y,
                                                   const Weights& a, const Weights& b,
                                                   const carray<double>& theta, double mass,
                                                   double p, int threads) {
  const sl::Cloud<T> cx = cloud(x, a, "x", "a"), cy = cloud(y, b, "y", "b");
  require_shape(theta, {cx.points.cols}, "theta");
  carray<double> grad(cx.points.cols);
  double* g = grad.mutable_data();
  double value = 0.0;
  {
    py::gil_scoped_release release;
    value = sl::direction_value_and_gradient(cx, cy, theta.data(), mass, p, g, threads);
  }
  return {value, grad};
}

// (per-direction W_p^p, d sum / dx, d sum / dy) for the unit rows of directions (L, d).
template <class T>
std::tuple<carray<double>, carray<double>, carray<double>> sliced_gradient(
    const carray<T>& x, const carray<T>& y, const Weights& a, const Weights& b,
    const carray<double>& directions, double mass, double p, int threads) {
  const sl::Cloud<T> cx = cloud(x, a, "x", "a"), cy = cloud(y, b, "y", "b");
  const MatrixView<double> dirs = matrix(directions, "directions");
  require(cx.points.cols == cy.points.cols, "x and y must have the same dimension");
  require(cx.uniform() == cy.uniform(), "weights must be given for both clouds or neither");
  require(p >= 1.0 && std::isfinite(p), "p must be a finite number >= 1");
  carray<double> values(dirs.rows), gx({cx.points.rows, cx.points.cols}),
      gy({cy.points.rows, cy.points.cols});
  double* vp = values.mutable_data();
  double* gxp = gx.mutable_data();
  double* gyp = gy.mutable_data();
  {
    py::gil_scoped_release release;
    sl::projected_wpp_gradient(cx, cy, dirs, mass, p, vp, gxp, gyp, threads);
  }
  return {values, gx, gy};
}

template <class T>
double std_sort_seconds(const carray<T>& values, int threads) {
  const MatrixView<T> v = matrix(values, "values");
  py::gil_scoped_release release;
  return sl::std_sort_seconds(v.data, v.rows, v.cols, threads);
}

}  // namespace

void bind_sliced(py::module_& m) {
  PYOT_DEF_FLOATING(m, "sliced_projected", sliced_projected, py::arg("x").noconvert(),
                    py::arg("y").noconvert(), py::arg("a").noconvert(), py::arg("b").noconvert(),
                    py::arg("directions").noconvert(), py::kw_only(), py::arg("mass"), py::arg("p"),
                    py::arg("threads"), py::arg("chunk_bytes") = sl::Options().chunk_bytes,
                    "Per-direction W_p^p between the projections of x and y on the unit rows of "
                    "directions (L, d); a, b are float64 weights of total mass `mass`, or None "
                    "for uniform (both or neither).");
  PYOT_DEF_FLOATING(m, "sliced_projected_timed", sliced_projected_timed, py::arg("x").noconvert(),
                    py::arg("y").noconvert(), py::arg("directions").noconvert(), py::kw_only(),
                    py::arg("p"), py::arg("threads"),
                    "sliced_projected for uniform clouds, also returning the phase times "
                    "{project: wall s, sort: thread-s, merge: thread-s, sorted: values}.");
  PYOT_DEF_FLOATING(m, "max_sliced_step", max_sliced_step, py::arg("x").noconvert(),
                    py::arg("y").noconvert(), py::arg("a").noconvert(), py::arg("b").noconvert(),
                    py::arg("theta").noconvert(), py::kw_only(), py::arg("mass"), py::arg("p"),
                    py::arg("threads"),
                    "(W_p^p, gradient) along the unit direction theta (d,), by the monotone "
                    "coupling of the slice.");
  PYOT_DEF_FLOATING(m, "sliced_gradient", sliced_gradient, py::arg("x").noconvert(),
                    py::arg("y").noconvert(), py::arg("a").noconvert(), py::arg("b").noconvert(),
                    py::arg("directions").noconvert(), py::kw_only(), py::arg("mass"), py::arg("p"),
                    py::arg("threads"),
                    "(W_p^p per direction, gradient of their sum in x (n, d), in y (m, d)) for "
                    "the unit rows of directions (L, d), float64.");
  PYOT_DEF_FLOATING(m, "std_sort_seconds", std_sort_seconds, py::arg("values").noconvert(),
                    py::arg("threads"),
                    "Bench probe: thread-seconds (summed per-row times) to std::sort each row of a "
                    "copy of values (rows, n), threads over rows.");
}
