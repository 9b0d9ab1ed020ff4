// Sparsity-constrained and quadratically regularised OT (ALGORITHMS 4) [Liu 2023, Blondel 2018]:
//
//   min_{P in U(a, b)} <P, C> + sum_j (gamma / 2) ||P_:j||^2,   ||P_:j||_0 <= k,
//
// solved through a smooth concave (semi-)dual maximised by L-BFGS. Every evaluation is one
// pass over the cost, column by column: for column j the plan column is
//
//   t_i = (v_i - tau_j)_+ / gamma on the k largest v_i (ties by index), 0 elsewhere,
//
// with v_i = alpha_i - C_ij (semi-dual: tau_j makes sum_i t_i = b_j, i.e. the top-k simplex
// projection [Kyrillidis 2013]) or v_i = alpha_i + beta_j - C_ij (dual: tau_j = 0). Both give
// the same column term h_j = <t, v> - (gamma / 2) ||t||^2, and
//
//   semi-dual F(alpha)       = <alpha, a> - sum_j h_j,              grad = a - T 1,
//   dual      F(alpha, beta) = <alpha, a> + <beta, b> - sum_j h_j,  grad = (a - T 1, b - T^T 1).
//
// Only entries above max_i v_i - gamma b_j can be in a semi-dual column's support (the
// threshold tau_j is never below it), so the top-k selection (nth_element) and the projection
// (a sort) run on these few candidates, not on the n entries of the column.
//
// Columns are read contiguously from a column-major copy of C made once per solve (one extra
// matrix of the input dtype; every evaluation then streams it once). Columns are processed in
// fixed blocks across threads and reduced in column order afterwards: results do not depend
// on the thread count.
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>
#include <utility>
#include <vector>

#include "pyot/common/config.hpp"
#include "pyot/common/status.hpp"
#include "pyot/common/threads.hpp"
#include "pyot/common/view.hpp"
#include "pyot/exact.hpp"

namespace pyot::sparse {

constexpr index_t kColBlock = 32;  // columns per task
constexpr index_t kTile = 64;      // transpose tile edge

enum class Formulation : int { SemiDual = 0, Dual = 1 };

struct Options {
  index_t k = 1;  // nonzeros per column at most; k >= n is quadratic OT (no selection)
  double reg = 1.0;
  double tol = 1e-6;
  index_t max_iter = 1000;
  Formulation formulation = Formulation::SemiDual;
  int memory = 10;  // L-BFGS pairs kept
  int threads = 0;
  bool polish = true;      // semi-dual, k < n: try the support polish where k binds (see solve)
  bool assignment = true;  // k = 1 with equal column weights: solve exactly (see solve_k1)
  bool transpose = true;   // semi-dual, m < n: quadratic OT over the m columns first (see solve)
};

constexpr index_t kFirstCheck = 25;  // semi-dual iterations before the first progress check

// The plan in compressed sparse columns, rows sorted within each column.
struct CscPlan {
  std::vector<index_t> col_ptr, rows;
  std::vector<double> values;
};

struct Result {
  Status status = Status::MaxIter;
  bool stalled = false;   // the line search found no ascent before max_iter
  bool polished = false;  // the plan is the support polish's
  index_t n_iter = 0;
  index_t n_eval = 0;
  double marginal_error = 0.0;
  double value = 0.0;      // <T, C>
  double objective = 0.0;  // <T, C> + (gamma / 2) ||T||^2
};

// ---------------------------------------------------------------------------------------------
// Column-major copy of a row-major matrix, tiled so that reads and writes both stay in cache.
template <class T>
std::vector<T> column_major(const MatrixView<T>& c, int threads) {
  const index_t n = c.rows, m = c.cols;
  std::vector<T> out(static_cast<size_t>(n * m));
  for_blocks(m, kTile, threads, [&](index_t j0, index_t j1) {
    for (index_t i0 = 0; i0 < n; i0 += kTile) {
      const index_t i1 = std::min(n, i0 + kTile);
      for (index_t i = i0; i < i1; ++i) {
        const T* row = c.row(i);
        for (index_t j = j0; j < j1; ++j) out[j * n + i] = row[j];
      }
    }
  });
  return out;
}

// v_i = x_i + s - c_i and its maximum (SIMD; the column is then in cache for what follows).
template <class T>
PYOT_MULTIVERSION double shifted_column(const T* c, const double* x, double s, index_t n,
                                        double* v) {
  double mx = -std::numeric_limits<double>::infinity();
#pragma omp simd reduction(max : mx)
  for (index_t i = 0; i < n; ++i) {
    v[i] = x[i] + s - double(c[i]);
    mx = v[i] > mx ? v[i] : mx;
  }
  return mx;
}

// One plan column: the support rows and values appended to `rows`/`vals`, the column term h_j
// returned and the threshold tau_j stored (the dual potential is g_j = -tau_j).
class ColumnSolver {
 public:
  explicit ColumnSolver(index_t n) : v_(static_cast<size_t>(n)) {}

  template <class T>
  double solve(const T* c, const double* x, double shift, double bj, const Options& o, index_t n,
               double& tau, std::vector<index_t>& rows, std::vector<double>& vals) {
    const double vmax = shifted_column(c, x, shift, n, v_.data());
    const bool semi = o.formulation == Formulation::SemiDual;
    binding_ = false;
    if (semi && !(bj > 0.0)) {  // an empty column; tau = max v keeps f + g - C <= 0
      tau = vmax;
      return 0.0;
    }
    // Entries below `floor` get t = 0 whatever the support: gather the others (>=, so that
    // the maximum is kept even when reg * b_j is below its round-off).
    const double floor = semi ? vmax - o.reg * bj : 0.0;
    cand_.clear();
    for (index_t i = 0; i < n; ++i)
      if (v_[i] >= floor) cand_.push_back(i);
    const double* v = v_.data();
    const auto larger = [v](index_t p, index_t q) {
      return v[p] > v[q] || (v[p] == v[q] && p < q);
    };
    double dropped = -std::numeric_limits<double>::infinity();  // largest v left out by k
    if (index_t(cand_.size()) > o.k) {
      std::nth_element(cand_.begin(), cand_.begin() + (o.k - 1), cand_.end(), larger);
      for (size_t r = size_t(o.k); r < cand_.size(); ++r) dropped = std::max(dropped, v_[cand_[r]]);
      cand_.resize(static_cast<size_t>(o.k));
    }
    tau = semi ? simplex_threshold(o.reg * bj, larger) : 0.0;
    binding_ = dropped > tau;
    double h = 0.0;
    const size_t first = rows.size();
    for (index_t i : cand_) {
      if (!(v[i] > tau)) continue;
      const double t = (v[i] - tau) / o.reg;
      rows.push_back(i);
      vals.push_back(t);
      h += t * v[i] - 0.5 * o.reg * t * t;
    }
    if (!semi) return h;
    if (rows.size() == first) {
      // |v| so large that v - reg b_j rounds to v (alpha diverging, e.g. k m < n): the
      // projection puts the whole column mass on its largest entry.
      const index_t top = cand_.front();
      rows.push_back(top);
      vals.push_back(bj);
      return bj * v[top] - 0.5 * o.reg * bj * bj;
    }
    // The projection's mass is b_j exactly up to the round-off of (v_i - tau) / reg, which
    // grows with |v| / (reg b_j): restore it, so every column is feasible to the last bits.
    double mass = 0.0;
    for (size_t r = first; r < vals.size(); ++r) mass += vals[r];
    if (mass > 0.0 && std::fabs(mass - bj) > 1e-12 * bj) {
      h = 0.0;
      for (size_t r = first; r < vals.size(); ++r) {
        vals[r] *= bj / mass;
        h += vals[r] * v[rows[r]] - 0.5 * o.reg * vals[r] * vals[r];
      }
    }
    return h;
  }

  // Whether the last column solved had a row left out by k that the unconstrained projection
  // would have kept (k binds there, and the semi-dual has a kink nearby).
  bool binding() const { return binding_; }

  // The k rows of largest v_i = x_i - c_i (ties by index), sorted, appended to `rows`.
  template <class T>
  void top_k(const T* c, const double* x, index_t k, index_t n, std::vector<index_t>& rows) {
    shifted_column(c, x, 0.0, n, v_.data());
    cand_.resize(static_cast<size_t>(n));
    for (index_t i = 0; i < n; ++i) cand_[size_t(i)] = i;
    const double* v = v_.data();
    const auto larger = [v](index_t p, index_t q) {
      return v[p] > v[q] || (v[p] == v[q] && p < q);
    };
    std::nth_element(cand_.begin(), cand_.begin() + (k - 1), cand_.end(), larger);
    std::sort(cand_.begin(), cand_.begin() + k);
    rows.insert(rows.end(), cand_.begin(), cand_.begin() + k);
  }

 private:
  // tau with sum_{i in cand} (v_i - tau)_+ = mass: sort by value, largest prefix that stays
  // above its own threshold (the simplex projection).
  template <class Less>
  double simplex_threshold(double mass, const Less& larger) {
    std::sort(cand_.begin(), cand_.end(), larger);
    double sum = 0.0, tau = 0.0;
    for (size_t r = 0; r < cand_.size(); ++r) {
      const double vr = v_[cand_[r]];
      const double t = (sum + vr - mass) / double(r + 1);
      if (r > 0 && !(vr > t)) break;
      sum += vr;
      tau = t;
    }
    return tau;
  }

  std::vector<double> v_;
  std::vector<index_t> cand_;
  bool binding_ = false;
};

// ---------------------------------------------------------------------------------------------
// The (semi-)dual objective over a column-major cost; keeps the plan of the last evaluation.
template <class T>
class Objective {
 public:
  // ct: column j at ct + j * n. x: alpha (semi-dual) or (alpha, beta) (dual).
  Objective(const T* ct, index_t n, index_t m, const double* a, const double* b, Options o)
      : ct_(ct), n_(n), m_(m), a_(a), b_(b), o_(o), h_(m), tau_(m), row_sum_(n), col_sum_(m) {
    o_.k = std::max<index_t>(1, std::min(o_.k, n_));
    o_.threads = threads_for_work(o_.threads, n_ * m_);
    blocks_.resize(static_cast<size_t>(n_blocks(m_, kColBlock)));
  }

  index_t size() const { return o_.formulation == Formulation::Dual ? n_ + m_ : n_; }
  const Options& options() const { return o_; }

  // F(x), with grad F(x) written to grad (length size()).
  double evaluate(const double* x, double* grad) {
    const double* beta = o_.formulation == Formulation::Dual ? x + n_ : nullptr;
    for_blocks(m_, kColBlock, o_.threads, [&](index_t j0, index_t j1) {
      Block& blk = blocks_[static_cast<size_t>(j0 / kColBlock)];
      blk.clear();
      ColumnSolver col(n_);
      for (index_t j = j0; j < j1; ++j) {
        h_[j] = col.solve(ct_ + j * n_, x, beta ? beta[j] : 0.0, b_[j], o_, n_, tau_[j], blk.rows,
                          blk.vals);
        blk.ptr.push_back(index_t(blk.rows.size()));
        blk.binding += col.binding() ? 1 : 0;
      }
    });
    // Fixed-order reductions: the thread count never changes a bit of the result.
    std::fill(row_sum_.begin(), row_sum_.end(), 0.0);
    binding_ = 0;
    index_t j = 0;
    for (const Block& blk : blocks_) {
      binding_ += blk.binding;
      for (size_t c = 0; c + 1 < blk.ptr.size(); ++c, ++j) {
        double s = 0.0;
        for (index_t e = blk.ptr[c]; e < blk.ptr[c + 1]; ++e) {
          row_sum_[blk.rows[e]] += blk.vals[e];
          s += blk.vals[e];
        }
        col_sum_[j] = s;
      }
    }
    double f = 0.0, err = 0.0;
    for (index_t i = 0; i < n_; ++i) {
      f += x[i] * a_[i];
      grad[i] = a_[i] - row_sum_[i];
      err += std::abs(grad[i]);
    }
    for (index_t c = 0; c < m_; ++c) {
      f -= h_[c];
      const double gc = b_[c] - col_sum_[c];
      err += std::abs(gc);
      if (beta) {
        f += beta[c] * b_[c];
        grad[n_ + c] = gc;
      }
    }
    error_ = err;
    return f;
  }

  double marginal_error() const { return error_; }

  // Columns of the last evaluation where k cut into the support (0: smooth there).
  index_t binding_columns() const { return binding_; }

  // The support polish's candidate: the k rows of largest alpha_i - C_ij in every column,
  // with their costs. Returns false when some row of positive weight is in no column's set
  // (no plan on this support meets the rows).
  bool top_k_support(const double* alpha, std::vector<index_t>& col_ptr,
                     std::vector<index_t>& rows, std::vector<double>& costs) const {
    const index_t k = o_.k;
    rows.resize(static_cast<size_t>(k * m_));
    for_blocks(m_, kColBlock, o_.threads, [&](index_t j0, index_t j1) {
      ColumnSolver col(n_);
      std::vector<index_t> r;
      for (index_t j = j0; j < j1; ++j) {
        r.clear();
        col.top_k(ct_ + j * n_, alpha, k, n_, r);
        std::copy(r.begin(), r.end(), rows.begin() + j * k);
      }
    });
    col_ptr.resize(static_cast<size_t>(m_ + 1));
    costs.resize(rows.size());
    std::vector<char> covered(static_cast<size_t>(n_), 0);
    for (index_t j = 0; j <= m_; ++j) col_ptr[size_t(j)] = j * k;
    for (index_t j = 0; j < m_; ++j)
      for (index_t e = j * k; e < (j + 1) * k; ++e) {
        costs[size_t(e)] = double(ct_[j * n_ + rows[size_t(e)]]);
        covered[size_t(rows[size_t(e)])] = 1;
      }
    for (index_t i = 0; i < n_; ++i)
      if (a_[i] > 0.0 && !covered[size_t(i)]) return false;
    return true;
  }

  // The plan of the last evaluation (rows sorted per column), <T, C> and ||T||^2, and
  // g_j = -tau_j (semi-dual) or beta (dual).
  void plan(CscPlan& out, double& value, double& sq_norm) const {
    out.col_ptr.assign(1, 0);
    out.rows.clear();
    out.values.clear();
    value = sq_norm = 0.0;
    std::vector<std::pair<index_t, double>> col;
    index_t j = 0;
    for (const Block& blk : blocks_) {
      for (size_t c = 0; c + 1 < blk.ptr.size(); ++c, ++j) {
        col.clear();
        for (index_t e = blk.ptr[c]; e < blk.ptr[c + 1]; ++e)
          col.emplace_back(blk.rows[e], blk.vals[e]);
        std::sort(col.begin(), col.end());
        for (const auto& [i, t] : col) {
          out.rows.push_back(i);
          out.values.push_back(t);
          value += t * double(ct_[j * n_ + i]);
          sq_norm += t * t;
        }
        out.col_ptr.push_back(index_t(out.rows.size()));
      }
    }
  }

  void column_potential(const double* x, double* g) const {
    for (index_t j = 0; j < m_; ++j)
      g[j] = o_.formulation == Formulation::Dual ? x[n_ + j] : -tau_[j];
  }

 private:
  struct Block {
    std::vector<index_t> ptr{0}, rows;  // ptr: support offsets of the block's columns
    std::vector<double> vals;
    index_t binding = 0;
    void clear() {
      ptr.assign(1, 0);
      rows.clear();
      vals.clear();
      binding = 0;
    }
  };

  const T* ct_;
  index_t n_, m_;
  const double *a_, *b_;
  Options o_;
  std::vector<double> h_, tau_, row_sum_, col_sum_;
  std::vector<Block> blocks_;
  double error_ = 0.0;
  index_t binding_ = 0;
};

// ---------------------------------------------------------------------------------------------
// The support polish: quadratic OT restricted to a fixed support S (at most k rows per column),
// through its smooth dual
//
//   F(alpha, beta) = <alpha, a> + <beta, b>
//                    - (1 / (2 gamma)) sum_{(i, j) in S} [alpha_i + beta_j - C_ij]_+^2,
//
// T_ij = [alpha_i + beta_j - C_ij]_+ / gamma on S. Where k binds, the semi-dual's maximiser is a
// kink and its plan meets the rows only roughly; fixing each column's top-k rows there and
// solving this smooth problem gives a plan with at most k nonzeros per column that meets both
// marginals (when S admits one). One evaluation is O(|S|) = O(km), not O(nm).
class PolishObjective {
 public:
  PolishObjective(index_t n, index_t m, const double* a, const double* b, double reg,
                  std::vector<index_t> col_ptr, std::vector<index_t> rows,
                  std::vector<double> costs)
      : n_(n), m_(m), a_(a), b_(b), reg_(reg), col_ptr_(std::move(col_ptr)),
        rows_(std::move(rows)), costs_(std::move(costs)), row_sum_(n) {}

  index_t size() const { return n_ + m_; }

  double evaluate(const double* x, double* grad) {
    const double* beta = x + n_;
    std::fill(row_sum_.begin(), row_sum_.end(), 0.0);
    double f = 0.0, err = 0.0, sq = 0.0;
    for (index_t j = 0; j < m_; ++j) {
      double col = 0.0;
      for (index_t e = col_ptr_[j]; e < col_ptr_[j + 1]; ++e) {
        const index_t i = rows_[e];
        const double z = x[i] + beta[j] - costs_[e];
        if (!(z > 0.0)) continue;
        sq += z * z;
        row_sum_[i] += z / reg_;
        col += z / reg_;
      }
      f += beta[j] * b_[j];
      grad[n_ + j] = b_[j] - col;
      err += std::abs(grad[n_ + j]);
    }
    for (index_t i = 0; i < n_; ++i) {
      f += x[i] * a_[i];
      grad[i] = a_[i] - row_sum_[i];
      err += std::abs(grad[i]);
    }
    error_ = err;
    return f - sq / (2.0 * reg_);
  }

  double marginal_error() const { return error_; }

  // The plan at x (rows sorted per column), <T, C> and ||T||^2.
  void plan(const double* x, CscPlan& out, double& value, double& sq_norm) const {
    out.col_ptr.assign(1, 0);
    out.rows.clear();
    out.values.clear();
    value = sq_norm = 0.0;
    for (index_t j = 0; j < m_; ++j) {
      for (index_t e = col_ptr_[j]; e < col_ptr_[j + 1]; ++e) {
        const double t = (x[rows_[e]] + x[n_ + j] - costs_[e]) / reg_;
        if (!(t > 0.0)) continue;
        out.rows.push_back(rows_[e]);
        out.values.push_back(t);
        value += t * costs_[e];
        sq_norm += t * t;
      }
      out.col_ptr.push_back(index_t(out.rows.size()));
    }
  }

 private:
  index_t n_, m_;
  const double *a_, *b_;
  double reg_;
  std::vector<index_t> col_ptr_, rows_;
  std::vector<double> costs_, row_sum_;
  double error_ = 0.0;
};

// ---------------------------------------------------------------------------------------------
// L-BFGS ascent with a strong-Wolfe line search [Nocedal, Wright 2006, Alg. 3.5, 3.6, 7.4].
// The semi-dual is only piecewise smooth for k < n, so the line search also accepts the
// approximate-Wolfe points of [Hager, Zhang 2005] (no decrease test below round-off) and a
// failed search restarts from the gradient before the solve is declared stalled.
namespace detail {

inline double dot(const std::vector<double>& x, const std::vector<double>& y) {
  double s = 0.0;
  for (size_t i = 0; i < x.size(); ++i) s += x[i] * y[i];
  return s;
}

// Minimiser of the cubic through (a, fa, da), (b, fb, db), kept inside [lo, hi].
inline double cubic_step(double a, double fa, double da, double b, double fb, double db, double lo,
                         double hi) {
  const double d1 = da + db - 3.0 * (fa - fb) / (a - b);
  const double disc = d1 * d1 - da * db;
  double t = 0.5 * (a + b);
  if (disc >= 0.0) {
    const double d2 = std::copysign(std::sqrt(disc), b - a);
    const double den = db - da + 2.0 * d2;
    if (den != 0.0) t = b - (b - a) * (db + d2 - d1) / den;
  }
  if (!std::isfinite(t)) t = 0.5 * (a + b);
  return std::clamp(t, lo, hi);
}

}  // namespace detail

// Minimises phi(x) = -F(x); `stop()` is asked after every accepted step.
template <class Fn, class Stop>
class Lbfgs {
 public:
  Lbfgs(Fn& fn, index_t size, int memory, Stop& stop)
      : fn_(fn), stop_(stop), mem_(memory), x_(size), g_(size), d_(size), xt_(size), gt_(size) {}

  std::vector<double>& x() { return x_; }

  // Runs up to max_iter iterations from x(); returns (n_iter, reached stop, stalled).
  std::tuple<index_t, bool, bool> run(index_t max_iter, double step_scale) {
    double f = eval(x_, g_);
    if (stop_()) return {0, true, false};
    bool restarted = false;
    for (index_t it = 1; it <= max_iter; ++it) {
      direction();
      double dg = detail::dot(d_, g_);
      if (!(dg < 0.0)) {  // not a descent direction: restart from the gradient
        reset();
        direction();
        dg = detail::dot(d_, g_);
      }
      const double dmax = max_abs(d_);
      if (!(dmax > 0.0)) return stalled(it - 1);
      const double a0 = s_.empty() ? step_scale / dmax : 1.0;
      if (!line_search(f, dg, a0)) {
        if (restarted || s_.empty()) return stalled(it - 1);
        reset();
        restarted = true;
        continue;
      }
      restarted = false;
      update_memory();
      if (stop_()) return {it, true, false};
      if (!std::isfinite(f)) return {it, false, false};
    }
    return {max_iter, false, false};
  }

 private:
  // A failed line search left the objective at a trial point: evaluate x_ again, so that the
  // plan and error reported belong to the returned potentials.
  std::tuple<index_t, bool, bool> stalled(index_t iters) {
    eval(x_, g_);
    return {iters, stop_(), true};
  }

  double eval(const std::vector<double>& x, std::vector<double>& g) {
    const double f = -fn_(x.data(), g.data());
    for (double& gi : g) gi = -gi;
    return f;
  }

  static double max_abs(const std::vector<double>& v) {
    double mx = 0.0;
    for (double e : v) mx = std::max(mx, std::abs(e));
    return mx;
  }

  void reset() {
    s_.clear();
    y_.clear();
    rho_.clear();
  }

  // d = -H g by the two-loop recursion, H0 = (s'y / y'y) I.
  void direction() {
    const size_t k = s_.size();
    for (size_t i = 0; i < d_.size(); ++i) d_[i] = -g_[i];
    std::vector<double> alpha(k);
    for (size_t r = k; r-- > 0;) {
      alpha[r] = rho_[r] * detail::dot(s_[r], d_);
      for (size_t i = 0; i < d_.size(); ++i) d_[i] -= alpha[r] * y_[r][i];
    }
    if (k > 0) {
      const double gamma = detail::dot(s_[k - 1], y_[k - 1]) / detail::dot(y_[k - 1], y_[k - 1]);
      for (double& di : d_) di *= gamma;
    }
    for (size_t r = 0; r < k; ++r) {
      const double beta = rho_[r] * detail::dot(y_[r], d_);
      for (size_t i = 0; i < d_.size(); ++i) d_[i] += (alpha[r] - beta) * s_[r][i];
    }
  }

  // Strong-Wolfe search along d_ from x_ (value f, slope dg < 0). On success x_, g_, f hold
  // the accepted point (also the last one evaluated: the objective's plan belongs to it), and
  // s_new_/y_new_ the step.
  bool line_search(double& f, double dg, double a0) {
    constexpr double c1 = 1e-4, c2 = 0.9, grow = 4.0;
    constexpr int max_evals = 30;
    const double f0 = f, tiny = 1e-12 * std::abs(f0);
    Point lo{0.0, f0, dg}, prev = lo;
    double a = a0;
    bool bracketed = false;
    Point hi{};
    for (int e = 0; e < max_evals; ++e) {
      if (bracketed) {
        const double w = hi.a - lo.a;
        const double l = std::min(lo.a, hi.a) + 0.1 * std::abs(w);
        const double u = std::max(lo.a, hi.a) - 0.1 * std::abs(w);
        a = detail::cubic_step(lo.a, lo.f, lo.d, hi.a, hi.f, hi.d, l, u);
      }
      const Point p = trial(a);
      const bool armijo = p.f <= f0 + c1 * p.a * dg;
      const bool curv = std::abs(p.d) <= -c2 * dg;
      const bool approx = p.f <= f0 + tiny && p.d >= c2 * dg && p.d <= (1.0 - 2.0 * c1) * -dg;
      if ((armijo && curv) || approx) return accept(p, f);
      if (!bracketed) {
        if (!armijo || (e > 0 && p.f >= prev.f)) {
          lo = prev;
          hi = p;
          bracketed = true;
        } else if (p.d >= 0.0) {
          lo = p;
          hi = prev;
          bracketed = true;
        } else {
          prev = p;
          a *= grow;
        }
        continue;
      }
      if (!armijo || p.f >= lo.f) {
        hi = p;
      } else {
        if (p.d * (hi.a - lo.a) >= 0.0) hi = lo;
        lo = p;
      }
      if (std::abs(hi.a - lo.a) <= 1e-12 * std::max(lo.a, hi.a)) break;
    }
    if (lo.a > 0.0 && lo.f < f0) return accept(trial(lo.a), f);  // sufficient decrease only
    return false;
  }

  struct Point {
    double a = 0.0, f = 0.0, d = 0.0;
  };

  Point trial(double a) {
    for (size_t i = 0; i < x_.size(); ++i) xt_[i] = x_[i] + a * d_[i];
    const double f = eval(xt_, gt_);
    return {a, f, detail::dot(gt_, d_)};
  }

  bool accept(const Point& p, double& f) {
    s_new_.resize(x_.size());
    y_new_.resize(x_.size());
    for (size_t i = 0; i < x_.size(); ++i) {
      s_new_[i] = xt_[i] - x_[i];
      y_new_[i] = gt_[i] - g_[i];
    }
    x_.swap(xt_);
    g_.swap(gt_);
    f = p.f;
    return true;
  }

  void update_memory() {
    const double sy = detail::dot(s_new_, y_new_);
    if (!(sy > 1e-300)) return;  // no curvature information (flat or nonsmooth step)
    if (int(s_.size()) == mem_) {
      s_.erase(s_.begin());
      y_.erase(y_.begin());
      rho_.erase(rho_.begin());
    }
    s_.push_back(s_new_);
    y_.push_back(y_new_);
    rho_.push_back(1.0 / sy);
  }

  Fn& fn_;
  Stop& stop_;
  int mem_;
  std::vector<double> x_, g_, d_, xt_, gt_, s_new_, y_new_;
  std::vector<std::vector<double>> s_, y_;
  std::vector<double> rho_;
};

// ---------------------------------------------------------------------------------------------
// Quadratic OT restricted to the top-k support of alpha (see PolishObjective), by L-BFGS from
// (alpha, beta). On success (marginal error <= tol) fills xy = (alpha, beta), the plan and its
// <T, C>, ||T||^2, and returns the iterations taken; -1 when it did not reach tol.
template <class T>
index_t polish(const Objective<T>& obj, index_t n, index_t m, const double* a, const double* b,
               const std::vector<double>& alpha, const double* beta, double start_error,
               const Options& opt, std::vector<double>& xy, CscPlan& plan, double& value,
               double& sq_norm) {
  std::vector<index_t> col_ptr, rows;
  std::vector<double> costs;
  if (!obj.top_k_support(alpha.data(), col_ptr, rows, costs)) return -1;
  PolishObjective pobj(n, m, a, b, opt.reg, std::move(col_ptr), std::move(rows),
                       std::move(costs));
  auto fn = [&](const double* xv, double* grad) { return pobj.evaluate(xv, grad); };
  bool not_finite = false;
  auto stop = [&]() {
    not_finite = !std::isfinite(pobj.marginal_error());
    return not_finite || pobj.marginal_error() <= opt.tol;
  };
  Lbfgs<decltype(fn), decltype(stop)> solver(fn, pobj.size(), opt.memory, stop);
  std::copy(alpha.begin(), alpha.end(), solver.x().begin());
  std::copy(beta, beta + m, solver.x().begin() + n);
  // (alpha, beta) reproduces the semi-dual's plan on S; a Newton step on a row moves alpha_i
  // by about reg times its residual.
  const auto [iters, reached, stalled] = solver.run(opt.max_iter, opt.reg * start_error);
  (void)stalled;
  if (!reached || not_finite) return -1;
  xy = solver.x();
  pobj.plan(xy.data(), plan, value, sq_norm);
  return iters;
}

// ---------------------------------------------------------------------------------------------
// k = 1 exactly. With one nonzero per column, column j sends all of b_j to one row. When every
// b_j equals one beta and every a_i is an integer multiple c_i beta (sum c_i = m; square uniform
// weights: c_i = 1), the feasible plans are exactly the assignments of the m columns to the
// expanded rows (row i repeated c_i times), and ||T||^2 = sum_j b_j^2 is the same for all of
// them: the problem is the assignment problem on the expanded m x m cost (exact.hpp's
// Assignment), plus the constant (gamma / 2) sum_j b_j^2. Its dual (u_r + v_j <= C_rj, equality
// on the assignment; copies of a row share one u, their cost rows being equal) maximises the
// semi-dual: with alpha = u, max_i (alpha_i - C_ij) = -v_j, so F(u) = <u, a> + <v, b> +
// (gamma / 2) sum_j b_j^2 = the plan's objective. g_j = v_j + gamma b_j keeps
// T_ij = (f_i + g_j - C_ij) / gamma on the support. Returns false (nothing touched) when the
// weights are not of this form; the semi-dual then runs (its top-1 support is ambiguous at the
// optimum, and the rows are met only approximately).
template <class T>
bool solve_k1(const MatrixView<T>& cost, const double* a, const double* b, double reg,
              std::vector<double>& x, double* g, CscPlan& plan, Result& res) {
  const index_t n = cost.rows, m = cost.cols;
  const double beta = b[0];
  if (!(beta > 0.0)) return false;
  for (index_t j = 0; j < m; ++j)
    if (b[j] != beta) return false;
  std::vector<index_t> owner;  // expanded row r -> row of the cost
  owner.reserve(static_cast<size_t>(m));
  for (index_t i = 0; i < n; ++i) {
    const double c = std::round(a[i] / beta);
    if (!(std::abs(a[i] - c * beta) <= 1e-9 * beta) || c > double(m - index_t(owner.size())))
      return false;
    owner.insert(owner.end(), static_cast<size_t>(c), i);
  }
  if (index_t(owner.size()) != m) return false;
  bool identity = n == m;  // every row once: the cost itself
  for (index_t r = 0; identity && r < m; ++r) identity = owner[size_t(r)] == r;
  std::vector<T> expanded;  // only when some row is repeated or dropped
  MatrixView<T> view = cost;
  if (!identity) {
    expanded.resize(static_cast<size_t>(m * m));
    for (index_t r = 0; r < m; ++r) std::copy_n(cost.row(owner[r]), m, expanded.data() + r * m);
    view = MatrixView<T>(expanded.data(), m, m);
  }
  exact::detail::Assignment<T> lap(view);
  lap.solve();
  std::vector<index_t> row_of(static_cast<size_t>(m));
  std::vector<double> u(static_cast<size_t>(n), std::numeric_limits<double>::infinity());
  for (index_t r = 0; r < m; ++r) {
    const index_t j = lap.column(r), i = owner[r];
    row_of[size_t(j)] = i;
    u[size_t(i)] = std::min(u[size_t(i)], double(cost(i, j)) - lap.price(j));
  }
  // Rows of zero weight take no column: the largest alpha_i keeping alpha_i - C_ij <= -v_j.
  for (index_t i = 0; i < n; ++i) {
    if (std::isfinite(u[size_t(i)])) continue;
    double lo = std::numeric_limits<double>::infinity();
    for (index_t j = 0; j < m; ++j) lo = std::min(lo, double(cost(i, j)) - lap.price(j));
    u[size_t(i)] = lo;
  }
  plan.col_ptr.resize(static_cast<size_t>(m + 1));
  plan.rows = row_of;
  plan.values.assign(b, b + m);
  std::vector<double> row_sum(static_cast<size_t>(n), 0.0);
  double value = 0.0, sq = 0.0;
  for (index_t j = 0; j < m; ++j) {
    plan.col_ptr[size_t(j)] = j;
    value += b[j] * double(cost(row_of[size_t(j)], j));
    sq += b[j] * b[j];
    row_sum[size_t(row_of[size_t(j)])] += b[j];
    g[j] = lap.price(j) + reg * b[j];
  }
  plan.col_ptr[size_t(m)] = m;
  double err = 0.0;
  for (index_t i = 0; i < n; ++i) err += std::abs(row_sum[size_t(i)] - a[i]);
  std::copy(u.begin(), u.end(), x.begin());
  if (index_t(x.size()) == n + m) std::copy(g, g + m, x.begin() + n);  // the dual's beta
  res.status = Status::Converged;
  res.n_iter = 0;
  res.marginal_error = err;
  res.value = value;
  res.objective = value + 0.5 * reg * sq;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Quadratic OT through the semi-dual over the column potentials: the same Objective on the
// transposed problem (the rows of the row-major cost are its columns, no copy; each row of the
// plan is the simplex projection of (beta - C_i:) / gamma onto mass a_i). With m << n (tokens x
// experts) this is far better conditioned than the semi-dual over the n row potentials, where
// at small gamma most rows sit on the boundary of every column's support (a 4096 x 64 routing
// problem at gamma = 0.1: 43 iterations to round-off, against err 0.1 after 1000). Fills the
// plan (CSC of the cost), f (the rows' potentials, f_i = -tau_i), g = beta, value and ||T||^2
// and returns whether tol was reached; f is filled in any case (a warm start).
template <class T>
bool solve_by_columns(const MatrixView<T>& cost, const double* a, const double* b,
                      const Options& opt, double* f, double* g, CscPlan& plan, Result& res,
                      double& sq) {
  const index_t n = cost.rows, m = cost.cols;
  std::vector<T> copy;  // only for a strided view
  const T* rows = cost.data;
  if (cost.ld != m) {
    copy.resize(static_cast<size_t>(n * m));
    for (index_t i = 0; i < n; ++i) std::copy_n(cost.row(i), m, copy.data() + i * m);
    rows = copy.data();
  }
  Options o = opt;
  o.k = m;
  o.formulation = Formulation::SemiDual;
  Objective<T> obj(rows, m, n, b, a, o);  // columns: the n rows; weights swapped
  auto fn = [&](const double* xv, double* grad) {
    ++res.n_eval;
    return obj.evaluate(xv, grad);
  };
  bool not_finite = false;
  auto stop = [&]() {
    not_finite = !std::isfinite(obj.marginal_error());
    return not_finite || obj.marginal_error() <= opt.tol;
  };
  Lbfgs<decltype(fn), decltype(stop)> solver(fn, m, opt.memory, stop);
  const auto [lo, hi] = std::minmax_element(rows, rows + n * m);
  const double scale = std::max(double(*hi) - double(*lo), opt.reg * 1e-3);
  const auto [iters, reached, stalled] = solver.run(opt.max_iter, scale);
  res.n_iter = iters;
  res.stalled = stalled;
  res.marginal_error = obj.marginal_error();
  obj.column_potential(solver.x().data(), f);
  if (!reached || not_finite) return false;
  std::copy(solver.x().begin(), solver.x().end(), g);
  CscPlan by_row;  // CSC of the transposed plan: CSR of the plan
  obj.plan(by_row, res.value, sq);
  plan.col_ptr.assign(static_cast<size_t>(m + 1), 0);
  for (const index_t j : by_row.rows) ++plan.col_ptr[size_t(j) + 1];
  for (index_t j = 0; j < m; ++j) plan.col_ptr[size_t(j) + 1] += plan.col_ptr[size_t(j)];
  plan.rows.resize(by_row.rows.size());
  plan.values.resize(by_row.rows.size());
  std::vector<index_t> next(plan.col_ptr.begin(), plan.col_ptr.end() - 1);
  for (index_t i = 0; i < n; ++i)  // rows in order: sorted within each column
    for (index_t e = by_row.col_ptr[size_t(i)]; e < by_row.col_ptr[size_t(i) + 1]; ++e) {
      const index_t at = next[size_t(by_row.rows[size_t(e)])]++;
      plan.rows[size_t(at)] = i;
      plan.values[size_t(at)] = by_row.values[size_t(e)];
    }
  return true;
}

// The solve: x (alpha, or (alpha, beta) for the dual; length n or n + m) is the start on entry
// and the maximiser on exit; g receives the column potentials.
//
// Semi-dual with k < n: where k binds, the maximiser is a kink and L-BFGS meets the rows ever
// more slowly. The error is checked after 25, 50, 100, ... iterations; where it fell less than
// 2x since the last check and k binds in some column, the support polish is tried (and once
// more at the end, if tol was not reached). Its plan is returned if it meets tol, else the
// semi-dual goes on.
template <class T>
Result solve(const MatrixView<T>& cost, const double* a, const double* b, std::vector<double>& x,
             double* g, CscPlan& plan, const Options& opt) {
  require(opt.reg > 0.0 && std::isfinite(opt.reg), "reg must be a positive finite number");
  require(opt.k >= 1, "k must be >= 1");
  const index_t n = cost.rows, m = cost.cols;
  Result res;
  if (opt.assignment && opt.k == 1 && n > 0 && m > 0) {
    require(index_t(x.size()) == (opt.formulation == Formulation::Dual ? n + m : n),
            "x has the wrong length");
    if (solve_k1(cost, a, b, opt.reg, x, g, plan, res)) return res;
  }
  // More rows than columns (semi-dual): quadratic OT over the m column potentials first. Its
  // plan is the sparse problem's optimum when no column has more than k nonzeros (the optimum
  // over a larger set, and feasible); otherwise its row potentials start the semi-dual below.
  index_t first_iters = 0;
  if (opt.transpose && opt.formulation == Formulation::SemiDual && m < n && m > 0) {
    require(index_t(x.size()) == n, "x has the wrong length");
    double sq = 0.0;
    if (solve_by_columns(cost, a, b, opt, x.data(), g, plan, res, sq)) {
      index_t widest = 0;
      for (index_t j = 0; j < m; ++j)
        widest = std::max(widest, plan.col_ptr[size_t(j) + 1] - plan.col_ptr[size_t(j)]);
      if (widest <= opt.k) {
        res.status = Status::Converged;
        res.objective = res.value + 0.5 * opt.reg * sq;
        return res;
      }
    }
    first_iters = res.n_iter;
    res = Result();
  }
  const std::vector<T> ct = column_major(cost, resolve_threads(opt.threads));
  Objective<T> obj(ct.data(), n, m, a, b, opt);
  require(index_t(x.size()) == obj.size(), "x has the wrong length");
  auto fn = [&](const double* xv, double* grad) {
    ++res.n_eval;
    return obj.evaluate(xv, grad);
  };
  const bool may_polish =
      opt.polish && opt.formulation == Formulation::SemiDual && obj.options().k < n;
  std::vector<double> xy, beta(static_cast<size_t>(m));
  double sq = 0.0;
  index_t polish_iters = -1, steps = 0, next_check = kFirstCheck;
  const std::vector<double>* current = nullptr;  // the semi-dual iterate (set below)
  auto try_polish = [&]() {
    obj.column_potential(current->data(), beta.data());
    polish_iters = polish(obj, n, m, a, b, *current, beta.data(), obj.marginal_error(), opt, xy,
                          plan, res.value, sq);
    return polish_iters >= 0;
  };
  bool not_finite = false;
  double best = std::numeric_limits<double>::infinity(), best_before = best;
  auto stop = [&]() {
    not_finite = !std::isfinite(obj.marginal_error());
    if (not_finite || obj.marginal_error() <= opt.tol) return true;
    best = std::min(best, obj.marginal_error());
    if (!may_polish || ++steps < next_check) return false;
    // A checkpoint: polish where k binds and the error fell less than 2x since the last one.
    const bool slow = steps > kFirstCheck && best > 0.5 * best_before;
    next_check *= 2;
    best_before = best;
    return slow && obj.binding_columns() > 0 && try_polish();
  };
  Lbfgs<decltype(fn), decltype(stop)> solver(fn, obj.size(), opt.memory, stop);
  current = &solver.x();
  std::copy(x.begin(), x.end(), solver.x().begin());
  // First step: move the potentials by about the cost's range (at least reg).
  const auto [lo, hi] = std::minmax_element(ct.begin(), ct.end());
  const double scale = std::max(double(*hi) - double(*lo), opt.reg * 1e-3);
  auto [iters, reached, stalled] = solver.run(opt.max_iter, scale);
  if (!reached && may_polish && !not_finite && obj.binding_columns() > 0 && try_polish())
    reached = true;
  res.n_iter = first_iters + iters;
  res.stalled = stalled;
  if (polish_iters >= 0) {  // the polished plan (already in `plan`, value and sq)
    res.polished = true;
    res.stalled = false;
    res.n_iter += polish_iters;
    res.status = Status::Converged;
    std::copy(xy.begin(), xy.begin() + n, x.begin());
    std::copy(xy.begin() + n, xy.end(), g);
    // The marginal error of the plan returned, recomputed from it.
    std::vector<double> rows(static_cast<size_t>(n), 0.0);
    double err = 0.0;
    for (index_t j = 0; j < m; ++j) {
      double col = 0.0;
      for (index_t e = plan.col_ptr[j]; e < plan.col_ptr[j + 1]; ++e) {
        rows[size_t(plan.rows[e])] += plan.values[e];
        col += plan.values[e];
      }
      err += std::abs(col - b[j]);
    }
    for (index_t i = 0; i < n; ++i) err += std::abs(rows[size_t(i)] - a[i]);
    res.marginal_error = err;
    res.objective = res.value + 0.5 * opt.reg * sq;
    return res;
  }
  x = solver.x();
  res.status = not_finite ? Status::NotFinite : reached ? Status::Converged : Status::MaxIter;
  res.marginal_error = obj.marginal_error();
  obj.plan(plan, res.value, sq);
  res.objective = res.value + 0.5 * opt.reg * sq;
  obj.column_potential(x.data(), g);
  return res;
}

}  // namespace pyot::sparse
