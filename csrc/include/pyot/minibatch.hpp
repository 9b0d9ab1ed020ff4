// Mini-batch OT (ALGORITHMS 7): many small OT problems between batches of two point clouds,
// solved in one call, one batch per thread.
//
// The caller draws the batches (row indices into x and y, so the sampling and its seeds stay
// in Python) and names the problems to solve as pairs (x batch, y batch): m-OT pairs batch l of
// x with batch l of y, BoMb-OT every x batch with every y batch. For each pair the batch cost is
// built from the points by the shared tile code (common/costs.hpp) and handed to an existing
// solver: the network simplex (exact.hpp), Sinkhorn or unbalanced Sinkhorn (sinkhorn.hpp),
// entropic or exact partial OT (partial.hpp). Batch points carry uniform weights (mass / batch
// size; duplicated indices, from weighted sampling with replacement, add up).
//
// Every problem is solved by one thread from start to end and written to its own slot, so the
// results do not depend on the thread count or on how the pairs are split between calls.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "pyot/common/config.hpp"
#include "pyot/common/costs.hpp"
#include "pyot/common/status.hpp"
#include "pyot/common/threads.hpp"
#include "pyot/common/view.hpp"
#include "pyot/exact.hpp"
#include "pyot/partial.hpp"
#include "pyot/sinkhorn.hpp"

namespace pyot::minibatch {

enum class Solver : int { Emd = 0, Sinkhorn = 1, Unbalanced = 2, Partial = 3 };

// Defaults equal the Python ones of pyot.minibatch_ot.
struct Options {
  Solver solver = Solver::Emd;
  Metric metric = Metric::SqEuclidean;
  double p = 2.0;         // Minkowski exponent
  double weight_x = 0.0;  // weight of one x batch point (sum(a) / batch size)
  double weight_y = 0.0;  // weight of one y batch point (sum(b) / batch size)
  double eps = 0.0;       // entropic solvers; for Partial, 0 = exact
  double tol = 1e-6;
  index_t max_iter = 1'000'000;                           // pivots (exact) or iterations (entropic)
  double tau_a = sinkhorn::kInf, tau_b = sinkhorn::kInf;  // Unbalanced: KL penalties
  double mass = 0.0;                                      // Partial: mass moved per batch
  // eps annealing of the balanced entropic solves (Sinkhorn, entropic partial), the rule of
  // pyot.sinkhorn: from the batch cost's range by this factor per stage, when that range
  // exceeds scaling_ratio * eps; 0 = never.
  double eps_scaling = 0.0;
  double scaling_ratio = 0.0;
  bool plans = false;  // also return each plan's support
  int threads = 0;     // 0 = all cores
};

// One problem's outcome; the plan's support is in the caller's indices (rows of x, of y).
struct BatchResult {
  Status status = Status::Converged;
  index_t n_iter = 0;
  double value = 0.0;  // <P, C> on the batch cost
  std::vector<index_t> rows, cols;
  std::vector<double> mass;
};

// The batches: kx batches of nb rows of x, ky batches of mb rows of y (row-major index arrays).
struct Batches {
  const index_t* ix = nullptr;
  index_t kx = 0, nb = 0;
  const index_t* iy = nullptr;
  index_t ky = 0, mb = 0;
};

namespace detail {

// Buffers of one thread, reused from problem to problem.
template <class T>
struct Scratch {
  std::vector<T> xb, yb, cost;
  std::vector<double> a, b, f, g, h, row;
  GemmPoints<T> gemm;
};

// Rows idx[0..len) of x, gathered into out (len x d, row-major).
template <class T>
MatrixView<T> gather(MatrixView<T> x, const index_t* idx, index_t len, std::vector<T>& out) {
  out.resize(std::size_t(len * x.cols));
  for (index_t r = 0; r < len; ++r) std::copy_n(x.row(idx[r]), x.cols, out.data() + r * x.cols);
  return MatrixView<T>(out.data(), len, x.cols);
}

// The (nb x mb) cost between two gathered batches, by the tile evaluator of dense costs (the
// squared Euclidean cost in d >= kGemmMinDim goes to the GEMM form instead, in solve_pair).
template <class T>
MatrixView<T> batch_cost(MatrixView<T> xb, MatrixView<T> yb, const Options& o,
                         std::vector<T>& out) {
  constexpr index_t kTile = 256;
  const bool normalise = o.metric == Metric::Cosine;
  const PointsT<T> xs(xb, normalise), ys(yb, normalise);
  const index_t n = xb.rows, m = yb.rows;
  out.resize(std::size_t(n * m));
  dispatch_metric(o.metric, [&](auto tag) {
    constexpr Metric M = decltype(tag)::value;
    for (index_t i = 0; i < n; ++i)
      for (index_t j0 = 0; j0 < m; j0 += kTile)
        cost_row_tile<M>(xs.point(i), ys, j0, std::min(m, j0 + kTile), T(o.p),
                         out.data() + i * m + j0);
    return 0;
  });
  return MatrixView<T>(out.data(), n, m);
}

// max C - min C of a batch cost (contiguous; finite, being built from validated points).
template <class T>
double cost_range(MatrixView<T> c) {
  double lo = 0.0, hi = 0.0;
  finite_range(c.data, c.rows * c.cols, lo, hi);
  return hi - lo;
}

// Stores the support of an exact plan, mapped to the caller's indices.
inline void keep_support(const exact::Result& r, const index_t* I, const index_t* J,
                         BatchResult& out) {
  for (std::size_t s = 0; s < r.mass.size(); ++s) {
    out.rows.push_back(I[r.rows[s]]);
    out.cols.push_back(J[r.cols[s]]);
    out.mass.push_back(r.mass[s]);
  }
}

// Stores the entropic plan P_ij = a_i b_j exp((f_i + g_j + shift - C_ij) / eps) (every entry
// that does not underflow), mapped to the caller's indices.
template <class T>
void keep_gibbs(MatrixView<T> c, const double* a, const double* b, const double* f, const double* g,
                double shift, double eps, const index_t* I, const index_t* J, Scratch<T>& s,
                BatchResult& out) {
  const index_t n = c.rows, m = c.cols;
  const double inv_eps = 1.0 / eps;
  s.h.resize(std::size_t(m));
  s.row.resize(std::size_t(m));
  for (index_t j = 0; j < m; ++j) s.h[j] = std::log(b[j]) + g[j] * inv_eps;
  const sinkhorn::DenseCost<T> kernel(c);
  for (index_t i = 0; i < n; ++i) {
    kernel.gibbs_values(i, s.h.data(), std::log(a[i]) + (f[i] + shift) * inv_eps, inv_eps,
                        s.row.data());
    for (index_t j = 0; j < m; ++j) {
      if (!(s.row[j] > 0.0)) continue;
      out.rows.push_back(I[i]);
      out.cols.push_back(J[j]);
      out.mass.push_back(s.row[j]);
    }
  }
}

// eps_scaling for one balanced entropic solve: the stage rule of pyot.sinkhorn.
inline double annealing(const Options& o, double range) {
  return range > o.scaling_ratio * o.eps ? o.eps_scaling : 0.0;
}

template <class T>
void solve_emd(MatrixView<T> c, const Options& o, int threads, const index_t* I, const index_t* J,
               Scratch<T>& s, BatchResult& out) {
  exact::Options eo;
  eo.max_iter = o.max_iter;
  eo.threads = threads;
  const exact::Result r = exact::emd(c, s.a.data(), s.b.data(), eo);
  out.status = r.status;
  out.n_iter = r.n_iter;
  out.value = r.value;  // the same with or without the plan: BoMb-OT solves some pairs twice
  if (o.plans) keep_support(r, I, J, out);
}

template <class T>
void solve_partial_exact(MatrixView<T> c, const Options& o, int threads, const index_t* I,
                         const index_t* J, Scratch<T>& s, BatchResult& out) {
  exact::Options eo;
  eo.max_iter = o.max_iter;
  eo.threads = threads;
  const exact::Result r = partial::solve_exact(c, s.a.data(), s.b.data(), o.mass, eo);
  out.status = r.status;
  out.n_iter = r.n_iter;
  out.value = r.value;
  if (o.plans) keep_support(r, I, J, out);
}

template <class T>
void solve_sinkhorn(MatrixView<T> c, const Options& o, int threads, const index_t* I,
                    const index_t* J, Scratch<T>& s, BatchResult& out) {
  const bool balanced = o.solver == Solver::Sinkhorn;
  const double range = cost_range(c);
  sinkhorn::Options so;
  so.eps = o.eps;
  so.tol = o.tol;
  so.max_iter = o.max_iter;
  so.eps_scaling = balanced ? annealing(o, range) : 0.0;
  so.eps_start = range;
  so.cost_range = range;
  so.overrelax = balanced;
  so.tau_a = balanced ? sinkhorn::kInf : o.tau_a;
  so.tau_b = balanced ? sinkhorn::kInf : o.tau_b;
  so.threads = threads;
  s.f.assign(std::size_t(c.rows), 0.0);
  s.g.assign(std::size_t(c.cols), 0.0);
  const sinkhorn::Result r =
      sinkhorn::solve_dense(c, s.a.data(), s.b.data(), s.f.data(), s.g.data(), so);
  out.status = r.status;
  out.n_iter = r.n_iter;
  out.value = r.value;
  if (o.plans && r.status != Status::NotFinite)
    keep_gibbs(c, s.a.data(), s.b.data(), s.f.data(), s.g.data(), 0.0, o.eps, I, J, s, out);
}

template <class T>
void solve_partial_entropic(MatrixView<T> c, const Options& o, int threads, const index_t* I,
                            const index_t* J, Scratch<T>& s, BatchResult& out) {
  const double range = cost_range(c);
  partial::Options po;
  po.eps = o.eps;
  po.mass = o.mass;
  po.eps_start = range;
  po.eps_scaling = annealing(o, range);
  po.tol = o.tol;
  po.max_iter = o.max_iter;
  po.threads = threads;
  s.f.assign(std::size_t(c.rows), 0.0);
  s.g.assign(std::size_t(c.cols), 0.0);
  double lam = 0.0;
  const partial::Result r =
      partial::solve_entropic_dense(c, s.a.data(), s.b.data(), s.f.data(), s.g.data(), lam, po);
  out.status = r.status;
  out.n_iter = r.n_iter;
  out.value = r.value;
  if (o.plans && r.status != Status::NotFinite)
    keep_gibbs(c, s.a.data(), s.b.data(), s.f.data(), s.g.data(), lam, o.eps, I, J, s, out);
}

template <class T>
BatchResult solve_pair(MatrixView<T> x, MatrixView<T> y, const index_t* I, index_t nb,
                       const index_t* J, index_t mb, const Options& o, int threads, Scratch<T>& s) {
  MatrixView<T> c;
  if (o.metric == Metric::SqEuclidean && x.cols >= kGemmMinDim) {
    // The GEMM form reads the batch rows in place (no gather).
    s.gemm.assign(x, I, nb, y, J, mb);
    s.cost.resize(std::size_t(nb * mb));
    sqeuclidean_gemm_rows(s.gemm, 0, nb, s.cost.data(), mb);
    c = MatrixView<T>(s.cost.data(), nb, mb);
  } else {
    c = batch_cost(gather(x, I, nb, s.xb), gather(y, J, mb, s.yb), o, s.cost);
  }
  s.a.assign(std::size_t(nb), o.weight_x);
  s.b.assign(std::size_t(mb), o.weight_y);
  BatchResult out;
  switch (o.solver) {
    case Solver::Emd:
      solve_emd(c, o, threads, I, J, s, out);
      break;
    case Solver::Sinkhorn:
    case Solver::Unbalanced:
      solve_sinkhorn(c, o, threads, I, J, s, out);
      break;
    case Solver::Partial:
      if (o.eps > 0.0) {
        solve_partial_entropic(c, o, threads, I, J, s, out);
      } else {
        solve_partial_exact(c, o, threads, I, J, s, out);
      }
      break;
  }
  return out;
}

}  // namespace detail

// Solves the problems pairs[k] = (x batch, y batch), k < n_pairs (pairs is n_pairs x 2,
// row-major), one per thread; a lone problem gets the threads inside it instead.
template <class T>
std::vector<BatchResult> solve(MatrixView<T> x, MatrixView<T> y, const Batches& bt,
                               const index_t* pairs, index_t n_pairs, const Options& o) {
  require(x.cols == y.cols, "minibatch: x and y must have the same number of columns");
  require(bt.nb > 0 && bt.mb > 0, "minibatch: empty batches");
  require(o.weight_x > 0.0 && o.weight_y > 0.0, "minibatch: batch weights must be positive");
  for (index_t k = 0; k < bt.kx * bt.nb; ++k)
    require(bt.ix[k] >= 0 && bt.ix[k] < x.rows, "minibatch: x batch index out of range");
  for (index_t k = 0; k < bt.ky * bt.mb; ++k)
    require(bt.iy[k] >= 0 && bt.iy[k] < y.rows, "minibatch: y batch index out of range");
  for (index_t k = 0; k < n_pairs; ++k)
    require(pairs[2 * k] >= 0 && pairs[2 * k] < bt.kx && pairs[2 * k + 1] >= 0 &&
                pairs[2 * k + 1] < bt.ky,
            "minibatch: pair index out of range");
  std::vector<BatchResult> out(static_cast<std::size_t>(n_pairs));
  const int total = resolve_threads(o.threads);
  const int threads = static_cast<int>(std::max<index_t>(1, std::min<index_t>(total, n_pairs)));
  const int inner = n_pairs >= total ? 1 : std::max(1, total / threads);
  std::vector<detail::Scratch<T>> scratch(static_cast<std::size_t>(threads));
  parallel_for(n_pairs, threads, [&](index_t k) {
    const index_t* I = bt.ix + pairs[2 * k] * bt.nb;
    const index_t* J = bt.iy + pairs[2 * k + 1] * bt.mb;
    out[std::size_t(k)] =
        detail::solve_pair(x, y, I, bt.nb, J, bt.mb, o, inner, scratch[std::size_t(thread_id())]);
  });
  return out;
}

}  // namespace pyot::minibatch
