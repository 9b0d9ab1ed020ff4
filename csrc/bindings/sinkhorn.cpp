// Bindings of the entropic family: dense (batched), online and symmetric Sinkhorn solves, point
// gradients and the entropic map.
#include "pyot/sinkhorn.hpp"

#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <tuple>

#include "common.hpp"

namespace {

using namespace pyot;
using namespace pyot::bind;
namespace sk = pyot::sinkhorn;

// (status, n_iter, marginal_error, value, objective), each of shape (B,).
using BatchOut =
    std::tuple<carray<int>, carray<index_t>, carray<double>, carray<double>, carray<double>>;

sk::Options make_options(double eps, double tol, index_t max_iter, double eps_scaling, int method,
                         bool overrelax, double tau_a, double tau_b, int threads) {
  require(std::isfinite(eps) && eps > 0.0, "eps must be a positive finite number");
  require(tol >= 0.0, "tol must be non-negative");
  require(max_iter >= 0, "max_iter must be non-negative");
  require(method >= 0 && method <= 2, "unknown method");
  require(tau_a > 0.0 && tau_b > 0.0, "reg_marginals must be positive");
  sk::Options o;
  o.eps = eps;
  o.tol = tol;
  o.max_iter = max_iter;
  o.eps_scaling = eps_scaling;
  o.method = static_cast<sk::Method>(method);
  o.overrelax = overrelax;
  o.tau_a = tau_a;
  o.tau_b = tau_b;
  o.threads = threads;
  return o;
}

// The options of a self-transport (symmetric) solve: one stage, log domain, no relaxation.
sk::Options symmetric_options(double eps, double tol, index_t max_iter, int threads, bool value) {
  sk::Options o = make_options(eps, tol, max_iter, 0.0, 1, false, sk::kInf, sk::kInf, threads);
  o.value = value;
  return o;
}

struct BatchBuffers {
  carray<int> status;
  carray<index_t> n_iter;
  carray<double> err, value, objective;
  explicit BatchBuffers(index_t batch)
      : status(batch), n_iter(batch), err(batch), value(batch), objective(batch) {}
  void store(index_t k, const sk::Result& r) {
    status.mutable_data()[k] = static_cast<int>(r.status);
    n_iter.mutable_data()[k] = r.n_iter;
    err.mutable_data()[k] = r.marginal_error;
    value.mutable_data()[k] = r.value;
    objective.mutable_data()[k] = r.objective;
  }
  BatchOut out() { return {status, n_iter, err, value, objective}; }
};

// Solves B independent problems: across problems when there are enough of them to keep every
// thread busy, else one after the other with all threads inside. Either way each problem is
// reduced in the same order, so the results do not depend on the split.
template <class Solve>
void for_each_problem(index_t batch, int threads, Solve&& solve) {
  const int t = resolve_threads(threads);
  if (batch >= t && batch > 1) {
    parallel_for(batch, t, [&](index_t k) { solve(k, 1); });
  } else {
    for (index_t k = 0; k < batch; ++k) solve(k, t);
  }
}

template <class T>
py::tuple sinkhorn_dense(const carray<T>& cost, const carray<double>& a, const carray<double>& b,
                         carray<double>& f, carray<double>& g, const carray<double>& cost_range,
                         const carray<double>& eps_start, double eps, double tol, index_t max_iter,
                         double eps_scaling, int method, bool overrelax, double tau_a, double tau_b,
                         int threads, bool value, const std::optional<carray<double>>& plan_y,
                         std::optional<carray<double>>& plan_y_out, bool plan_y_fused_only) {
  require_ndim(cost, 3, "cost");
  const index_t batch = cost.shape(0), n = cost.shape(1), m = cost.shape(2);
  // Internal (pyot.inverse): P Y at the returned potentials of a single problem, in place.
  require(plan_y.has_value() == plan_y_out.has_value(),
          "plan_y and plan_y_out must be given together");
  sk::PlanProduct product;
  if (plan_y) {
    require(batch == 1, "plan_y needs a single problem");
    require_ndim(*plan_y, 2, "plan_y");
    product.d = plan_y->shape(1);
    require_shape(*plan_y, {m, product.d}, "plan_y");
    require_shape(*plan_y_out, {n, product.d}, "plan_y_out");
    product.y = plan_y->data();
    product.out = plan_y_out->mutable_data();
    product.fused_only = plan_y_fused_only;
  }
  require_shape(a, {batch, n}, "a");
  require_shape(b, {batch, m}, "b");
  require_shape(f, {batch, n}, "f");
  require_shape(g, {batch, m}, "g");
  require_shape(cost_range, {batch}, "cost_range");
  require_shape(eps_start, {batch}, "eps_start");
  sk::Options base =
      make_options(eps, tol, max_iter, eps_scaling, method, overrelax, tau_a, tau_b, threads);
  base.value = value;
  BatchBuffers out(batch);
  const T* c = cost.data();
  double* fp = f.mutable_data();
  double* gp = g.mutable_data();
  {
    py::gil_scoped_release release;
    for_each_problem(batch, threads, [&](index_t k, int inner) {
      sk::Options o = base;
      o.threads = inner;
      o.cost_range = cost_range.data()[k];
      o.eps_start = eps_start.data()[k];
      const MatrixView<T> ck(c + k * n * m, n, m);
      out.store(k, sk::solve_dense(ck, a.data() + k * n, b.data() + k * m, fp + k * n, gp + k * m,
                                   o, plan_y ? &product : nullptr));
    });
  }
  py::tuple result = py::cast(out.out());
  if (!plan_y) return result;
  return py::make_tuple(result[0], result[1], result[2], result[3], result[4], product.written);
}

template <class T>
BatchOut sinkhorn_online(const carray<T>& x, const carray<T>& y, int metric, double p,
                         const carray<double>& a, const carray<double>& b, carray<double>& f,
                         carray<double>& g, double cost_range, double eps_start, double eps,
                         double tol, index_t max_iter, double eps_scaling, bool overrelax,
                         double tau_a, double tau_b, int threads, bool value) {
  const auto [xv, yv] = point_clouds(x, y, metric, a, b, f, g);
  sk::Options o =
      make_options(eps, tol, max_iter, eps_scaling, 1, overrelax, tau_a, tau_b, threads);
  o.value = value;
  o.cost_range = cost_range;
  o.eps_start = eps_start;
  BatchBuffers out(1);
  double* fp = f.mutable_data();
  double* gp = g.mutable_data();
  {
    py::gil_scoped_release release;
    out.store(
        0, sk::solve_online(xv, yv, static_cast<Metric>(metric), p, a.data(), b.data(), fp, gp, o));
  }
  return out.out();
}

// Views of problem k of a batch of point clouds x (B, n, d), y (B, m, d), with the weights and
// potentials (B, n) / (B, m) checked once: the batched online entry points.
template <class T>
struct CloudBatch {
  index_t batch = 0, n = 0, m = 0, d = 0;
  const T* x = nullptr;
  const T* y = nullptr;

  CloudBatch(const carray<T>& xs, const carray<T>& ys, int metric,
             std::initializer_list<const carray<double>*> rows,
             std::initializer_list<const carray<double>*> cols) {
    require_ndim(xs, 3, "x");
    require_ndim(ys, 3, "y");
    batch = xs.shape(0), n = xs.shape(1), m = ys.shape(1), d = xs.shape(2);
    require(ys.shape(0) == batch && ys.shape(2) == d,
            "x and y must have shapes (B, n, d) and (B, m, d)");
    require(metric >= 0 && metric <= 4, "unknown metric");
    for (const auto* r : rows) require_shape(*r, {batch, n}, "a row-side vector");
    for (const auto* c : cols) require_shape(*c, {batch, m}, "a column-side vector");
    x = xs.data();
    y = ys.data();
  }
  MatrixView<T> xk(index_t k) const { return MatrixView<T>(x + k * n * d, n, d); }
  MatrixView<T> yk(index_t k) const { return MatrixView<T>(y + k * m * d, m, d); }
};

// B independent point-cloud problems in one call (threads across problems when there are
// enough of them, see for_each_problem); f and g (B, n) / (B, m) updated in place.
template <class T>
BatchOut sinkhorn_online_batch(const carray<T>& x, const carray<T>& y, int metric, double p,
                               const carray<double>& a, const carray<double>& b, carray<double>& f,
                               carray<double>& g, const carray<double>& cost_range,
                               const carray<double>& eps_start, double eps, double tol,
                               index_t max_iter, double eps_scaling, bool overrelax, double tau_a,
                               double tau_b, int threads, bool value) {
  const CloudBatch<T> cb(x, y, metric, {&a, &f}, {&b, &g});
  require_shape(cost_range, {cb.batch}, "cost_range");
  require_shape(eps_start, {cb.batch}, "eps_start");
  sk::Options base =
      make_options(eps, tol, max_iter, eps_scaling, 1, overrelax, tau_a, tau_b, threads);
  base.value = value;
  BatchBuffers out(cb.batch);
  double* fp = f.mutable_data();
  double* gp = g.mutable_data();
  {
    py::gil_scoped_release release;
    for_each_problem(cb.batch, threads, [&](index_t k, int inner) {
      sk::Options o = base;
      o.threads = inner;
      o.cost_range = cost_range.data()[k];
      o.eps_start = eps_start.data()[k];
      out.store(k, sk::solve_online(cb.xk(k), cb.yk(k), static_cast<Metric>(metric), p,
                                    a.data() + k * cb.n, b.data() + k * cb.m, fp + k * cb.n,
                                    gp + k * cb.m, o));
    });
  }
  return out.out();
}

// The self-transport potentials h (B, n) of a batch of clouds x (B, n, d), in one call.
template <class T>
BatchOut sinkhorn_symmetric_online_batch(const carray<T>& x, int metric, double p,
                                         const carray<double>& a, carray<double>& h, double eps,
                                         double tol, index_t max_iter, int threads, bool value) {
  const CloudBatch<T> cb(x, x, metric, {&a, &h}, {});
  const sk::Options base = symmetric_options(eps, tol, max_iter, threads, value);
  BatchBuffers out(cb.batch);
  double* hp = h.mutable_data();
  {
    py::gil_scoped_release release;
    for_each_problem(cb.batch, threads, [&](index_t k, int inner) {
      sk::Options o = base;
      o.threads = inner;
      out.store(k, sk::solve_symmetric_online(cb.xk(k), static_cast<Metric>(metric), p,
                                              a.data() + k * cb.n, hp + k * cb.n, o));
    });
  }
  return out.out();
}

template <class T>
BatchOut sinkhorn_symmetric_dense(const carray<T>& cost, const carray<double>& a, carray<double>& h,
                                  double eps, double tol, index_t max_iter, int threads,
                                  bool value) {
  const MatrixView<T> cv = matrix(cost, "cost");
  require(cv.rows == cv.cols, "a self-transport cost must be square");
  require_shape(a, {cv.rows}, "a");
  require_shape(h, {cv.rows}, "h");
  const sk::Options o = symmetric_options(eps, tol, max_iter, threads, value);
  BatchBuffers out(1);
  double* hp = h.mutable_data();
  {
    py::gil_scoped_release release;
    out.store(0, sk::solve_symmetric_dense(cv, a.data(), hp, o));
  }
  return out.out();
}

template <class T>
BatchOut sinkhorn_symmetric_online(const carray<T>& x, int metric, double p,
                                   const carray<double>& a, carray<double>& h, double eps,
                                   double tol, index_t max_iter, int threads, bool value) {
  const MatrixView<T> xv = matrix(x, "x");
  require_shape(a, {xv.rows}, "a");
  require_shape(h, {xv.rows}, "h");
  require(metric >= 0 && metric <= 4, "unknown metric");
  const sk::Options o = symmetric_options(eps, tol, max_iter, threads, value);
  BatchBuffers out(1);
  double* hp = h.mutable_data();
  {
    py::gil_scoped_release release;
    out.store(0, sk::solve_symmetric_online(xv, static_cast<Metric>(metric), p, a.data(), hp, o));
  }
  return out.out();
}

// sum_j P_ij grad_x c(x_i, y_j) from the potentials, P never formed: (n, d) float64.
template <class T>
carray<double> sinkhorn_point_gradient(const carray<T>& x, const carray<T>& y, int metric, double p,
                                       const carray<double>& a, const carray<double>& b,
                                       const carray<double>& f, const carray<double>& g, double eps,
                                       int threads) {
  const auto [xv, yv] = point_clouds(x, y, metric, a, b, f, g);
  require(std::isfinite(eps) && eps > 0.0, "eps must be a positive finite number");
  carray<double> out({xv.rows, xv.cols});
  double* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    sk::point_gradient(xv, yv, static_cast<Metric>(metric), p, a.data(), b.data(), f.data(),
                       g.data(), eps, dst, threads);
  }
  return out;
}

// sinkhorn_point_gradient from the cost matrix (n, m) of x, y already evaluated (squared
// Euclidean or Euclidean): (n, d) float64.
template <class T>
carray<double> sinkhorn_dense_point_gradient(const carray<T>& cost, const carray<T>& x,
                                             const carray<T>& y, int metric,
                                             const carray<double>& a, const carray<double>& b,
                                             const carray<double>& f, const carray<double>& g,
                                             double eps, int threads) {
  const auto [xv, yv] = point_clouds(x, y, metric, a, b, f, g);
  require(std::isfinite(eps) && eps > 0.0, "eps must be a positive finite number");
  require_shape(cost, {xv.rows, yv.rows}, "cost");
  const MatrixView<T> cv(cost.data(), xv.rows, yv.rows);
  carray<double> out({xv.rows, xv.cols});
  double* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    sk::dense_point_gradient(cv, xv, yv, static_cast<Metric>(metric), a.data(), b.data(), f.data(),
                             g.data(), eps, dst, threads);
  }
  return out;
}

// sum_j P_ij (r_i + s_j + gamma C_ij) grad_x c(x_i, y_j): the point gradient with per-row,
// per-column and cost-proportional pair weights (implicit value gradients), (n, d) float64.
template <class T>
carray<double> sinkhorn_weighted_point_gradient(const carray<T>& x, const carray<T>& y, int metric,
                                                double p, const carray<double>& a,
                                                const carray<double>& b, const carray<double>& f,
                                                const carray<double>& g,
                                                const carray<double>& row_weights,
                                                const carray<double>& col_weights,
                                                double cost_weight, double eps, int threads) {
  const auto [xv, yv] = point_clouds(x, y, metric, a, b, f, g);
  require(std::isfinite(eps) && eps > 0.0, "eps must be a positive finite number");
  require_shape(row_weights, {xv.rows}, "row_weights");
  require_shape(col_weights, {yv.rows}, "col_weights");
  carray<double> out({xv.rows, xv.cols});
  double* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    sk::point_gradient(xv, yv, static_cast<Metric>(metric), p, a.data(), b.data(), f.data(),
                       g.data(), eps, dst, threads, row_weights.data(), col_weights.data(),
                       cost_weight);
  }
  return out;
}

// sum_j P_ij (v_j + gamma C_ij), (n,) float64, P from the potentials and never formed.
template <class T>
carray<double> sinkhorn_plan_matvec(const carray<T>& x, const carray<T>& y, int metric, double p,
                                    const carray<double>& a, const carray<double>& b,
                                    const carray<double>& f, const carray<double>& g,
                                    const carray<double>& v, double cost_weight, double eps,
                                    int threads) {
  const auto [xv, yv] = point_clouds(x, y, metric, a, b, f, g);
  require(std::isfinite(eps) && eps > 0.0, "eps must be a positive finite number");
  require_shape(v, {yv.rows}, "v");
  carray<double> out(xv.rows);
  double* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    sk::plan_matvec(xv, yv, static_cast<Metric>(metric), p, a.data(), b.data(), f.data(),
                    g.data(), eps, v.data(), cost_weight, dst, threads);
  }
  return out;
}

// The point gradients of a batch, (B, n, d) float64, in one call.
template <class T>
carray<double> sinkhorn_point_gradient_batch(const carray<T>& x, const carray<T>& y, int metric,
                                             double p, const carray<double>& a,
                                             const carray<double>& b, const carray<double>& f,
                                             const carray<double>& g, double eps, int threads) {
  const CloudBatch<T> cb(x, y, metric, {&a, &f}, {&b, &g});
  require(std::isfinite(eps) && eps > 0.0, "eps must be a positive finite number");
  carray<double> out({cb.batch, cb.n, cb.d});
  double* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    for_each_problem(cb.batch, threads, [&](index_t k, int inner) {
      sk::point_gradient(cb.xk(k), cb.yk(k), static_cast<Metric>(metric), p,
                         a.data() + k * cb.n, b.data() + k * cb.m, f.data() + k * cb.n,
                         g.data() + k * cb.m, eps, dst + k * cb.n * cb.d, inner);
    });
  }
  return out;
}

// Views of the query points z (n, d) and targets y (m, d) of an entropic map, with the
// targets' weights b and potentials g (m long) checked.
template <class T>
std::pair<MatrixView<T>, MatrixView<T>> map_points(const carray<T>& z, const carray<T>& y,
                                                   int metric, const carray<double>& b,
                                                   const carray<double>& g, double eps) {
  const MatrixView<T> zv = matrix(z, "z"), yv = matrix(y, "y");
  require(zv.cols == yv.cols, "z and y must have the same number of columns");
  require_shape(b, {yv.rows}, "b");
  require_shape(g, {yv.rows}, "g");
  require(metric >= 0 && metric <= 4, "unknown metric");
  require(std::isfinite(eps) && eps > 0.0, "eps must be a positive finite number");
  return {zv, yv};
}

// The entropic map T(z) from the target side of a solve (y, b, g): ((n, d) T(z), (n,) log
// normaliser), both float64.
template <class T>
std::tuple<carray<double>, carray<double>> sinkhorn_entropic_map(
    const carray<T>& z, const carray<T>& y, int metric, double p, const carray<double>& b,
    const carray<double>& g, double eps, int threads) {
  const auto [zv, yv] = map_points(z, y, metric, b, g, eps);
  carray<double> out({zv.rows, zv.cols}), lse(zv.rows);
  double* dst = out.mutable_data();
  double* lp = lse.mutable_data();
  {
    py::gil_scoped_release release;
    sk::entropic_map(zv, yv, static_cast<Metric>(metric), p, b.data(), g.data(), eps, dst, lp,
                     threads);
  }
  return {out, lse};
}

// d<cot, T(z)>/dz, (n, d) float64, from the forward's T(z) and log normaliser.
template <class T>
carray<double> sinkhorn_entropic_map_vjp(const carray<T>& z, const carray<T>& y, int metric,
                                         double p, const carray<double>& b,
                                         const carray<double>& g, const carray<double>& lse,
                                         const carray<double>& tz, const carray<double>& cot,
                                         double eps, int threads) {
  const auto [zv, yv] = map_points(z, y, metric, b, g, eps);
  require_shape(lse, {zv.rows}, "lse");
  require_shape(tz, {zv.rows, zv.cols}, "tz");
  require_shape(cot, {zv.rows, zv.cols}, "cot");
  carray<double> out({zv.rows, zv.cols});
  double* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    sk::entropic_map_vjp(zv, yv, static_cast<Metric>(metric), p, b.data(), g.data(), eps,
                         lse.data(), tz.data(), cot.data(), dst, threads);
  }
  return out;
}

}  // namespace

void bind_sinkhorn(py::module_& m) {
  PYOT_DEF_FLOATING(m, "sinkhorn_dense", sinkhorn_dense, py::arg("cost").noconvert(),
                    py::arg("a").noconvert(), py::arg("b").noconvert(), py::arg("f").noconvert(),
                    py::arg("g").noconvert(), py::arg("cost_range").noconvert(),
                    py::arg("eps_start").noconvert(), py::kw_only(), py::arg("eps"), py::arg("tol"),
                    py::arg("max_iter"), py::arg("eps_scaling"), py::arg("method"),
                    py::arg("overrelax"), py::arg("tau_a"), py::arg("tau_b"), py::arg("threads"),
                    py::arg("value") = true, py::arg("plan_y").noconvert() = py::none(),
                    py::arg("plan_y_out").noconvert() = py::none(),
                    py::arg("plan_y_fused_only") = false,
                    "Batched dense Sinkhorn; f and g are updated in place. Returns (status, "
                    "n_iter, marginal_error, value, objective), each of shape (B,); value is NaN "
                    "when value=False (<P, C> not computed). plan_y (m, d) with plan_y_out "
                    "(n, d), B = 1 only: P @ plan_y at the returned potentials is written into "
                    "plan_y_out, and the tuple gains a sixth element, whether it was: always, "
                    "or with plan_y_fused_only only when the float kernel's exact confirmation "
                    "pass gave it at those potentials (no pass of its own).");
  PYOT_DEF_FLOATING(
      m, "sinkhorn_online", sinkhorn_online, py::arg("x").noconvert(), py::arg("y").noconvert(),
      py::arg("metric"), py::arg("p"), py::arg("a").noconvert(), py::arg("b").noconvert(),
      py::arg("f").noconvert(), py::arg("g").noconvert(), py::kw_only(), py::arg("cost_range"),
      py::arg("eps_start"), py::arg("eps"), py::arg("tol"), py::arg("max_iter"),
      py::arg("eps_scaling"), py::arg("overrelax"), py::arg("tau_a"), py::arg("tau_b"),
      py::arg("threads"), py::arg("value") = true,
      "Sinkhorn between point clouds with the cost evaluated on the fly; value=False skips "
      "<P, C> (one exp pass; value is then NaN).");
  PYOT_DEF_FLOATING(
      m, "sinkhorn_online_batch", sinkhorn_online_batch, py::arg("x").noconvert(),
      py::arg("y").noconvert(), py::arg("metric"), py::arg("p"), py::arg("a").noconvert(),
      py::arg("b").noconvert(), py::arg("f").noconvert(), py::arg("g").noconvert(),
      py::arg("cost_range").noconvert(), py::arg("eps_start").noconvert(), py::kw_only(),
      py::arg("eps"), py::arg("tol"), py::arg("max_iter"), py::arg("eps_scaling"),
      py::arg("overrelax"), py::arg("tau_a"), py::arg("tau_b"), py::arg("threads"),
      py::arg("value") = true,
      "Sinkhorn between B pairs of point clouds x (B, n, d), y (B, m, d), cost on the fly, in "
      "one call; f and g (B, n) / (B, m) updated in place. Returns (status, n_iter, "
      "marginal_error, value, objective), each of shape (B,); value is NaN when value=False.");
  PYOT_DEF_FLOATING(m, "sinkhorn_symmetric_online_batch", sinkhorn_symmetric_online_batch,
                    py::arg("x").noconvert(), py::arg("metric"), py::arg("p"),
                    py::arg("a").noconvert(), py::arg("h").noconvert(), py::kw_only(),
                    py::arg("eps"), py::arg("tol"), py::arg("max_iter"), py::arg("threads"),
                    py::arg("value") = true,
                    "Self-transport potentials h (B, n) of B point clouds (B, n, d), in one call; "
                    "value (<P, C>, one exp pass) is NaN when value=False.");
  PYOT_DEF_FLOATING(m, "sinkhorn_point_gradient_batch", sinkhorn_point_gradient_batch,
                    py::arg("x").noconvert(), py::arg("y").noconvert(), py::arg("metric"),
                    py::arg("p"), py::arg("a").noconvert(), py::arg("b").noconvert(),
                    py::arg("f").noconvert(), py::arg("g").noconvert(), py::kw_only(),
                    py::arg("eps"), py::arg("threads"),
                    "sinkhorn_point_gradient over a batch (B, n, d), in one call: (B, n, d) "
                    "float64.");
  PYOT_DEF_FLOATING(m, "sinkhorn_symmetric_dense", sinkhorn_symmetric_dense,
                    py::arg("cost").noconvert(), py::arg("a").noconvert(), py::arg("h").noconvert(),
                    py::kw_only(), py::arg("eps"), py::arg("tol"), py::arg("max_iter"),
                    py::arg("threads"), py::arg("value") = true,
                    "Symmetric self-transport potential h (debiasing term); value is NaN when "
                    "value=False.");
  PYOT_DEF_FLOATING(m, "sinkhorn_symmetric_online", sinkhorn_symmetric_online,
                    py::arg("x").noconvert(), py::arg("metric"), py::arg("p"),
                    py::arg("a").noconvert(), py::arg("h").noconvert(), py::kw_only(),
                    py::arg("eps"), py::arg("tol"), py::arg("max_iter"), py::arg("threads"),
                    py::arg("value") = true,
                    "Symmetric self-transport potential on a point cloud, cost on the fly; value "
                    "is NaN when value=False.");
  PYOT_DEF_FLOATING(m, "sinkhorn_point_gradient", sinkhorn_point_gradient, py::arg("x").noconvert(),
                    py::arg("y").noconvert(), py::arg("metric"), py::arg("p"),
                    py::arg("a").noconvert(), py::arg("b").noconvert(), py::arg("f").noconvert(),
                    py::arg("g").noconvert(), py::kw_only(), py::arg("eps"), py::arg("threads"),
                    "sum_j P_ij grad_x c(x_i, y_j), (n, d) float64, from the potentials of "
                    "P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps), cost tiles on the fly.");
  PYOT_DEF_FLOATING(m, "sinkhorn_dense_point_gradient", sinkhorn_dense_point_gradient,
                    py::arg("cost").noconvert(), py::arg("x").noconvert(), py::arg("y").noconvert(),
                    py::arg("metric"), py::arg("a").noconvert(), py::arg("b").noconvert(),
                    py::arg("f").noconvert(), py::arg("g").noconvert(), py::kw_only(),
                    py::arg("eps"), py::arg("threads"),
                    "sinkhorn_point_gradient from the cost matrix (n, m) of x, y already "
                    "evaluated (squared Euclidean or Euclidean: one exp pass over it and the "
                    "weighted sums), (n, d) float64.");
  PYOT_DEF_FLOATING(m, "sinkhorn_weighted_point_gradient", sinkhorn_weighted_point_gradient,
                    py::arg("x").noconvert(), py::arg("y").noconvert(), py::arg("metric"),
                    py::arg("p"), py::arg("a").noconvert(), py::arg("b").noconvert(),
                    py::arg("f").noconvert(), py::arg("g").noconvert(),
                    py::arg("row_weights").noconvert(), py::arg("col_weights").noconvert(),
                    py::kw_only(), py::arg("cost_weight"), py::arg("eps"), py::arg("threads"),
                    "sum_j P_ij (r_i + s_j + cost_weight C_ij) grad_x c(x_i, y_j), (n, d) "
                    "float64, cost tiles on the fly.");
  PYOT_DEF_FLOATING(m, "sinkhorn_plan_matvec", sinkhorn_plan_matvec, py::arg("x").noconvert(),
                    py::arg("y").noconvert(), py::arg("metric"), py::arg("p"),
                    py::arg("a").noconvert(), py::arg("b").noconvert(), py::arg("f").noconvert(),
                    py::arg("g").noconvert(), py::arg("v").noconvert(), py::kw_only(),
                    py::arg("cost_weight"), py::arg("eps"), py::arg("threads"),
                    "sum_j P_ij (v_j + cost_weight C_ij), (n,) float64, P_ij = a_i b_j "
                    "exp((f_i + g_j - C_ij) / eps) from the potentials, cost tiles on the fly.");
  PYOT_DEF_FLOATING(m, "sinkhorn_entropic_map", sinkhorn_entropic_map, py::arg("z").noconvert(),
                    py::arg("y").noconvert(), py::arg("metric"), py::arg("p"),
                    py::arg("b").noconvert(), py::arg("g").noconvert(), py::kw_only(),
                    py::arg("eps"), py::arg("threads"),
                    "Entropic map T(z) = sum_j w_j y_j, w = softmax_j(log b_j + (g_j - "
                    "c(z, y_j)) / eps), one online pass: ((n, d) T(z), (n,) log normaliser), "
                    "float64.");
  PYOT_DEF_FLOATING(m, "sinkhorn_entropic_map_vjp", sinkhorn_entropic_map_vjp,
                    py::arg("z").noconvert(), py::arg("y").noconvert(), py::arg("metric"),
                    py::arg("p"), py::arg("b").noconvert(), py::arg("g").noconvert(),
                    py::arg("lse").noconvert(), py::arg("tz").noconvert(),
                    py::arg("cot").noconvert(), py::kw_only(), py::arg("eps"),
                    py::arg("threads"),
                    "Vector-Jacobian product of the entropic map in z: (n, d) float64.");
}
