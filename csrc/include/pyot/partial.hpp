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
// exact problem is the network simplex on Chapel's augmented problem (solve_exact).
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "pyot/common/logsumexp.hpp"
#include "pyot/common/status.hpp"
#include "pyot/exact.hpp"
#include "pyot/sinkhorn.hpp"

namespace pyot::partial {

struct Options {
  double eps = 1.0;
  double mass = 1.0;
  double eps_start = 0.0;    // first eps of the annealing schedule (the cost's range)
  double eps_scaling = 0.0;  // annealing factor in (0, 1); 0 = a single stage at eps
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

// Block ascent on the dual of the entropic partial problem, from the potentials (f, g, lam).
template <class Kernel>
class EntropicPartial {
 public:
  EntropicPartial(const Kernel& kernel, const double* a, const double* b, double* f, double* g,
                  double& lam, double mass, int threads)
      : n_(kernel.rows()),
        m_(kernel.cols()),
        w_(a, b, n_, m_),
        half_(kernel, w_),
        f_(f),
        g_(g),
        lam_(lam),
        log_mass_(std::log(mass)),
        mass_(mass),
        threads_(threads_for_work(threads, n_ * m_)),
        row_(n_),
        col_(m_),
        hcol_(m_) {}

  // Iterates at `eps` until the KKT residual is at most tol or max_iter iterations are done.
  Result run(double eps, double tol, index_t max_iter) {
    const double inv = 1.0 / eps;
    Result r;
    bool cols_known = false;
    for (index_t iter = 0;; ++iter) {
      // Row log-ratios at the current (f, g); with the column ones of the last pass they give
      // the exact KKT residual of the current iterate, without another pass.
      half_.row_log_ratio(f_, g_, eps, row_.data(), threads_);
      if (cols_known) {
        double rows_total = 0.0, cols_total = 0.0;
        const double err =
            detail::side_residual(w_.a, row_.data(), f_, lam_ * inv, n_, rows_total) +
            detail::side_residual(w_.b, col_.data(), g_, lam_ * inv, m_, cols_total);
        r.marginal_error = err + std::fabs(rows_total - mass_);
        r.n_iter = iter;
        if (!std::isfinite(r.marginal_error)) {
          r.status = Status::NotFinite;
          return r;
        }
        if (r.marginal_error <= tol) {
          r.status = Status::Converged;
          break;
        }
      }
      if (iter == max_iter) break;
      for (index_t i = 0; i < n_; ++i) f_[i] = std::min(0.0, f_[i] - eps * row_[i] - lam_);
      half_.col_log_ratio(f_, g_, eps, col_.data(), threads_);
      for (index_t j = 0; j < m_; ++j) {
        const double updated = std::min(0.0, g_[j] - eps * col_[j] - lam_);
        col_[j] += (updated - g_[j]) * inv;  // the column's log-ratio at the new g
        g_[j] = updated;
        hcol_[j] = w_.logb[j] + col_[j];
      }
      // Total mass at (f, g, lam) is exp(lam / eps + LSE_j(log b_j + col_j)): rescale it to s.
      lam_ = eps * (log_mass_ - lse_two_pass(hcol_.data(), m_));
      cols_known = true;
    }
    return r;
  }

  // <P, C> (lam folded into f) and the objective, from the dual form of the entropic terms:
  // eps KL(P | ab) = <f, P1> + <g, P^T 1> + lam sum P - <P, C> - eps (sum P - sum a sum b).
  void finish(double eps, Result& r) {
    const double inv = 1.0 / eps;
    std::vector<double> shifted(f_, f_ + n_);
    for (double& v : shifted) v += lam_;
    r.value = half_.transport_cost(shifted.data(), g_, eps, threads_);
    double pf = 0.0, pg = 0.0, total = 0.0;
    for (index_t i = 0; i < n_; ++i)
      if (w_.a[i] > 0.0) {
        const double mass = w_.a[i] * std::exp(row_[i] + lam_ * inv);
        pf += f_[i] * mass;
        total += mass;
      }
    for (index_t j = 0; j < m_; ++j)
      if (w_.b[j] > 0.0) pg += g_[j] * w_.b[j] * std::exp(col_[j] + lam_ * inv);
    r.objective = pf + pg + lam_ * total - eps * (total - w_.sum_a * w_.sum_b);
    r.lam = lam_;
  }

 private:
  index_t n_, m_;
  sinkhorn::detail::Weights w_;
  sinkhorn::LogDomain<Kernel> half_;
  double *f_, *g_;
  double& lam_;
  double log_mass_, mass_;
  int threads_;
  std::vector<double> row_, col_, hcol_;
};

// Solves the entropic partial problem from the potentials (f, g, lam) given (warm start),
// annealing eps from o.eps_start by the factor o.eps_scaling when asked (the Sinkhorn family's
// stage rule: loose, short intermediate stages that only warm-start the next one).
template <class Kernel>
Result solve_entropic(const Kernel& kernel, const double* a, const double* b, double* f, double* g,
                      double& lam, const Options& o) {
  EntropicPartial<Kernel> solver(kernel, a, b, f, g, lam, o.mass, o.threads);
  index_t used = 0;
  if (o.eps_scaling > 0.0 && o.eps_scaling < 1.0) {
    for (double e = o.eps_start; e > o.eps; e *= o.eps_scaling) {
      const Result stage =
          solver.run(e, sinkhorn::kStageTol, std::min(sinkhorn::kStageMaxIter, o.max_iter - used));
      if (stage.status == Status::NotFinite) return stage;
      used += stage.n_iter;
    }
  }
  Result r = solver.run(o.eps, o.tol, o.max_iter - used);
  r.n_iter += used;
  if (r.status != Status::NotFinite) solver.finish(o.eps, r);
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

// Exact partial OT [Chapel 2020]: the network simplex on the balanced problem augmented by a
// dummy row of weight sum b - mass and a dummy column of weight sum a - mass, both at zero
// cost, the dummy-to-dummy cell costing more than any saving it could make. The result holds
// the plan's support within [0, n) x [0, m), <P, C> on it, and the capacity prices of
// ALGORITHMS 6: f_i = F_i + G_m, g_j = G_j + F_n (<= 0; lam = -(F_n + G_m) prices the mass).
template <class T>
exact::Result solve_exact(MatrixView<T> c, const double* a, const double* b, double mass,
                          const exact::Options& opt) {
  const index_t n = c.rows, m = c.cols;
  double big = 0.0, sum_a = 0.0, sum_b = 0.0;
  std::vector<T> aug(std::size_t((n + 1) * (m + 1)), T(0));
  for (index_t i = 0; i < n; ++i) {
    const T* row = c.row(i);
    for (index_t j = 0; j < m; ++j) big = std::max(big, std::abs(double(row[j])));
    std::copy_n(row, m, aug.data() + i * (m + 1));
  }
  aug.back() = T(big + 1.0);
  for (index_t i = 0; i < n; ++i) sum_a += a[i];
  for (index_t j = 0; j < m; ++j) sum_b += b[j];
  std::vector<double> wa(a, a + n), wb(b, b + m);
  wa.push_back(std::max(sum_b - mass, 0.0));
  wb.push_back(std::max(sum_a - mass, 0.0));
  const exact::Result full =
      exact::emd(MatrixView<T>(aug.data(), n + 1, m + 1), wa.data(), wb.data(), opt);
  exact::Result r;
  r.status = full.status;
  r.n_iter = full.n_iter;
  for (std::size_t s = 0; s < full.mass.size(); ++s) {
    const index_t i = full.rows[s], j = full.cols[s];
    if (i == n || j == m) continue;
    r.rows.push_back(i);
    r.cols.push_back(j);
    r.mass.push_back(full.mass[s]);
    r.value += full.mass[s] * double(c(i, j));
  }
  // Clipped at 0: round-off can leave +1e-300 where the exact price is 0.
  r.f.resize(std::size_t(n));
  r.g.resize(std::size_t(m));
  for (index_t i = 0; i < n; ++i) r.f[i] = std::min(full.f[i] + full.g[m], 0.0);
  for (index_t j = 0; j < m; ++j) r.g[j] = std::min(full.g[j] + full.f[n], 0.0);
  return r;
}

}  // namespace pyot::partial
