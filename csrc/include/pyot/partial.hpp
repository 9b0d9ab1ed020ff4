// Partial OT (ALGORITHMS 6): transport exactly a mass s <= min(sum a, sum b).
//
// The entropic problem min <P, C> + eps KL(P | a b^T) s.t. P 1 <= a, P^T 1 <= b, sum P = s is
// solved by exact block ascent on its dual (Dykstra's projections), in the log domain:
//
//   f_i <- min(0, -eps LSE_j(log b_j + (g_j + lam - C_ij) / eps))
//   g_j <- min(0, -eps LSE_i(log a_i + (f_i + lam - C_ij) / eps))
//   lam <- eps log s - eps LSE_ij(log a_i + log b_j + (f_i + g_j - C_ij) / eps)
//
// with P_ij = a_i b_j exp((f_i + g_j + lam - C_ij) / eps). The two LSE passes are the Sinkhorn
// family's log-domain half-steps (shared kernels: dense or online costs); the lam update reuses
// the column pass's sums, so an iteration costs two passes over the cost like Sinkhorn's. The
// exact problem is solved by the network simplex on the augmented problem (pyot/partial.py).
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "pyot/common/logsumexp.hpp"
#include "pyot/common/status.hpp"
#include "pyot/sinkhorn.hpp"

namespace pyot::partial {

struct Options {
  double eps = 1.0;
  double mass = 1.0;
  double tol = 1e-6;
  index_t max_iter = 10000;
  int threads = 0;
};

struct Result {
  Status status = Status::MaxIter;
  index_t n_iter = 0;
  double marginal_error = sinkhorn::kInf;  // the KKT residual, L1 (see residual())
  double value = 0.0;                      // <P, C>
  double objective = 0.0;                  // <P, C> + eps KL(P | a b^T)
  double lam = 0.0;                        // the price of mass: d value / d s
};

namespace detail {

// One side's KKT residual at masses exp(logr_i) * w_i: a capped constraint (pot_i = 0) may be
// slack, a binding one (pot_i < 0) must hold with equality. Adds the side's mass to `total`.
inline double side_residual(const double* w, const double* logr, const double* pot, double shift,
                            index_t len, double& total) {
  double err = 0.0;
  for (index_t i = 0; i < len; ++i) {
    if (w[i] <= 0.0) continue;
    const double mass = w[i] * std::exp(std::min(logr[i] + shift, 700.0));
    const double excess = mass - w[i];
    err += pot[i] < 0.0 ? std::fabs(excess) : std::max(excess, 0.0);
    total += mass;
  }
  return err;
}

}  // namespace detail

// Solves the entropic partial problem from the potentials (f, g, lam) given (warm start).
template <class Kernel>
Result solve_entropic(const Kernel& kernel, const double* a, const double* b, double* f, double* g,
                      double& lam, const Options& o) {
  const index_t n = kernel.rows(), m = kernel.cols();
  const sinkhorn::detail::Weights w(a, b, n, m);
  sinkhorn::LogDomain<Kernel> half(kernel, w);
  const double eps = o.eps, inv = 1.0 / eps, log_mass = std::log(o.mass);
  const int threads = threads_for_work(o.threads, n * m);
  std::vector<double> row(n), col(m), hcol(m);
  Result r;
  bool cols_known = false;
  for (index_t iter = 0;; ++iter) {
    // Row log-ratios at the current (f, g); with the column ones of the last pass they give
    // the exact KKT residual of the current iterate, without another pass.
    half.row_log_ratio(f, g, eps, row.data(), threads);
    if (cols_known) {
      double rows_total = 0.0, cols_total = 0.0;
      const double err = detail::side_residual(a, row.data(), f, lam * inv, n, rows_total) +
                         detail::side_residual(b, col.data(), g, lam * inv, m, cols_total);
      r.marginal_error = err + std::fabs(rows_total - o.mass);
      r.n_iter = iter;
      if (!std::isfinite(r.marginal_error)) {
        r.status = Status::NotFinite;
        return r;
      }
      if (r.marginal_error <= o.tol) {
        r.status = Status::Converged;
        break;
      }
    }
    if (iter == o.max_iter) break;
    for (index_t i = 0; i < n; ++i) f[i] = std::min(0.0, f[i] - eps * row[i] - lam);
    half.col_log_ratio(f, g, eps, col.data(), threads);
    for (index_t j = 0; j < m; ++j) {
      const double updated = std::min(0.0, g[j] - eps * col[j] - lam);
      col[j] += (updated - g[j]) * inv;  // the column's log-ratio at the new g
      g[j] = updated;
      hcol[j] = w.logb[j] + col[j];
    }
    // Total mass at (f, g, lam) is exp(lam / eps + LSE_j(log b_j + col_j)): rescale it to s.
    lam = eps * (log_mass - lse_two_pass(hcol.data(), m));
    cols_known = true;
  }
  // <P, C> with lam folded into f; the objective from the dual form of the entropic terms:
  // eps KL(P | ab) = <f, P1> + <g, P^T 1> + lam sum P - <P, C> - eps (sum P - sum a sum b).
  std::vector<double> shifted(f, f + n);
  for (double& v : shifted) v += lam;
  r.value = half.transport_cost(shifted.data(), g, eps, threads);
  double pf = 0.0, pg = 0.0, total = 0.0;
  for (index_t i = 0; i < n; ++i)
    if (a[i] > 0.0) {
      const double mass = a[i] * std::exp(row[i] + lam * inv);
      pf += f[i] * mass;
      total += mass;
    }
  for (index_t j = 0; j < m; ++j)
    if (b[j] > 0.0) pg += g[j] * b[j] * std::exp(col[j] + lam * inv);
  r.objective = pf + pg + lam * total - eps * (total - w.sum_a * w.sum_b);
  r.lam = lam;
  return r;
}

template <class T>
Result solve_entropic_dense(MatrixView<T> c, const double* a, const double* b, double* f, double* g,
                            double& lam, const Options& o) {
  return solve_entropic(sinkhorn::DenseCost<T>(c), a, b, f, g, lam, o);
}

template <class T>
Result solve_entropic_online(MatrixView<T> x, MatrixView<T> y, Metric metric, double p,
                             const double* a, const double* b, double* f, double* g, double& lam,
                             const Options& o) {
  return dispatch_metric(metric, [&](auto tag) {
    const sinkhorn::OnlineCost<T, decltype(tag)::value> cost(x, y, p);
    return solve_entropic(cost, a, b, f, g, lam, o);
  });
}

}  // namespace pyot::partial
