// Entropic OT (ALGORITHMS 2): the softmin kernels, one class per kind of cost, and the
// Sinkhorn driver (log and stabilized scaling domains, eps-scaling, over-relaxation,
// unbalanced marginals, symmetric self-transport).
//
// Every kernel answers two questions about the current plan P_ij = a_i b_j exp((f_i + g_j -
// C_ij) / eps) without forming it:
//   row_log_ratio: r_i = log((P 1)_i / a_i)   = log sum_j exp(hb_j + f_i/eps - C_ij/eps)
//   col_log_ratio: c_j = log((P^T 1)_j / b_j) = log sum_i exp(ha_i + g_j/eps - C_ij/eps)
// with ha = log a + f / eps, hb = log b + g / eps. A Sinkhorn half-step is then f -= eps r.
//
// Shifting every exponent by the current potential makes the terms ratios P_ij / a_i <= 1
// (up to the marginal mismatch), so one pass without a running maximum is exact in double;
// only when the sum leaves [1e-250, 1e250] (cold starts, eps changes) is the row redone with
// the maximum subtracted. Rows are reduced by one thread in a fixed order, columns in fixed
// blocks: results do not depend on the thread count.
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "pyot/common/buffer.hpp"
#include "pyot/common/config.hpp"
#include "pyot/common/costs.hpp"
#include "pyot/common/logsumexp.hpp"
#include "pyot/common/relaxation.hpp"
#include "pyot/common/status.hpp"
#include "pyot/common/threads.hpp"
#include "pyot/common/view.hpp"

namespace pyot::sinkhorn {

constexpr index_t kRowBlock = 16;   // rows per task
constexpr index_t kColBlock = 256;  // columns per task / per cost tile

// ---------------------------------------------------------------------------------------------
// SIMD inner loops. Each is a multiversioned template (AVX-512 / AVX2+FMA / baseline clones
// picked at load time); the hot exp is inlined into every clone.

namespace detail {
// sum_j exp(h_j + s - c_j inv_eps), times c_j when Weighted; inlined into every clone below.
template <bool Weighted, class T>
PYOT_ALWAYS_INLINE double exp_sum(const T* c, const double* h, double s, double inv_eps,
                                  index_t len) {
  double acc = 0.0;
#pragma omp simd reduction(+ : acc)
  for (index_t j = 0; j < len; ++j) {
    const double cj = double(c[j]), e = exp_vec(h[j] + s - cj * inv_eps);
    acc += Weighted ? e * cj : e;
  }
  return acc;
}

// Float lanes (ALGORITHMS 11): the exponents h_j + s - c_j inv_eps are formed in double (they are
// differences of potentials and costs over eps, hundreds at small eps, where float would lose
// 1e-5), rounded to float (relative 2^-24 of a term that is at most ~1 when the shift is good)
// and exponentiated by the float exp, 16 per AVX-512 vector. Chunks of kFloatChunk terms are
// summed in float, the chunks in double.
constexpr index_t kFloatChunk = 256;
template <class T>
PYOT_ALWAYS_INLINE double exp_sum_float(const T* c, const double* h, double s, double inv_eps,
                                        index_t len) {
  double total = 0.0;
  for (index_t j0 = 0; j0 < len; j0 += kFloatChunk) {
    const index_t j1 = std::min(len, j0 + kFloatChunk);
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (index_t j = j0; j < j1; ++j) acc += exp_vec(float(h[j] + s - double(c[j]) * inv_eps));
    total += double(acc);
  }
  return total;
}
}  // namespace detail

// The safe range of a float-lane sum: its terms are exact down to 2^-125.5 (smaller ones are 0),
// so a sum above 1e-20 loses at most m 2^-125.5 / 1e-20 < 1e-8 relative for m < 1e9; below
// 1e30 no term or chunk overflows. Outside it the row is redone exactly.
constexpr double kFloatSafeLow = 1e-20;
constexpr double kFloatSafeHigh = 1e30;
inline bool sum_is_safe(double s, bool float_lanes) {
  return float_lanes ? s > kFloatSafeLow && s < kFloatSafeHigh : in_safe_range(s);
}

// sum_j exp(h_j + s - c_j inv_eps) over one row.
template <class T>
PYOT_MULTIVERSION double row_exp_sum(const T* c, const double* h, double s, double inv_eps,
                                     index_t len) {
  return detail::exp_sum<false>(c, h, s, inv_eps, len);
}

// The same with float lanes (detail::exp_sum_float).
template <class T>
PYOT_MULTIVERSION double row_exp_sum_float(const T* c, const double* h, double s, double inv_eps,
                                           index_t len) {
  return detail::exp_sum_float(c, h, s, inv_eps, len);
}

// acc_j += exp(h + s_j - c_j inv_eps): one row streamed into column accumulators.
template <class T>
PYOT_MULTIVERSION void col_exp_accumulate(const T* c, const double* s, double h, double inv_eps,
                                          index_t len, double* acc) {
#pragma omp simd
  for (index_t j = 0; j < len; ++j) acc[j] += exp_vec(h + s[j] - double(c[j]) * inv_eps);
}

// Columns per task of the dense log-domain column pass (at most; a column's sum does not depend
// on it): each row contributes a contiguous run of the block's width, so wider blocks stream C
// in longer runs.
constexpr index_t kLogColMax = 2048;

// The same with float lanes over up to kFloatColRows rows at once (rows r, `ld` apart, exponents
// h_r + s_j - c_rj inv_eps formed in double and rounded to float, rows with h_r = -inf skipped):
// each column's terms are summed in float, then added to acc_j in double. A float sum then runs
// over at most 16 terms, as each of exp_sum_float's 16 lanes does over a chunk of the row pass,
// so both passes carry the same float rounding. len <= kLogColMax.
constexpr index_t kFloatColRows = 16;
template <class T>
PYOT_MULTIVERSION void col_exp_accumulate_float(const T* c, index_t ld, const double* h,
                                                index_t rows, const double* s, double inv_eps,
                                                index_t len, double* acc) {
  alignas(64) float part[kLogColMax];
#pragma omp simd
  for (index_t j = 0; j < len; ++j) part[j] = 0.0f;
  for (index_t r = 0; r < rows; ++r) {
    if (h[r] == kNegInf) continue;  // zero weight: no mass in this row
    const T* cr = c + r * ld;
    const double hr = h[r];
#pragma omp simd
    for (index_t j = 0; j < len; ++j)
      part[j] += exp_vec(float(hr + s[j] - double(cr[j]) * inv_eps));
  }
#pragma omp simd
  for (index_t j = 0; j < len; ++j) acc[j] += double(part[j]);
}

// sum_j exp(h_j + s - c_j inv_eps) c_j: one row's share of <P, C>.
template <class T>
PYOT_MULTIVERSION double row_weighted_cost(const T* c, const double* h, double s, double inv_eps,
                                           index_t len) {
  return detail::exp_sum<true>(c, h, s, inv_eps, len);
}

// mx_j = max(mx_j, h + s_j - c_j inv_eps): the column maxima of the exact fallback.
template <class T>
PYOT_MULTIVERSION void col_max_accumulate(const T* c, const double* s, double h, double inv_eps,
                                          index_t len, double* mx) {
#pragma omp simd
  for (index_t j = 0; j < len; ++j) {
    const double v = h + s[j] - double(c[j]) * inv_eps;
    mx[j] = v > mx[j] ? v : mx[j];
  }
}

// sum_j k_j v_j over four contiguous quarters at once: four independent chains of vector
// additions (one chain is latency bound when K is in cache), combined in a fixed order.
template <class T>
PYOT_MULTIVERSION double row_dot(const T* k, const double* v, index_t len) {
  const index_t q = len / 4;
  const T *k1 = k + q, *k2 = k + 2 * q, *k3 = k + 3 * q;
  const double *v1 = v + q, *v2 = v + 2 * q, *v3 = v + 3 * q;
  double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
  for (index_t j = 0; j < q; ++j) {
    a0 += double(k[j]) * v[j];
    a1 += double(k1[j]) * v1[j];
    a2 += double(k2[j]) * v2[j];
    a3 += double(k3[j]) * v3[j];
  }
  for (index_t j = 4 * q; j < len; ++j) a3 += double(k[j]) * v[j];
  return (a0 + a1) + (a2 + a3);
}

// sum_j k_j w_j c_j: one row's share of <P, C> from plan-like values k and weights w.
template <class K, class T>
PYOT_MULTIVERSION double row_dot_cost(const K* k, const double* w, const T* c, index_t len) {
  double acc = 0.0;
#pragma omp simd reduction(+ : acc)
  for (index_t j = 0; j < len; ++j) acc += double(k[j]) * w[j] * double(c[j]);
  return acc;
}

template <class T>
PYOT_MULTIVERSION void col_axpy(const T* k, double u, index_t len, double* acc) {
#pragma omp simd
  for (index_t j = 0; j < len; ++j) acc[j] += double(k[j]) * u;
}

// acc_j += (k0_j u0 + k1_j u1) + (k2_j u2 + k3_j u3) for kAxpyRows = 4 rows `ld` apart: the
// column sums of a group of rows in one pass over acc (col_axpy row by row loads and stores
// acc once per row; when acc is a long partial row it lives in L2, not L1).
constexpr index_t kAxpyRows = 4;
template <class T>
PYOT_MULTIVERSION void col_axpy_rows(const T* k, index_t ld, const double* u, index_t len,
                                     double* acc) {
  const T *k1 = k + ld, *k2 = k + 2 * ld, *k3 = k + 3 * ld;
  const double u0 = u[0], u1 = u[1], u2 = u[2], u3 = u[3];
#pragma omp simd
  for (index_t j = 0; j < len; ++j)
    acc[j] += (double(k[j]) * u0 + double(k1[j]) * u1) + (double(k2[j]) * u2 + double(k3[j]) * u3);
}

// out_t = sum_r p_(r ld + t) for t < len, the rows r < rows added in order: the column sums of
// the per-block partial sums of the scaling passes.
PYOT_MULTIVERSION inline void sum_rows(const double* p, index_t rows, index_t ld, index_t len,
                                       double* out) {
  std::fill(out, out + len, 0.0);
  for (index_t r = 0; r < rows; ++r) {
    const double* pr = p + r * ld;
#pragma omp simd
    for (index_t t = 0; t < len; ++t) out[t] += pr[t];
  }
}

// The fused scaling pass's inner loop over two groups of kAxpyRows rows of K (one pointer per
// row; a short group repeats its last row with weight 0): the products s_t = sum_j next_t[j] v_j
// of the next group (read from memory) and, in the same sweep, acc_j += (cur_0[j] u_0 +
// cur_1[j] u_1) + (cur_2[j] u_2 + cur_3[j] u_3) for the current group (read by the previous
// sweep, in cache). A sweep that did only one of the two would leave the memory idle while the
// cached rows are added. (A block's first group passes itself as `cur` with weights 0.) With
// `cost` (the next group's rows of C), also sc_t = sum_j next_t[j] v_j cost_t[j] (the rows'
// shares of <P, C>), the products s_t formed exactly as without it.
template <class T, class C = T>
PYOT_MULTIVERSION void dot_axpy_rows(const T* const* next, const double* v, const T* const* cur,
                                     const double* u, index_t len, double* acc, double* s,
                                     const C* const* cost = nullptr, double* sc = nullptr) {
  const T *n0 = next[0], *n1 = next[1], *n2 = next[2], *n3 = next[3];
  const T *c0 = cur[0], *c1 = cur[1], *c2 = cur[2], *c3 = cur[3];
  const double u0 = u[0], u1 = u[1], u2 = u[2], u3 = u[3];
  double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
  if (cost == nullptr) {
#pragma omp simd reduction(+ : s0, s1, s2, s3)
    for (index_t j = 0; j < len; ++j) {
      const double vj = v[j];
      s0 += double(n0[j]) * vj;
      s1 += double(n1[j]) * vj;
      s2 += double(n2[j]) * vj;
      s3 += double(n3[j]) * vj;
      acc[j] +=
          (double(c0[j]) * u0 + double(c1[j]) * u1) + (double(c2[j]) * u2 + double(c3[j]) * u3);
    }
  } else {
    const C *d0 = cost[0], *d1 = cost[1], *d2 = cost[2], *d3 = cost[3];
    double w0 = 0.0, w1 = 0.0, w2 = 0.0, w3 = 0.0;
#pragma omp simd reduction(+ : s0, s1, s2, s3, w0, w1, w2, w3)
    for (index_t j = 0; j < len; ++j) {
      const double vj = v[j];
      s0 += double(n0[j]) * vj;
      s1 += double(n1[j]) * vj;
      s2 += double(n2[j]) * vj;
      s3 += double(n3[j]) * vj;
      // (v_j c_j first: a product distinct from the one s_t adds, which stays as above)
      w0 += double(n0[j]) * (vj * double(d0[j]));
      w1 += double(n1[j]) * (vj * double(d1[j]));
      w2 += double(n2[j]) * (vj * double(d2[j]));
      w3 += double(n3[j]) * (vj * double(d3[j]));
      acc[j] +=
          (double(c0[j]) * u0 + double(c1[j]) * u1) + (double(c2[j]) * u2 + double(c3[j]) * u3);
    }
    sc[0] = w0;
    sc[1] = w1;
    sc[2] = w2;
    sc[3] = w3;
  }
  s[0] = s0;
  s[1] = s1;
  s[2] = s2;
  s[3] = s3;
}

// max_t |x_t - y_t| (NaN differences ignored): how far potentials moved from a reference.
PYOT_MULTIVERSION inline double max_abs_diff(const double* x, const double* y, index_t len) {
  double mx = 0.0;
#pragma omp simd reduction(max : mx)
  for (index_t t = 0; t < len; ++t) {
    const double d = std::fabs(x[t] - y[t]);
    mx = d > mx ? d : mx;
  }
  return mx;
}

// out_j = exp(logw_j + (pot_j - base_j) inv_eps): the scaling domain's scalings u = a .* exp((f -
// alpha) / eps) and v = b .* exp((g - beta) / eps) (0 where the weight is 0: logw = -inf).
PYOT_MULTIVERSION inline void scalings(const double* logw, const double* pot, const double* base,
                                       double inv_eps, index_t len, double* out) {
#pragma omp simd
  for (index_t j = 0; j < len; ++j) out[j] = exp_vec(logw[j] + (pot[j] - base[j]) * inv_eps);
}

// out_j = (pot_j - base_j) inv_eps + log(s_j): log ratios from the scaled products s.
PYOT_MULTIVERSION inline void ratio_logs(const double* s, const double* pot, const double* base,
                                         double inv_eps, index_t len, double* out) {
#pragma omp simd
  for (index_t j = 0; j < len; ++j) out[j] = (pot[j] - base[j]) * inv_eps + log_vec(s[j]);
}

// out_j = exp(h_j + s - c_j inv_eps) (Gibbs kernel rows, plan entries).
template <class T, class U>
PYOT_MULTIVERSION void gibbs_row(const T* c, const double* h, double s, double inv_eps, index_t len,
                                 U* out) {
#pragma omp simd
  for (index_t j = 0; j < len; ++j) out[j] = U(exp_vec(h[j] + s - double(c[j]) * inv_eps));
}

// Online costs: for rows [i0, i1) of p and v_ij = h_j + s[i - i0] - c(p_i, q_j) inv_eps,
// acc[i - i0] is sum_j exp(v_ij) (Reduce::Sum; Reduce::FloatSum with float lanes), sum_j
// exp(v_ij) c_ij (Reduce::Weighted, the rows' shares of <P, C>) or max_j v_ij (Reduce::Max, for
// the exact fallback). Column tiles of q are swept once for the whole block, so each tile stays in
// cache while the block uses it.
enum class Reduce { Sum, FloatSum, Weighted, Max };

namespace detail {
// acc op= the reduction of v_t = h_t + s - tile_t inv_eps over one row's tile.
template <Reduce R, class T>
PYOT_ALWAYS_INLINE void reduce_tile(const T* tile, const double* h, double s, double inv_eps,
                                    index_t len, double& acc) {
  if constexpr (R == Reduce::Max) {
    double r = acc;
#pragma omp simd reduction(max : r)
    for (index_t t = 0; t < len; ++t) {
      const double v = h[t] + s - double(tile[t]) * inv_eps;
      r = v > r ? v : r;
    }
    acc = r;
  } else if constexpr (R == Reduce::FloatSum) {
    acc += exp_sum_float(tile, h, s, inv_eps, len);
  } else {
    acc += exp_sum<R == Reduce::Weighted>(tile, h, s, inv_eps, len);
  }
}
}  // namespace detail

namespace detail {
// Few coordinates (d <= kFusedMaxDim): the sums of online_block with each cost computed in
// registers inside the exp loop, in the order cost_row_tile sums the coordinates (the same
// costs), instead of written to a tile and read back: at d = 3 the tile's stores and loads cost
// about a fifth of the half-step.
constexpr index_t kFusedMaxDim = 3;

template <Metric M, int D, class T>
PYOT_ALWAYS_INLINE T fused_cost(const T* x, const T* const* y, index_t t, T pexp) {
  T c = T(0);
  for (int k = 0; k < D; ++k) c += CostOp<M>::term(x[k], y[k][t], pexp);
  if constexpr (M != Metric::SqEuclidean) c = CostOp<M>::finish(c, pexp);
  return c;
}

// sum_t exp(h_t + s - c(x, y_t) inv_eps) over t in [0, len), y given by its D coordinate rows;
// float lanes as exp_sum_float (chunks of kFloatChunk summed in float, then in double).
template <Metric M, int D, Reduce R, class T>
PYOT_ALWAYS_INLINE double fused_exp_sum(const T* x, const T* const* y, const double* h, double s,
                                        double inv_eps, index_t len, T pexp) {
  if constexpr (R == Reduce::FloatSum) {
    double total = 0.0;
    for (index_t j0 = 0; j0 < len; j0 += kFloatChunk) {
      const index_t j1 = std::min(len, j0 + kFloatChunk);
      float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
      for (index_t t = j0; t < j1; ++t)
        acc += exp_vec(float(h[t] + s - double(fused_cost<M, D>(x, y, t, pexp)) * inv_eps));
      total += double(acc);
    }
    return total;
  } else {
    double acc = 0.0;
#pragma omp simd reduction(+ : acc)
    for (index_t t = 0; t < len; ++t)
      acc += exp_vec(h[t] + s - double(fused_cost<M, D>(x, y, t, pexp)) * inv_eps);
    return acc;
  }
}

// online_block's sums (R = Sum or FloatSum) for d = D coordinates, costs in registers.
template <Metric M, int D, Reduce R, class T>
PYOT_ALWAYS_INLINE void online_block_fused(const PointsT<T>& p, const PointsT<T>& q, index_t i0,
                                           index_t i1, T pexp, const double* h, const double* s,
                                           double inv_eps, double* acc) {
  for (index_t i = i0; i < i1; ++i) acc[i - i0] = 0.0;
  for (index_t j0 = 0; j0 < q.n; j0 += kColBlock) {
    const index_t len = std::min(q.n, j0 + kColBlock) - j0;
    const T* y[D];
    for (int k = 0; k < D; ++k) y[k] = q.coord(k) + j0;
    for (index_t i = i0; i < i1; ++i)
      acc[i - i0] += fused_exp_sum<M, D, R>(p.point(i), y, h + j0, s[i - i0], inv_eps, len, pexp);
  }
}
}  // namespace detail

template <Metric M, Reduce R, class T>
PYOT_MULTIVERSION void online_block(const PointsT<T>& p, const PointsT<T>& q, index_t i0,
                                    index_t i1, T pexp, const double* h, const double* s,
                                    double inv_eps, double* acc) {
  if constexpr ((R == Reduce::Sum || R == Reduce::FloatSum) && M != Metric::Minkowski) {
    static_assert(detail::kFusedMaxDim == 3, "one case per dimension below");
    switch (p.d) {
      case 1:
        return detail::online_block_fused<M, 1, R>(p, q, i0, i1, pexp, h, s, inv_eps, acc);
      case 2:
        return detail::online_block_fused<M, 2, R>(p, q, i0, i1, pexp, h, s, inv_eps, acc);
      case 3:
        return detail::online_block_fused<M, 3, R>(p, q, i0, i1, pexp, h, s, inv_eps, acc);
      default:
        break;
    }
  }
  T tile[kColBlock];
  for (index_t i = i0; i < i1; ++i) acc[i - i0] = R == Reduce::Max ? kNegInf : 0.0;
  for (index_t j0 = 0; j0 < q.n; j0 += kColBlock) {
    const index_t j1 = std::min(q.n, j0 + kColBlock), len = j1 - j0;
    for (index_t i = i0; i < i1; ++i) {
      cost_row_tile<M>(p.point(i), q, j0, j1, pexp, tile);
      detail::reduce_tile<R>(tile, h + j0, s[i - i0], inv_eps, len, acc[i - i0]);
    }
  }
}

// online_block in the matrix-product form (d >= kGemmMinDim, the costs gemm_cost_block covers):
// the block's cost tiles (at most kRowBlock rows) by the shared dot-product micro-kernel on the
// centred clouds, then the same per-row reductions in the same order.
template <Metric M, Reduce R, class T>
PYOT_MULTIVERSION void online_block_gemm(const GemmPoints<T>& g, index_t i0, index_t i1,
                                         const double* h, const double* s, double inv_eps,
                                         double* acc) {
  constexpr index_t B = kRowBlock, L = kColBlock;
  alignas(64) T tile[B * L];
  for (index_t i = i0; i < i1; ++i) acc[i - i0] = R == Reduce::Max ? kNegInf : 0.0;
  for (index_t r0 = i0; r0 < i1; r0 += B) {
    const index_t r1 = std::min(i1, r0 + B);
    for (index_t j0 = 0; j0 < g.m; j0 += L) {
      const index_t j1 = std::min(g.m, j0 + L), len = j1 - j0;
      gemm_cost_block<M>(g, r0, r1, j0, j1, tile, len);
      for (index_t i = r0; i < r1; ++i)
        detail::reduce_tile<R>(tile + (i - r0) * len, h + j0, s[i - i0], inv_eps, len,
                               acc[i - i0]);
    }
  }
}

// out_j = c(x_i, y_j) for one row i in the matrix-product form.
template <Metric M, class T>
PYOT_MULTIVERSION void gemm_cost_row(const GemmPoints<T>& g, index_t i, index_t j0, index_t j1,
                                     T* out) {
  gemm_cost_block<M>(g, i, i + 1, j0, j1, out, j1 - j0);
}

// The k largest of v[0..len) (len >= k), largest first and ties by index: their indices in idx
// and values in val. The k-th largest value t comes from nth_element on a copy of the values
// (no indirection through an index array, which dominated Newton steps at n = 1000); the entries
// above t and then the first ones equal to it are gathered in index order and sorted.
inline void top_entries(const double* v, index_t len, index_t k, std::vector<double>& scratch,
                        std::vector<index_t>& order, index_t* idx, double* val) {
  scratch.assign(v, v + len);
  std::nth_element(scratch.begin(), scratch.begin() + (k - 1), scratch.end(),
                   [](double x, double y) { return x > y; });
  const double t = scratch[k - 1];
  order.clear();
  for (index_t j = 0; j < len; ++j)
    if (v[j] > t) order.push_back(j);
  for (index_t j = 0; j < len && index_t(order.size()) < k; ++j)
    if (v[j] == t) order.push_back(j);
  const auto larger = [v](index_t x, index_t y) { return v[x] > v[y] || (v[x] == v[y] && x < y); };
  std::sort(order.begin(), order.end(), larger);  // largest first: prefixes are top-k'
  for (index_t r = 0; r < k; ++r) {
    idx[r] = order[r];
    val[r] = v[order[r]];
  }
}

// log sum_j exp(h_j + s - c_j * inv_eps), exact: max-shifted, `scratch` holds len doubles.
template <class T>
double row_lse_exact(const T* c, const double* h, double s, double inv_eps, index_t len,
                     double* scratch) {
  for (index_t j = 0; j < len; ++j) scratch[j] = h[j] + s - double(c[j]) * inv_eps;
  return lse_two_pass(scratch, len);
}

// finish(j0, len, sums) for every column block [j0, j0 + len) of kColBlock columns of `blocks`
// partial rows m apart, sums_t = sum_b partial[b][j0 + t] with the blocks b added in order,
// column blocks split over the threads (from 2^18 sums: a parallel region costs up to a
// scheduler quantum on a loaded machine): the same sums for any thread count.
template <class Finish>
void reduce_columns(const double* partial, index_t blocks, index_t m, int threads,
                    Finish&& finish) {
  for_blocks(m, kColBlock, threads_for_work(threads, blocks * m), [&](index_t j0, index_t j1) {
    double sum[kColBlock];
    sum_rows(partial + j0, blocks, m, j1 - j0, sum);
    finish(j0, j1 - j0, sum);
  });
}

// From kFusedMinRows rows on, one read of C (or K) serves both half-steps of an iteration: the row
// pass also adds each row's terms at the updated potential into its block's partial column sums
// while the row is in cache. partial_block(n, group) rows per block: at most 64 partial sums per
// column, blocks of at least kPartialMinRows rows (fewer partial sums to zero and add: measured
// faster at n = 1000 than 16) in whole groups of `group` rows.
constexpr index_t kFusedMinRows = 256;
constexpr index_t kPartialMinRows = 64;
inline index_t partial_block(index_t n, index_t group) {
  const index_t rows = std::max(kPartialMinRows, n_blocks(n, 64));
  return n_blocks(rows, group) * group;
}

// ---------------------------------------------------------------------------------------------
// A dense cost matrix C (n x m, row-major, any row stride).
//
// The log-ratio passes take `float_lanes`: with a float cost, the exp then runs in float lanes
// (detail::exp_sum_float; relative error ~1e-7 per ratio): the driver confirms convergence with
// exact passes. Ignored for a double cost.
template <class T>
class DenseCost {
 public:
  using value_type = T;
  explicit DenseCost(MatrixView<T> c) : c_(c) {}
  index_t rows() const { return c_.rows; }
  index_t cols() const { return c_.cols; }
  const MatrixView<T>& matrix() const { return c_; }

  // out_i = log sum_j exp(hb_j + s_i - C_ij inv_eps)
  void row_log_ratio(const double* hb, const double* s, double inv_eps, double* out, int threads,
                     bool float_lanes = false) const {
    const bool fl = float_lanes && std::is_same<T, float>::value;
    for_blocks(rows(), kRowBlock, threads, [&](index_t i0, index_t i1) {
      std::vector<double> scratch;
      for (index_t i = i0; i < i1; ++i) out[i] = row_log(i, hb, s[i], inv_eps, fl, scratch);
    });
  }

  // Both half-steps of an iteration from one read of C (rows >= kFusedMinRows): out_i as
  // row_log_ratio, then ha_i = next_ha(i, out_i) (the row's log a_i + f_i / eps at the updated f,
  // also stored in ha), and col_out_j = log sum_i exp(ha_i + sc_j - C_ij inv_eps) from the rows
  // still in cache. Rows go in groups of kFloatColRows (with float lanes, the float chunks of
  // col_log_ratio), each block of partial_block(n, kFloatColRows) rows into its own partial
  // column sums (`partial`), reduced in block order: the same results for any thread count. A
  // column whose sum leaves the safe range is redone exactly.
  template <class NextHa>
  void row_col_log_ratio(const double* hb, const double* s, const double* sc, double inv_eps,
                         double* out, double* ha, double* col_out, int threads, bool float_lanes,
                         NextHa&& next_ha, std::vector<double>& partial) const {
    const index_t n = rows(), m = cols();
    const bool fl = float_lanes && std::is_same<T, float>::value;
    const index_t block = partial_block(n, kFloatColRows);
    const index_t blocks = n_blocks(n, block);
    partial.resize(std::size_t(blocks) * std::size_t(m));
    for_blocks(n, block, threads, [&](index_t i0, index_t i1) {
      double* acc = partial.data() + std::size_t(i0 / block) * std::size_t(m);
      std::fill(acc, acc + m, 0.0);
      std::vector<double> scratch;
      for (index_t g0 = i0; g0 < i1; g0 += kFloatColRows) {
        const index_t g1 = std::min(i1, g0 + kFloatColRows);
        for (index_t i = g0; i < g1; ++i) {
          out[i] = row_log(i, hb, s[i], inv_eps, fl, scratch);
          ha[i] = next_ha(i, out[i]);
        }
        for (index_t j0 = 0; j0 < m; j0 += kLogColMax) {
          const index_t len = std::min(m, j0 + kLogColMax) - j0;
          if (fl) {
            col_exp_accumulate_float(c_.row(g0) + j0, c_.ld, ha + g0, g1 - g0, sc + j0, inv_eps,
                                     len, acc + j0);
          } else {
            for (index_t i = g0; i < g1; ++i)
              if (ha[i] != kNegInf)  // zero weight: no mass in this row
                col_exp_accumulate(c_.row(i) + j0, sc + j0, ha[i], inv_eps, len, acc + j0);
          }
        }
      }
    });
    bool safe = true;
    reduce_columns(partial.data(), blocks, m, threads,
                   [&](index_t j0, index_t len, const double* sum) {
                     for (index_t t = 0; t < len; ++t)
                       col_out[j0 + t] = sum_is_safe(sum[t], fl) ? std::log(sum[t]) : kNaN;
                   });
    for (index_t j = 0; j < m; ++j) safe = safe && !std::isnan(col_out[j]);
    if (safe) return;
    std::vector<double> exact(kColBlock);
    for (index_t j0 = 0; j0 < m; j0 += kColBlock) {
      const index_t len = std::min(m, j0 + kColBlock) - j0;
      if (std::none_of(col_out + j0, col_out + j0 + len, [](double v) { return std::isnan(v); }))
        continue;
      exact_block(ha, sc + j0, inv_eps, j0, len, exact.data());
      for (index_t t = 0; t < len; ++t)
        if (std::isnan(col_out[j0 + t])) col_out[j0 + t] = exact[t];
    }
  }

  // out_j = log sum_i exp(ha_i + s_j - C_ij inv_eps), streaming rows into column blocks. With
  // float lanes the terms are summed in float over fixed chunks of kFloatColRows rows, the
  // chunks in double (col_exp_accumulate_float). A column whose sum leaves the safe range is
  // redone exactly; each column's result depends on neither the block width nor the threads.
  void col_log_ratio(const double* ha, const double* s, double inv_eps, double* out, int threads,
                     bool float_lanes = false) const {
    const index_t n = rows(), m = cols();
    const bool fl = float_lanes && std::is_same<T, float>::value;
    for_blocks(m, col_width(m, threads), threads, [&](index_t j0, index_t j1) {
      const index_t len = j1 - j0;
      alignas(64) double acc[kLogColMax];
      std::fill(acc, acc + len, 0.0);
      if (fl) {
        for (index_t i = 0; i < n; i += kFloatColRows)
          col_exp_accumulate_float(c_.row(i) + j0, c_.ld, ha + i, std::min(kFloatColRows, n - i),
                                   s + j0, inv_eps, len, acc);
      } else {
        for (index_t i = 0; i < n; ++i)
          if (ha[i] != kNegInf)  // zero weight: no mass in this row
            col_exp_accumulate(c_.row(i) + j0, s + j0, ha[i], inv_eps, len, acc);
      }
      bool safe = true;
      for (index_t t = 0; t < len; ++t) safe = safe && sum_is_safe(acc[t], fl);
      if (!safe) exact_block(ha, s + j0, inv_eps, j0, len, out + j0);
      for (index_t t = 0; t < len; ++t)
        if (safe || sum_is_safe(acc[t], fl)) out[j0 + t] = std::log(acc[t]);
    });
  }

  // out[i - i0] = sum_j exp(hb_j + ha_i - C_ij inv_eps) C_ij: rows' shares of <P, C>.
  void row_weighted_costs(index_t i0, index_t i1, const double* hb, const double* ha,
                          double inv_eps, double* out) const {
    for (index_t i = i0; i < i1; ++i)
      out[i - i0] = row_weighted_cost(c_.row(i), hb, ha[i], inv_eps, cols());
  }

  // out_j = exp(h_j + s - C_ij inv_eps) for one row i.
  void gibbs_values(index_t i, const double* h, double s, double inv_eps, double* out) const {
    gibbs_row(c_.row(i), h, s, inv_eps, cols(), out);
  }

 private:
  static constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

  // log sum_j exp(hb_j + s - C_ij inv_eps) for row i, redone exactly (max-shifted, in `scratch`)
  // when the one-pass sum leaves the safe range.
  double row_log(index_t i, const double* hb, double s, double inv_eps, bool fl,
                 std::vector<double>& scratch) const {
    const index_t m = cols();
    const double sum = fl ? row_exp_sum_float(c_.row(i), hb, s, inv_eps, m)
                          : row_exp_sum(c_.row(i), hb, s, inv_eps, m);
    if (sum_is_safe(sum, fl)) return std::log(sum);
    scratch.resize(m);
    return row_lse_exact(c_.row(i), hb, s, inv_eps, m, scratch.data());
  }

  // Redoes a column block max-shifted (out_j = log of the column sum, exact), still streaming
  // rows: one pass for the column maxima, one for the shifted sums.
  void exact_block(const double* ha, const double* s, double inv_eps, index_t j0, index_t len,
                   double* out) const {
    std::vector<double> work(3 * std::size_t(len));  // rare: off the stack
    double *acc = work.data(), *mx = acc + len, *shifted = mx + len;
    std::fill(mx, mx + len, kNegInf);
    for (index_t i = 0; i < rows(); ++i)
      if (ha[i] != kNegInf) col_max_accumulate(c_.row(i) + j0, s, ha[i], inv_eps, len, mx);
    for (index_t t = 0; t < len; ++t) {
      shifted[t] = mx[t] == kNegInf ? 0.0 : s[t] - mx[t];
      acc[t] = 0.0;
    }
    for (index_t i = 0; i < rows(); ++i)
      if (ha[i] != kNegInf) col_exp_accumulate(c_.row(i) + j0, shifted, ha[i], inv_eps, len, acc);
    for (index_t t = 0; t < len; ++t)
      out[t] = mx[t] == kNegInf ? kNegInf : mx[t] + std::log(acc[t]);
  }

  // The column pass's block width: as wide as kLogColMax allows (C is read in runs of the
  // width; at 256 columns the strided runs of 1 or 2 KiB left the pass waiting on memory), in a
  // number of blocks that is a multiple of the threads (equal shares), a multiple of 16 columns.
  static index_t col_width(index_t m, int threads) {
    const index_t t = std::max(threads, 1);
    const index_t blocks = t * n_blocks(m, t * kLogColMax);
    return std::max<index_t>(16, (n_blocks(m, blocks) + 15) / 16 * 16);
  }

  MatrixView<T> c_;
};

// ---------------------------------------------------------------------------------------------
// The plan times a matrix, P Y (n x d) for Y (m x d), at the returned potentials: what
// pyot.inverse's gradient needs (<phi, P> = X^T P Y for bilinear features). Asked of a dense
// solve, it comes from the exact confirmation pass of the float kernel when that pass ran at the
// returned potentials (the exp values are already there), else from one exp pass of its own.
struct PlanProduct {
  const double* y = nullptr;  // m x d, row-major
  index_t d = 0;
  double* out = nullptr;    // n x d, row-major
  bool fused_only = false;  // write P Y only when the confirmation pass gives it (no extra pass)
  bool written = false;     // set by solve_dense: out holds P Y at the returned potentials
};

// The largest row_j (NaN if any is).
PYOT_MULTIVERSION inline double row_max(const double* row, index_t len) {
  double mx = -std::numeric_limits<double>::infinity(), bad = 0.0;
#pragma omp simd reduction(max : mx) reduction(+ : bad)
  for (index_t j = 0; j < len; ++j) {
    mx = row[j] > mx ? row[j] : mx;
    bad += row[j] - row[j];  // NaN for NaN or inf entries
  }
  return mx + bad;
}

// out_j = float(row_j), or 0 where row_j < floor (the float kernel's rows).
PYOT_MULTIVERSION inline void round_to_float(const double* row, index_t len, double floor,
                                             float* out) {
#pragma omp simd
  for (index_t j = 0; j < len; ++j) out[j] = row[j] >= floor ? float(row[j]) : 0.0f;
}

namespace detail {
// Y's rows weighted by b: b_j y_j, m x d row-major.
inline std::vector<double> weighted_rows(const PlanProduct& p, const double* b, index_t m) {
  std::vector<double> wy(std::size_t(p.d) * std::size_t(m));
  for (index_t j = 0; j < m; ++j)
    for (index_t k = 0; k < p.d; ++k) wy[j * p.d + k] = b[j] * p.y[j * p.d + k];
  return wy;
}

constexpr index_t kProductRows = 8;  // rows of P Y per weighted_sum_block call (its row block)

// Rows [i, i + rows) of P Y (rows <= kProductRows) from their e_ij = P_ij / (a_i b_j), stored
// m apart, and wy = (b_j y_j): out_i = a_i sum_j e_ij wy_j (0 where a_i = 0).
PYOT_MULTIVERSION inline void rows_product(const double* e, index_t rows, index_t m,
                                           const double* wy, index_t d, const double* a,
                                           double* out) {
  std::fill(out, out + rows * d, 0.0);
  weighted_sum_block(e, m, rows, wy, m, d, out);
  for (index_t r = 0; r < rows; ++r)
    for (index_t k = 0; k < d; ++k) out[r * d + k] = a[r] > 0.0 ? a[r] * out[r * d + k] : 0.0;
}

}  // namespace detail

// P Y by one exp pass over C at (f, g): the fallback when no confirmation pass provided it.
template <class T>
void plan_product(const DenseCost<T>& cost, const double* a, const double* b, const double* f,
                  const double* g, double eps, const PlanProduct& p, int threads) {
  const index_t n = cost.rows(), m = cost.cols();
  const double inv_eps = 1.0 / eps;
  const std::vector<double> wy = detail::weighted_rows(p, b, m);
  std::vector<double> hg(m);
  for (index_t j = 0; j < m; ++j) hg[j] = g[j] * inv_eps;
  for_blocks(n, kRowBlock, threads, [&](index_t i0, index_t i1) {
    std::vector<double> e(std::size_t(detail::kProductRows) * std::size_t(m));
    for (index_t i = i0; i < i1; i += detail::kProductRows) {
      const index_t rows = std::min(detail::kProductRows, i1 - i);
      for (index_t r = 0; r < rows; ++r)
        cost.gibbs_values(i + r, hg.data(), f[i + r] * inv_eps, inv_eps, e.data() + r * m);
      detail::rows_product(e.data(), rows, m, wy.data(), p.d, a + i, p.out + i * p.d);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// A lazy cost between two point clouds: R x T cost tiles evaluated on the fly, O((n + m) d)
// memory. The metric is a template parameter so the tile loop is branch-free. From
// kGemmMinDim coordinates on, the squared Euclidean, Euclidean and cosine tiles are built in
// the matrix-product form (gemm_cost_block on clouds centred by their common mean, unit rows for
// the cosine), as the dense cost matrix and the map kernels build them; the column half-steps
// use the same centred clouds with the roles exchanged, so both see the same costs bit for bit.
template <class T, Metric M>
class OnlineCost {
  static constexpr bool kGemmMetric =
      M == Metric::SqEuclidean || M == Metric::Euclidean || M == Metric::Cosine;

 public:
  using value_type = T;
  OnlineCost(MatrixView<T> x, MatrixView<T> y, double p)
      : gemm_(kGemmMetric && x.cols >= kGemmMinDim), n_(x.rows), m_(y.rows), p_(T(p)) {
    if (gemm_) {
      gxy_.assign(x, y, M == Metric::Cosine ? GemmCentre::Unit : GemmCentre::Both);
      gyx_ = gxy_.swapped();
    } else {
      x_ = PointsT<T>(x, M == Metric::Cosine);
      y_ = PointsT<T>(y, M == Metric::Cosine);
    }
  }
  index_t rows() const { return n_; }
  index_t cols() const { return m_; }

  // float_lanes: as DenseCost's (float clouds only).
  void row_log_ratio(const double* hb, const double* s, double inv_eps, double* out, int threads,
                     bool float_lanes = false) const {
    log_ratio(false, hb, s, inv_eps, out, threads, float_lanes);
  }
  void col_log_ratio(const double* ha, const double* s, double inv_eps, double* out, int threads,
                     bool float_lanes = false) const {
    log_ratio(true, ha, s, inv_eps, out, threads, float_lanes);  // every metric is symmetric
  }

  void row_weighted_costs(index_t i0, index_t i1, const double* hb, const double* ha,
                          double inv_eps, double* out) const {
    block<Reduce::Weighted>(false, i0, i1, hb, ha + i0, inv_eps, out);
  }

  void gibbs_values(index_t i, const double* h, double s, double inv_eps, double* out) const {
    T tile[kColBlock];
    for (index_t j0 = 0; j0 < cols(); j0 += kColBlock) {
      const index_t j1 = std::min(cols(), j0 + kColBlock);
      if constexpr (kGemmMetric) {
        if (gemm_) gemm_cost_row<M>(gxy_, i, j0, j1, tile);
      }
      if (!gemm_) cost_row_tile<M>(x_.point(i), y_, j0, j1, p_, tile);
      gibbs_row(tile, h + j0, s, inv_eps, j1 - j0, out + j0);
    }
  }

 private:
  // acc[i - i0] = the reduction R of h_j + s[i - i0] - c(p_i, q_j) inv_eps over j for rows
  // [i0, i1) of p (p = x, q = y, or exchanged when `cols`).
  template <Reduce R>
  void block(bool cols, index_t i0, index_t i1, const double* h, const double* s, double inv_eps,
             double* acc) const {
    if constexpr (kGemmMetric) {
      if (gemm_) {
        online_block_gemm<M, R>(cols ? gyx_ : gxy_, i0, i1, h, s, inv_eps, acc);
        return;
      }
    }
    online_block<M, R>(cols ? y_ : x_, cols ? x_ : y_, i0, i1, p_, h, s, inv_eps, acc);
  }

  // out_i = log sum_j exp(h_j + s_i - c(p_i, q_j) inv_eps): a block of rows sweeps the column
  // tiles together so each tile of q stays in cache while the block uses it.
  // With float lanes (float clouds) the sums are detail::exp_sum_float's.
  void log_ratio(bool cols, const double* h, const double* s, double inv_eps, double* out,
                 int threads, bool float_lanes) const {
    const bool fl = float_lanes && std::is_same<T, float>::value;
    for_blocks(cols ? m_ : n_, kRowBlock, threads, [&](index_t i0, index_t i1) {
      double acc[kRowBlock];
      if (fl)
        block<Reduce::FloatSum>(cols, i0, i1, h, s + i0, inv_eps, acc);
      else
        block<Reduce::Sum>(cols, i0, i1, h, s + i0, inv_eps, acc);
      for (index_t i = i0; i < i1; ++i)
        out[i] = sum_is_safe(acc[i - i0], fl) ? std::log(acc[i - i0])
                                                : exact_row(cols, i, h, s[i], inv_eps);
    });
  }

  // The exact log-sum-exp of one row: its maximum first, then the sum shifted by it.
  double exact_row(bool cols, index_t i, const double* h, double s, double inv_eps) const {
    double mx;
    block<Reduce::Max>(cols, i, i + 1, h, &s, inv_eps, &mx);
    if (mx == kNegInf) return kNegInf;
    const double shifted = s - mx;
    double sum;
    block<Reduce::Sum>(cols, i, i + 1, h, &shifted, inv_eps, &sum);
    return mx + std::log(sum);
  }

  bool gemm_;
  index_t n_, m_;
  PointsT<T> x_, y_;         // the direct form's clouds (empty in the matrix-product form)
  GemmPoints<T> gxy_, gyx_;  // the matrix-product form's centred clouds, x against y and back
  T p_;
};

// ---------------------------------------------------------------------------------------------
// The stabilized scaling domain on a dense cost (ALGORITHMS 2.3): K_ij = exp((alpha_i + beta_j -
// C_ij) / eps) is stored once; a half-step is then a matrix-vector product (memory bound, no
// exp). Potentials stay the interface: u = exp((f - alpha) / eps), v = exp((g - beta) / eps).
// When |f - alpha| or |g - beta| exceeds `absorb` * eps the potentials are absorbed into K.
// A half-step whose products under- or overflow returns false: the caller redoes it exactly in
// the log domain.
//
// K is stored in double, or in float when `single` (loose tolerances): the products then read
// half the bytes and still accumulate in double, but their ratios carry K's rounding (relative
// 2^-24 per entry), so the driver confirms convergence with exact log-domain passes. A float
// kernel whose entries would leave float's normal range (a row or column far from the
// potentials K was built at) is rebuilt in double for the rest of the solve.
// The f update a driver applies right after a row half-step, f_i <- (1 - w) f_i + w k (f_i - eps
// r_i): given it, ScalingKernel::row_log_ratio also accumulates the next column half-step's sums
// at the updated f while each row of K is in cache, so that an iteration reads K once.
struct RowUpdate {
  double w = 1.0, k = 1.0, eps = 1.0;
  const double* loga = nullptr;  // log a (-inf for zero weights)
  double* f_next = nullptr;      // written: the updated f
};

// For rows t < len with scaled products s_t = (K v)_t: the ratio r_t = (f_t - alpha_t) / eps +
// log s_t, the updated potential f'_t = (1 - w) f_t + w k (f_t - eps r_t) (RowUpdate) and its
// scaling u_t = exp(log a_t + (f'_t - alpha_t) / eps) (0 for a zero weight).
PYOT_MULTIVERSION inline void row_updates(const double* s, const double* f, const double* alpha,
                                          const double* loga, double inv_eps, const RowUpdate& up,
                                          index_t len, double* r, double* f_next, double* u) {
  const double w = up.w, wk = up.w * up.k, eps = up.eps;
#pragma omp simd
  for (index_t t = 0; t < len; ++t) {
    const double rt = (f[t] - alpha[t]) * inv_eps + log_vec(s[t]);
    const double ft = (1.0 - w) * f[t] + wk * (f[t] - eps * rt);
    r[t] = rt;
    f_next[t] = ft;
    u[t] = exp_vec(loga[t] + (ft - alpha[t]) * inv_eps);
  }
}

template <class T>
class ScalingKernel {
 public:
  ScalingKernel(const DenseCost<T>& cost, double absorb, bool single = false)
      : cost_(cost),
        absorb_(absorb),
        single_(single),
        alpha_(cost.rows(), 0.0),
        beta_(cost.cols(), 0.0),
        u_(cost.rows()),
        v_(cost.cols()) {}

  // Rebuilds K at the given potentials (nm exp): on a new eps and on absorption.
  void rebuild(const double* f, const double* g, double eps, int threads) {
    eps_ = eps;
    fused_ = false;
    const index_t n = cost_.rows(), m = cost_.cols();
    std::copy(f, f + n, alpha_.begin());
    std::copy(g, g + m, beta_.begin());
    const double inv_eps = 1.0 / eps;
    hb_.resize(m);
    for (index_t j = 0; j < m; ++j) hb_[j] = beta_[j] * inv_eps;
    const std::size_t size = std::size_t(n) * std::size_t(m);
    if (single_) {
      k32_.resize(size);
      std::vector<char> normal(n_blocks(n, kRowBlock), 1);
      for_blocks(n, kRowBlock, threads, [&](index_t i0, index_t i1) {
        std::vector<double> tmp(m);  // the double row, then rounded (keeps the exp vectorized)
        for (index_t i = i0; i < i1; ++i) {
          build_row(i, tmp.data());
          if (!round_row(tmp.data(), m, k32_.data() + i * m)) normal[i0 / kRowBlock] = 0;
        }
      });
      if (std::find(normal.begin(), normal.end(), 0) == normal.end()) return;
      single_ = false;  // some entry is subnormal, zero or huge in float: double from here on
      k32_.release();
    }
    // A double K is written by the next row pass, each row just before it is read (one write
    // and no read of K in that pass), or by ensure_built for the other readers.
    k_.resize(size);
    pending_ = true;
  }
  // Writes the double K now if rebuild left it to the next row pass.
  void ensure_built(int threads) {
    if (!pending_) return;
    for_blocks(cost_.rows(), kRowBlock, threads, [&](index_t i0, index_t i1) {
      for (index_t i = i0; i < i1; ++i) build_row(i, k_.data() + i * cost_.cols());
    });
    pending_ = false;
  }
  bool ready_for(double eps) const { return eps_ == eps; }
  // True while K is stored in float: the half-step ratios are then approximate.
  bool single() const { return single_; }
  // Switches to a double K rebuilt at (f, g) for the rest of the solve.
  void to_double(const double* f, const double* g, int threads) {
    single_ = false;
    k32_.release();
    rebuild(f, g, eps_, threads);
  }

  // The exact ratios r_i = log((P 1)_i / a_i) and c_j = log((P^T 1)_j / b_j) at (f, g) in one
  // exp pass over C: e_ij = exp((f_i + g_j - C_ij) / eps), r_i = log sum_j b_j e_ij, c_j = log
  // sum_i a_i e_ij. Column sums are reduced per fixed block of rows, then over blocks in order
  // (independent of the thread count). False when some sum leaves the safe range: the caller
  // then uses the max-shifted log-domain passes.
  // With a plan product requested, the same pass also gives P Y at (f, g) (product_at), and
  // with the value requested <P, C> (value_at).
  bool exact_ratios(const double* f, const double* g, const double* a, const double* b, double eps,
                    double* r, double* c, int threads) {
    const index_t n = cost_.rows(), m = cost_.cols();
    const double inv_eps = 1.0 / eps;
    const index_t block = partial_block(n, kAxpyRows);
    const index_t blocks = n_blocks(n, block);
    std::vector<double> hg(m), partial(std::size_t(blocks) * std::size_t(m), 0.0);
    for (index_t j = 0; j < m; ++j) hg[j] = g[j] * inv_eps;
    const PlanProduct& p = product_;
    if (want_value_) value_rows_.assign(n, 0.0);
    for_blocks(n, block, threads, [&](index_t i0, index_t i1) {
      std::vector<double> e(std::size_t(detail::kProductRows) * std::size_t(m));
      double* acc = partial.data() + std::size_t(i0 / block) * std::size_t(m);
      for (index_t i = i0; i < i1; i += detail::kProductRows) {
        const index_t rows = std::min(detail::kProductRows, i1 - i);
        for (index_t t = 0; t < rows; ++t) {
          double* et = e.data() + t * m;
          const T* crow = cost_.matrix().row(i + t);
          gibbs_row(crow, hg.data(), f[i + t] * inv_eps, inv_eps, m, et);
          const double sum = row_dot(et, b, m);
          r[i + t] = in_safe_range(sum) ? std::log(sum) : kUnsafe;
          if (want_value_ && a[i + t] > 0.0)
            value_rows_[i + t] = a[i + t] * row_dot_cost(et, b, crow, m);
        }
        for (index_t g0 = 0; g0 < rows; g0 += kAxpyRows)
          accumulate_rows(e.data(), g0, std::min(rows, g0 + kAxpyRows), m, m, acc, a + i);
        if (p.out != nullptr)
          detail::rows_product(e.data(), rows, m, product_wy_.data(), p.d, a + i, p.out + i * p.d);
      }
    });
    reduce_columns(partial.data(), blocks, m, threads,
                   [&](index_t j0, index_t len, const double* sum) {
                     for (index_t t = 0; t < len; ++t)
                       c[j0 + t] = in_safe_range(sum[t]) ? std::log(sum[t]) : kUnsafe;
                   });
    const bool ok = all_finite(r, n) && all_finite(c, m);
    exact_f_.assign(f, f + n);
    exact_g_.assign(g, g + m);
    exact_eps_ = ok ? eps : 0.0;
    exact_product_ = ok && p.out != nullptr;
    if (ok && want_value_) {
      value_ = 0.0;
      for (double v : value_rows_) value_ += v;  // fixed order
    }
    return ok;
  }

  // exact_ratios also computes <P, C> (the driver reads it through value_at).
  void request_value(bool value) { want_value_ = value; }
  // The next fused row pass, expected to be the solve's last, also computes <P, C> at its
  // potentials (a double K; value_at then hands it out), reading C beside K.
  void value_in_pass(bool likely_last) { value_in_pass_ = likely_last; }
  // <P, C> at (f, g, eps) without an exp pass when one is at hand: from the last exact pass at
  // exactly these potentials, else from a double K at this eps while the scalings are within
  // the absorption bound (P_ij = a_i u_i K_ij v_j b_j: one read of K and C; the entries of K
  // that underflowed then carry below e^-300 of the plan). False when neither is.
  bool value_at(const double* f, const double* g, const double* a, const double* b, double eps,
                int threads, double& value) {
    if (want_value_ && exact_at(f, g, eps)) {
      value = value_;
      return true;
    }
    if (pass_eps_ == eps && pass_eps_ != 0.0 && std::equal(pass_f_.begin(), pass_f_.end(), f) &&
        std::equal(pass_g_.begin(), pass_g_.end(), g)) {
      value = pass_value_;
      return true;
    }
    if (single_ || pending_ || eps_ != eps || k_.data() == nullptr || far(f, g)) return false;
    const index_t n = cost_.rows(), m = cost_.cols();
    const double inv_eps = 1.0 / eps;
    std::vector<double> vb(m), per_row(n, 0.0);
    for (index_t j = 0; j < m; ++j) vb[j] = b[j] * std::exp((g[j] - beta_[j]) * inv_eps);
    const double* k = k_.data();
    for_blocks(n, kRowBlock, threads, [&](index_t i0, index_t i1) {
      for (index_t i = i0; i < i1; ++i)
        if (a[i] > 0.0)
          per_row[i] = a[i] * std::exp((f[i] - alpha_[i]) * inv_eps) *
                       row_dot_cost(k + i * m, vb.data(), cost_.matrix().row(i), m);
    });
    double total = 0.0;
    for (double v : per_row) total += v;
    if (!std::isfinite(total)) return false;
    value = total;
    return true;
  }

  // Asks exact_ratios for P Y (b: the column weights); only a float kernel runs that pass.
  void request_product(const PlanProduct& p, const double* b) {
    product_ = p;
    product_wy_ = detail::weighted_rows(p, b, cost_.cols());
  }
  // True when the last exact pass wrote P Y at exactly these potentials and eps.
  bool product_at(const double* f, const double* g, double eps) const {
    return exact_product_ && exact_at(f, g, eps);
  }

  // P Y from a double K, no exp: P_ij = a_i u_i K_ij v_j b_j with u_i = exp((f_i - alpha_i) /
  // eps), v_j = exp((g_j - beta_j) / eps). False (nothing written that counts) without a
  // requested product, on a float or stale K, when the scalings are past the absorption bound
  // (the entries of K that underflowed could then carry mass: as value_at), or when the result
  // is not finite.
  bool kernel_product(const double* f, const double* g, const double* a, double eps, int threads) {
    const PlanProduct& p = product_;
    if (p.out == nullptr || single_ || pending_ || eps_ != eps || k_.data() == nullptr ||
        far(f, g))
      return false;
    const index_t n = cost_.rows(), m = cost_.cols();
    const double inv_eps = 1.0 / eps;
    std::vector<double> wy(product_wy_), au(n);
    for (index_t j = 0; j < m; ++j) {
      const double v = std::exp((g[j] - beta_[j]) * inv_eps);
      for (index_t k = 0; k < p.d; ++k) wy[j * p.d + k] *= v;
    }
    for (index_t i = 0; i < n; ++i) au[i] = a[i] * std::exp((f[i] - alpha_[i]) * inv_eps);
    const double* k = k_.data();
    for_blocks(n, kRowBlock, threads, [&](index_t i0, index_t i1) {
      for (index_t i = i0; i < i1; i += detail::kProductRows)
        detail::rows_product(k + i * m, std::min(detail::kProductRows, i1 - i), m, wy.data(), p.d,
                             au.data() + i, p.out + i * p.d);
    });
    return all_finite(p.out, n * p.d);
  }

  // Absorbs when the scalings have drifted too far from the stored kernel.
  void maybe_absorb(const double* f, const double* g, int threads) {
    if (far(f, g)) rebuild(f, g, eps_, threads);
  }

  // out_i = log((P 1)_i / a_i); false when some row's product under- or overflowed. With
  // `next` (and n >= kFusedMinRows), the same read of K also writes next->f_next and the column
  // ratios at it, which fused_col_log_ratio then hands out.
  bool row_log_ratio(const double* f, const double* g, const double* logb, double* out, int threads,
                     const RowUpdate* next = nullptr) {
    return single_ ? row_pass(k32_.data(), f, g, logb, out, threads, next)
                   : row_pass(k_.data(), f, g, logb, out, threads, next);
  }

  // True when the last row_log_ratio computed the column ratios for this update.
  bool fused_for(const RowUpdate& next) const {
    return fused_ && fused_w_ == next.w && fused_k_ == next.k;
  }

  // out_j = log((P^T 1)_j / b_j) at (next->f_next, g) from the last row_log_ratio; false
  // (nothing usable) without them or when some column under- or overflowed.
  bool fused_col_log_ratio(double* out) {
    if (!fused_) return false;
    fused_ = false;
    std::copy(cols_.begin(), cols_.end(), out);
    return cols_ok_;
  }

  // out_j = log((P^T 1)_j / b_j); false when some column's product under- or overflowed.
  bool col_log_ratio(const double* f, const double* g, const double* loga, double* out,
                     int threads) {
    return single_ ? col_pass(k32_.data(), f, g, loga, out, threads)
                   : col_pass(k_.data(), f, g, loga, out, threads);
  }

 private:
  template <class K>
  bool row_pass(const K* k, const double* f, const double* g, const double* logb, double* out,
                int threads, const RowUpdate* next) {
    const index_t n = cost_.rows(), m = cost_.cols();
    const double inv_eps = 1.0 / eps_;
    scalings(logb, g, beta_.data(), inv_eps, m, v_.data());
    fused_ = false;
    if (next != nullptr && n >= kFusedMinRows) {
      // Row i's ratio, its updated f_i and u_i, and u_i K_i into the block's column sums (the
      // blocks of col_pass, reduced in the same order) while K_i is in cache; then the column
      // ratios at the updated f in the same parallel region.
      // A pending double K is written here, row by row; the rows' shares of <P, C> are added
      // when the driver expects this pass to be the last (value_in_pass).
      const RowUpdate& up = *next;
      double* build = pending_ ? k_.data() : nullptr;
      const bool value = value_in_pass_ && want_value_ && !single_;
      if (value) value_rows_.resize(n);
      cols_.resize(m);
      cols_ok_ = streamed_columns(g, cols_.data(), threads,
                                  [&](index_t i0, index_t i1, double* acc) {
                                    fused_rows(k, i0, i1, f, up, out, acc, build,
                                               value ? value_rows_.data() : nullptr);
                                  });
      pending_ = false;
      fused_ = all_finite(out, n);
      fused_w_ = up.w;
      fused_k_ = up.k;
      pass_eps_ = 0.0;
      if (value && fused_) {
        // <P, C> = sum_i a_i exp((f_i - alpha_i) / eps) sum_j K_ij v_j C_ij, rows in order.
        std::vector<double> au(n);
        scalings(up.loga, f, alpha_.data(), inv_eps, n, au.data());
        double total = 0.0;
        for (index_t i = 0; i < n; ++i) total += au[i] > 0.0 ? au[i] * value_rows_[i] : 0.0;
        if (std::isfinite(total)) {
          pass_value_ = total;
          pass_eps_ = eps_;
          pass_f_.assign(f, f + n);
          pass_g_.assign(g, g + m);
        }
      }
      return fused_;
    }
    ensure_built(threads);
    for_blocks(n, kRowBlock, threads, [&](index_t i0, index_t i1) {
      for (index_t i = i0; i < i1; ++i) out[i] = row_dot(k + i * m, v_.data(), m);
      ratio_logs(out + i0, f + i0, alpha_.data() + i0, inv_eps, i1 - i0, out + i0);
    });
    return all_finite(out, n);
  }

  // Rows [i0, i1) of the fused row pass (one block), in groups of kAxpyRows from i0: a group's
  // products (K v)_i, then its ratios, updated f and scalings u (row_updates), and its column
  // sums u_i K_ij into acc during the sweep that reads the next group's products
  // (dot_axpy_rows); the last group's column sums as col_pass adds them (accumulate_rows).
  // `build` (a pending double K): each group's rows of K are written first (build_row), then
  // read from cache. `costs` (when not null): costs_i = sum_j K_ij v_j C_ij as well.
  template <class K>
  void fused_rows(const K* k, index_t i0, index_t i1, const double* f, const RowUpdate& up,
                  double* out, double* acc, double* build, double* costs) {
    const index_t m = cost_.cols();
    const double inv_eps = 1.0 / eps_;
    const K* cur[kAxpyRows];
    const K* next[kAxpyRows];
    const T* crow[kAxpyRows];
    double u[kAxpyRows] = {}, s[kAxpyRows], sc[kAxpyRows];  // u: 0 for the first sweep
    bool first = true;
    index_t last = i1;
    for (index_t g0 = i0; g0 < i1; g0 += kAxpyRows) {
      const index_t rows = std::min(kAxpyRows, i1 - g0);
      if (build != nullptr)
        for (index_t i = g0; i < g0 + rows; ++i) build_row(i, build + i * m);
      for (index_t t = 0; t < kAxpyRows; ++t) next[t] = k + (g0 + std::min(t, rows - 1)) * m;
      if (costs != nullptr) {
        for (index_t t = 0; t < kAxpyRows; ++t)
          crow[t] = cost_.matrix().row(g0 + std::min(t, rows - 1));
        dot_axpy_rows(next, v_.data(), first ? next : cur, u, m, acc, s, crow, sc);
        std::copy(sc, sc + rows, costs + g0);
      } else {
        dot_axpy_rows(next, v_.data(), first ? next : cur, u, m, acc, s);
      }
      row_updates(s, f + g0, alpha_.data() + g0, up.loga + g0, inv_eps, up, rows, out + g0,
                  up.f_next + g0, u_.data() + g0);
      for (index_t t = 0; t < kAxpyRows; ++t) {
        cur[t] = next[t];
        u[t] = t < rows ? u_[g0 + t] : 0.0;
      }
      first = false;
      last = g0;
    }
    accumulate_rows(k, last, i1, m, m, acc);  // the last group's column sums
  }

  // out_j = log((K^T (a .* u))_j) + (g_j - beta_j) / eps.
  template <class K>
  bool col_pass(const K* k, const double* f, const double* g, const double* loga, double* out,
                int threads) {
    const index_t n = cost_.rows(), m = cost_.cols();
    const double inv_eps = 1.0 / eps_;
    fused_ = false;
    ensure_built(threads);
    scalings(loga, f, alpha_.data(), inv_eps, n, u_.data());
    if (n < kFusedMinRows) {  // few rows: column blocks keep every thread busy
      for_blocks(m, kColBlock, threads, [&](index_t j0, index_t j1) {
        const index_t len = j1 - j0;
        double acc[kColBlock] = {};
        for (index_t i = 0; i < n; ++i)
          if (u_[i] != 0.0) col_axpy(k + i * m + j0, u_[i], len, acc);
        ratio_logs(acc, g + j0, beta_.data() + j0, inv_eps, len, out + j0);
      });
      return all_finite(out, m);
    }
    // K streamed by rows (column blocks stride through it: measured 2.4x slower than the row
    // pass at n = m = 2000).
    return streamed_columns(g, out, threads, [&](index_t i0, index_t i1, double* acc) {
      for (index_t g0 = i0; g0 < i1; g0 += kAxpyRows)
        accumulate_rows(k, g0, std::min(i1, g0 + kAxpyRows), m, m, acc);
    });
  }

  // The column ratios out_j = (g_j - beta_j) / eps + log(sum_i u_i K_ij) with K streamed by
  // rows: rows(i0, i1, acc) adds the terms of the fixed row block [i0, i1) to the block's zeroed
  // partial sums acc (m of them); the partial sums are then added in block order, column blocks
  // over the threads, in the same parallel region (one wake-up). The same sums for any thread
  // count. False when some column's sum under- or overflowed.
  template <class Rows>
  bool streamed_columns(const double* g, double* out, int threads, Rows&& rows) {
    const index_t n = cost_.rows(), m = cost_.cols();
    const index_t block = partial_block(n, kAxpyRows), blocks = n_blocks(n, block);
    const double inv_eps = 1.0 / eps_;
    partial_.resize(std::size_t(blocks) * std::size_t(m));
    parallel_for_then(
        blocks, n_blocks(m, kColBlock), threads,
        [&](index_t t) {
          double* acc = partial_.data() + std::size_t(t) * std::size_t(m);
          std::fill(acc, acc + m, 0.0);
          rows(t * block, std::min(n, (t + 1) * block), acc);
        },
        [&](index_t c) {
          const index_t j0 = c * kColBlock, len = std::min(m - j0, kColBlock);
          double sum[kColBlock];
          sum_rows(partial_.data() + j0, blocks, m, len, sum);
          ratio_logs(sum, g + j0, beta_.data() + j0, inv_eps, len, out + j0);
        });
    return all_finite(out, m);
  }

  // Row i of K at the stored potentials: out_j = exp((alpha_i + beta_j - C_ij) / eps).
  void build_row(index_t i, double* out) const {
    const double inv_eps = 1.0 / eps_;
    gibbs_row(cost_.matrix().row(i), hb_.data(), alpha_[i] * inv_eps, inv_eps, cost_.cols(), out);
  }

  // Rounds a row to float, entries below kSingleFlush of the row's largest to 0 (measured on
  // uniform clouds at range(C) / eps up to 160: they carry < 1e-20 of the converged plan's mass;
  // the exact confirmation pass measures the true error anyway). True when every kept entry is
  // a normal float (rounding relative 2^-24) with room for the scalings.
  static bool round_row(const double* row, index_t len, float* out) {
    const double hi = row_max(row, len), floor = hi * kSingleFlush;
    if (!(floor >= kSingleLow && hi <= kSingleHigh)) return false;  // also NaN
    round_to_float(row, len, floor, out);
    return true;
  }
  // acc_t += sum_i u_i k_(i ld + t) for t < len over the rows [g0, g1) of one group (g1 - g0
  // <= kAxpyRows, groups at fixed offsets of fixed blocks): a full group in one pass over acc,
  // zero u_i included (their terms are 0), a short one row by row. The same sums for any
  // thread count and any split of the columns. u: the row weights (default u_).
  template <class K>
  void accumulate_rows(const K* k, index_t g0, index_t g1, index_t ld, index_t len, double* acc,
                       const double* u = nullptr) const {
    if (u == nullptr) u = u_.data();
    if (g1 - g0 == kAxpyRows) {
      col_axpy_rows(k + g0 * ld, ld, u + g0, len, acc);
      return;
    }
    for (index_t i = g0; i < g1; ++i)
      if (u[i] != 0.0) col_axpy(k + i * ld, u[i], len, acc);
  }
  static constexpr double kSingleLow = 1e-36, kSingleHigh = 1e30, kSingleFlush = 1e-30;
  static constexpr double kUnsafe = std::numeric_limits<double>::infinity();

  // True when some potential is more than absorb_ eps from the one K was built at.
  bool far(const double* f, const double* g) const {
    const double limit = absorb_ * eps_;
    return max_abs_diff(f, alpha_.data(), cost_.rows()) > limit ||
           max_abs_diff(g, beta_.data(), cost_.cols()) > limit;
  }

  bool exact_at(const double* f, const double* g, double eps) const {
    return exact_eps_ == eps && exact_f_.size() == std::size_t(cost_.rows()) &&
           std::equal(exact_f_.begin(), exact_f_.end(), f) &&
           std::equal(exact_g_.begin(), exact_g_.end(), g);
  }

  static bool all_finite(const double* x, index_t len) {
    for (index_t t = 0; t < len; ++t)
      if (!std::isfinite(x[t])) return false;
    return true;
  }

  const DenseCost<T>& cost_;
  double absorb_;
  bool single_;
  double eps_ = 0.0;
  bool fused_ = false;  // cols_ holds the column ratios at the last row pass's update
  double fused_w_ = 1.0, fused_k_ = 1.0;
  ScratchBuffer<double> k_;   // double K: no accuracy floor near 1e-7
  ScratchBuffer<float> k32_;  // float K (single_): half the bytes per product
  std::vector<double> alpha_, beta_, u_, v_;
  std::vector<double> partial_;                // per-block column sums (col_pass, fused)
  std::vector<double> cols_;                   // the fused pass's column ratios ...
  bool cols_ok_ = false;                       // ... all finite
  std::vector<double> hb_;                     // beta / eps
  bool pending_ = false;                       // k_ is to be written (rebuild)
  bool value_in_pass_ = false;                 // the next fused pass adds <P, C> ...
  double pass_value_ = 0.0, pass_eps_ = 0.0;   // ... here, at eps (0: none) and
  std::vector<double> pass_f_, pass_g_;        // these potentials
  PlanProduct product_;                        // requested P Y (out null: none)
  std::vector<double> product_wy_;             // Y's rows weighted by b, m x d
  std::vector<double> exact_f_, exact_g_;      // the potentials of the last exact pass
  double exact_eps_ = 0.0;                     // its eps (0: it failed)
  bool exact_product_ = false;                 // it wrote P Y
  bool want_value_ = false;                    // it computes <P, C> ...
  double value_ = 0.0;                         // ... here
  std::vector<double> value_rows_;
};

// ---------------------------------------------------------------------------------------------
// The driver.

enum class Method : int { Auto = 0, Log = 1, Scaling = 2 };

constexpr double kInf = std::numeric_limits<double>::infinity();

struct Options {
  double eps = 1.0;
  double tol = 1e-6;
  index_t max_iter = 10000;
  double eps_scaling = 0.0;  // annealing factor q in (0, 1); 0 = a single stage at eps
  double eps_start = 0.0;    // first eps of the schedule (the cost's range)
  Method method = Method::Auto;
  bool overrelax = true;  // adaptive over-relaxation (balanced problems only)
  double tau_a = kInf;    // KL marginal penalties; inf = hard constraint (balanced)
  double tau_b = kInf;
  double cost_range = 0.0;     // max C - min C (or a bound): decides the domain per stage
  double scaling_limit = 0.0;  // auto's scaling domain: cold stages with cost_range / eps <= this
  int threads = 0;
  bool value = true;  // compute Result::value (<P, C>, one exp pass); NaN when false
};

struct Result {
  Status status = Status::MaxIter;
  index_t n_iter = 0;
  double marginal_error = kInf;
  double value = 0.0;      // <P, C>
  double objective = 0.0;  // balanced: the dual value; unbalanced: the primal objective
};

// Intermediate eps-scaling stages only need a warm start for the next one (measured on
// uniform clouds: tighter or longer stages do not shorten the final stage).
constexpr double kStageTol = 1e-1;
constexpr index_t kStageMaxIter = 10;
// Auto picks the scaling domain while range(C) / eps keeps exp(-C / eps) representable in the
// double-precision kernel from a cold start; potentials are absorbed past kAbsorbLimit.
constexpr double kScalingRangeLimit = 500.0;
constexpr double kAbsorbLimit = 200.0;
// The scaling-domain kernel is stored in float when tol >= kSingleTol (float's rounding leaves
// a true marginal error far below it; convergence is confirmed exactly anyway) and range(C) /
// eps <= kSingleRangeLimit (a row keeps its entries down to 1e-30 of its largest, normal floats
// around the potentials K is built at; the dropped ones carry a negligible share of the plan),
// on kernels of at least kSingleMinEntries: a double K below 16 MiB stays in cache, the products
// are not memory bound and the exact confirmation pass costs more than the float kernel saves
// (measured on warm inverse-OT solves of about 4 iterations: n = 500 slower, n = 2000 faster).
constexpr double kSingleTol = 1e-7;
constexpr double kSingleRangeLimit = 100.0;
constexpr index_t kSingleMinEntries = index_t(1) << 21;
// (Measured with one read of K per iteration: a float kernel on cold n = 1000 solves was 0.86x
// at eps = 0.1 and 1.02x at eps = 0.01, so 2^21 stays.)
// Sinkhorn-Newton-Sparse: entered once the error is below kNewtonStart and the observed rate
// predicts more than kNewtonMinGain further iterations. The line search makes Newton safe from
// any start; measured on uniform clouds at eps = 1e-3, starting at err <= 1 takes 22 iterations
// where starting at 1e-2 takes 616. Newton needs the kept entries to carry 99% of the mass (90%
// crawls on clustered data), at most kNewtonMaxK per row.
constexpr double kNewtonStart = 1e0;
constexpr double kNewtonMinGain = 20.0;
constexpr index_t kNewtonMaxK = 256;
// Above kNewtonWideRows rows (online clouds) a row keeps a quarter of that: the candidates'
// memory stays that of the top-128 plan before (n 128 entries of index and value).
constexpr index_t kNewtonWideRows = 16384;
// Where the levels keep fewer than kNewtonThinRow entries a row on average (near-permutation
// plans, d = 64 at eps = 1e-3: about 2), the plan's graph falls apart and Newton crawls; the
// Hessian then keeps the k largest entries of every row instead, k the smallest of kNewtonTopK,
// 2 kNewtonTopK, ..., kNewtonTopMaxK that covers the mass (one pass over the plan and a
// selection per step, the line search's passes without candidates).
constexpr double kNewtonThinRow = 8.0;
constexpr index_t kNewtonTopK = 16;
// Below kNewtonLevelCols columns the top-k plan keeps most of each row anyway and is cheap: the
// levels are not used (small problems at tight tolerances, e.g. n = 30 at tol 1e-12, stalled
// with them).
constexpr index_t kNewtonLevelCols = 256;
constexpr index_t kNewtonTopMaxK = 128;
constexpr double kNewtonCoverage = 0.99;
// The kept entries of a row are those within a factor kNewtonLevels[l] of the row's largest, l
// the first level whose entries carry kNewtonCoverage of the mass: a variable number per row,
// gathered in the exp pass that also gives the row ratios (the line search's), no selection.
constexpr int kNewtonNumLevels = 4;
constexpr double kNewtonLevels[kNewtonNumLevels] = {1e-2, 1e-3, 1e-4, 1e-6};
// Where every row's entries within kSupportFloor of its largest are at most kNewtonMaxK and
// fill at most kSparseFill of the plan, Newton's steps run on that support alone (O(nnz) a
// step, no exp pass over C; the entries left out carry below m 1e-12 of the plan); a dense exact
// pass confirms the error once the support's error is below kSparseCheck tol, and rebuilds the
// support at most kSparseRebuilds times when it fails.
constexpr double kSupportFloor = 1e-12;
// The last stage of an annealed schedule tries Newton after kNewtonEagerAfter iterations.
constexpr index_t kNewtonEagerAfter = 2;
constexpr double kSparseFill = 0.25;
constexpr double kSparseCheck = 0.5;
constexpr int kSparseRebuilds = 3;
constexpr index_t kNewtonCgIter = 300;
// The Newton system is solved by elimination (exact, O(s^3), s = min(n, m)) up to
// kNewtonDirect, and there too when CG fails, up to kNewtonDirectMax: a near-permutation plan
// (translations, eps far below the nearest-neighbour cost) spans many orders of magnitude and
// CG stalls on it, handing back to a Sinkhorn that crawls (measured on translated Gaussian
// clouds, n = 100, eps = 0.01: > 10000 iterations).
constexpr index_t kNewtonDirect = 256;
constexpr index_t kNewtonDirectMax = 1024;
// The Newton system's ridge relative to its largest diagonal entry: kNewtonRidge, raised by
// kNewtonDampingFactor up to kNewtonMaxDamping while the line search finds no step of at least
// kNewtonMinStep.
constexpr double kNewtonRidge = 1e-10;
constexpr double kNewtonDampingFactor = 10.0;
constexpr double kNewtonMaxDamping = 1e-1;
constexpr double kNewtonMinStep = 1.0 / 8;
// Sinkhorn iterations after a failed Newton attempt before the next (doubled after each).
constexpr index_t kNewtonRetry = 10;

namespace detail {

// The entropic problem's weights in the form the updates use.
struct Weights {
  const double* a;
  const double* b;
  index_t n, m;
  std::vector<double> loga, logb;
  double sum_a = 0.0, sum_b = 0.0;
  Weights(const double* a_, const double* b_, index_t n_, index_t m_)
      : a(a_), b(b_), n(n_), m(m_), loga(n_), logb(m_) {
    for (index_t i = 0; i < n; ++i) {
      loga[i] = a[i] > 0.0 ? std::log(a[i]) : kNegInf;
      sum_a += a[i];
    }
    for (index_t j = 0; j < m; ++j) {
      logb[j] = b[j] > 0.0 ? std::log(b[j]) : kNegInf;
      sum_b += b[j];
    }
  }
};

// sum_i w_i |exp(r_i) - 1| over the positive weights (a hard constraint's residual), with the
// ratio capped as in side_error.
PYOT_MULTIVERSION inline double balanced_error(const double* w, const double* r, index_t len) {
  double err = 0.0;
#pragma omp simd reduction(+ : err)
  for (index_t i = 0; i < len; ++i) {
    const double e = w[i] * std::fabs(exp_vec(std::min(r[i], 700.0)) - 1.0);
    err += w[i] > 0.0 ? e : 0.0;  // (a NaN ratio of a zero weight is ignored)
  }
  return err;
}

// KKT residual of one side: sum_i w_i |exp(r_i) - exp(-pot_i / tau)| (ALGORITHMS 2.7; the
// target ratio is 1 for a hard constraint). Zero weights contribute nothing.
inline double side_error(const double* w, const double* r, const double* pot, double tau,
                         index_t len) {
  if (tau == kInf) return balanced_error(w, r, len);
  double err = 0.0;
  for (index_t i = 0; i < len; ++i) {
    if (w[i] <= 0.0) continue;
    const double target = std::exp(-pot[i] / tau);
    // Capped so that a far-off start (huge ratios) gives a huge error, not inf.
    err += w[i] * std::fabs(std::exp(std::min(r[i], 700.0)) - target);
  }
  return err;
}

inline double mass_from_ratio(const double* w, const double* r, index_t len) {
  double s = 0.0;
  for (index_t i = 0; i < len; ++i)
    if (w[i] > 0.0) s += w[i] * std::exp(r[i]);
  return s;
}

inline double dot_masked(const double* w, const double* x, index_t len) {
  double s = 0.0;
  for (index_t i = 0; i < len; ++i)
    if (w[i] > 0.0) s += w[i] * x[i];
  return s;
}

// The plan cut to its large entries, row by row (CSR: row i's entries are
// [start[i], start[i + 1]) of idx and val, val the plan entries P_ij).
struct SparsePlan {
  std::vector<index_t> start, idx;
  std::vector<double> val;
};

// Candidates for the Newton Hessian's plan, gathered row by row in an exp pass (gather() from
// the row's values P_ij / a_i): the entries
// within the last of kNewtonLevels of the row's largest (the kNewtonMaxK largest of them where
// there are more), in column order, and the mass that each level keeps. select() then picks one
// level for the whole plan. gather() also keeps, where at most kNewtonMaxK are, every entry
// within kSupportFloor of the row's largest: support() hands them to the sparse solve.
class PlanRows {
 public:
  void resize(index_t n) {
    n_ = n;
    cap_ = n <= kNewtonWideRows ? kNewtonMaxK : kNewtonMaxK / 4;
    count_.resize(n);
    top_.resize(n);
    complete_.resize(n);
    idx_.resize(std::size_t(n) * cap_);
    val_.resize(std::size_t(n) * cap_);
    kept_.resize(std::size_t(n) * kNewtonNumLevels);
  }

  // Row i from v[0..m) = P_ij / a_i, their largest `top` and the row's weight a = a_i.
  void gather(index_t i, const double* v, index_t m, double top, double a,
              std::vector<index_t>& scratch) {
    index_t* idx = idx_.data() + std::size_t(i) * cap_;
    double* val = val_.data() + std::size_t(i) * cap_;
    index_t c = collect(v, m, top * kSupportFloor, idx);
    complete_[i] = c <= cap_;
    if (c > cap_) c = collect(v, m, top * kNewtonLevels[kNewtonNumLevels - 1], idx);
    if (c > cap_) {  // more candidates than room: the largest, ties by index
      const double floor = top * kNewtonLevels[kNewtonNumLevels - 1];
      scratch.clear();
      for (index_t j = 0; j < m; ++j)
        if (v[j] >= floor && v[j] > 0.0) scratch.push_back(j);
      const auto larger = [v](index_t x, index_t y) {
        return v[x] > v[y] || (v[x] == v[y] && x < y);
      };
      std::nth_element(scratch.begin(), scratch.begin() + (cap_ - 1), scratch.end(),
                       larger);
      std::sort(scratch.begin(), scratch.begin() + cap_);
      std::copy(scratch.begin(), scratch.begin() + cap_, idx);
      c = cap_;
    }
    for (index_t t = 0; t < c; ++t) val[t] = v[idx[t]];
    finish_row(i, c, a);
  }

  // The plan at the first level whose entries carry `needed` mass; false when none does.
  bool select(double needed, SparsePlan& plan) const {
    double total[kNewtonNumLevels] = {};
    for (index_t i = 0; i < n_; ++i)
      for (int l = 0; l < kNewtonNumLevels; ++l)
        total[l] += kept_[std::size_t(i) * kNewtonNumLevels + l];
    int level = 0;
    while (level < kNewtonNumLevels && !(total[level] >= needed)) ++level;
    if (level == kNewtonNumLevels) return false;
    write(level, plan);
    return true;
  }

  // Every gathered entry (the support of a sparse solve); false when some row had more than
  // kNewtonMaxK within kSupportFloor of its largest.
  bool support(SparsePlan& plan) const {
    if (std::find(complete_.begin(), complete_.end(), 0) != complete_.end()) return false;
    write(-1, plan);
    return true;
  }

 private:
  // The entries of v at or above floor (> 0): their count, and their indices when at most
  // kNewtonMaxK.
  index_t collect(const double* v, index_t m, double floor, index_t* idx) const {
    floor = std::max(floor, std::numeric_limits<double>::min());
    index_t c = 0;
#pragma omp simd reduction(+ : c)
    for (index_t j = 0; j < m; ++j) c += v[j] >= floor ? 1 : 0;
    if (c > cap_) return c;
    index_t t = 0;
    for (index_t j = 0; j < m; ++j)
      if (v[j] >= floor) idx[t++] = j;
    return c;
  }

  // val[0..c) of row i scaled by a; its largest and the mass each level keeps.
  void finish_row(index_t i, index_t c, double a) {
    double* val = val_.data() + std::size_t(i) * cap_;
    double* kept = kept_.data() + std::size_t(i) * kNewtonNumLevels;
    std::fill(kept, kept + kNewtonNumLevels, 0.0);
    double top = 0.0;
    for (index_t t = 0; t < c; ++t) {
      val[t] *= a;
      top = std::max(top, val[t]);
    }
    top_[i] = top;
    for (index_t t = 0; t < c; ++t)
      for (int l = 0; l < kNewtonNumLevels; ++l)
        if (val[t] >= top * kNewtonLevels[l]) kept[l] += val[t];
    count_[i] = c;
  }

  // The entries at `level` (every positive one for -1) in CSR form.
  void write(int level, SparsePlan& plan) const {
    plan.start.assign(1, 0);
    plan.idx.clear();
    plan.val.clear();
    for (index_t i = 0; i < n_; ++i) {
      const double floor = level < 0 ? 0.0 : top_[i] * kNewtonLevels[level];
      const std::size_t base = std::size_t(i) * cap_;
      for (index_t t = 0; t < count_[i]; ++t)
        if (val_[base + t] >= floor && val_[base + t] > 0.0) {
          plan.idx.push_back(idx_[base + t]);
          plan.val.push_back(val_[base + t]);
        }
      plan.start.push_back(index_t(plan.idx.size()));
    }
  }

  index_t n_ = 0, cap_ = kNewtonMaxK;  // rows, room per row
  std::vector<index_t> count_, idx_;
  std::vector<double> top_, val_, kept_;
  std::vector<char> complete_;
};

// The Hessian of the entropic dual up to -1/eps, with P cut to its large entries per row:
// M = [[diag(Ps 1), Ps], [Ps^T, diag(Ps^T 1)]], the Laplacian of the sparse plan's bipartite
// graph. Its diagonal is that of the kept entries, not the exact marginals, so that it keeps the
// (1, -1) null direction of the true Hessian: with the exact diagonal the dropped mass makes the
// slow modes (mass moving between clusters) stiff and Newton crawls (measured on two moons:
// 583 against 30 iterations). Solves (M + ridge) d = rhs by Jacobi-preconditioned conjugate
// gradients to a relative residual `rtol`.
class SparseHessian {
 public:
  // `damping`: the ridge relative to the largest diagonal entry.
  SparseHessian(index_t n, index_t m, const SparsePlan& plan, double damping)
      : n_(n), m_(m), p_(plan), row_(n, 0.0), col_(m, 0.0) {
    for (index_t i = 0; i < n; ++i)
      for (index_t e = p_.start[i]; e < p_.start[i + 1]; ++e) {
        row_[i] += p_.val[e];
        col_[p_.idx[e]] += p_.val[e];
      }
    double scale = 0.0;
    for (double v : row_) scale = std::max(scale, v);
    for (double v : col_) scale = std::max(scale, v);
    ridge_ = damping * scale + 1e-300;
  }

  void apply(const double* x, double* y) const {
    const double* xg = x + n_;
    double* yg = y + n_;
    for (index_t j = 0; j < m_; ++j) yg[j] = (col_[j] + ridge_) * xg[j];
    for (index_t i = 0; i < n_; ++i) {
      double acc = (row_[i] + ridge_) * x[i];
      for (index_t e = p_.start[i]; e < p_.start[i + 1]; ++e) {
        const index_t j = p_.idx[e];
        const double p = p_.val[e];
        acc += p * xg[j];
        yg[j] += p * x[i];
      }
      y[i] = acc;
    }
  }

  // True when CG reached the relative residual rtol within max_iter iterations.
  bool solve(const double* rhs, double* d, double rtol, index_t max_iter) const {
    const index_t len = n_ + m_;
    std::vector<double> r(rhs, rhs + len), z(len), p(len), q(len), inv_diag(len);
    for (index_t i = 0; i < n_; ++i) inv_diag[i] = 1.0 / (row_[i] + ridge_);
    for (index_t j = 0; j < m_; ++j) inv_diag[n_ + j] = 1.0 / (col_[j] + ridge_);
    std::fill(d, d + len, 0.0);
    double rhs_norm = 0.0, rz = 0.0;
    for (index_t t = 0; t < len; ++t) {
      rhs_norm += rhs[t] * rhs[t];
      z[t] = inv_diag[t] * r[t];
      p[t] = z[t];
      rz += r[t] * z[t];
    }
    const double stop = rtol * rtol * rhs_norm;
    for (index_t it = 0; it < max_iter; ++it) {
      double rr = 0.0;
      for (index_t t = 0; t < len; ++t) rr += r[t] * r[t];
      if (rr <= stop || rz <= 0.0) return true;
      apply(p.data(), q.data());
      double pq = 0.0;
      for (index_t t = 0; t < len; ++t) pq += p[t] * q[t];
      if (!(pq > 0.0)) break;
      const double alpha = rz / pq;
      double rz_new = 0.0;
      for (index_t t = 0; t < len; ++t) {
        d[t] += alpha * p[t];
        r[t] -= alpha * q[t];
        z[t] = inv_diag[t] * r[t];
        rz_new += r[t] * z[t];
      }
      const double beta = rz_new / rz;
      rz = rz_new;
      for (index_t t = 0; t < len; ++t) p[t] = z[t] + beta * p[t];
    }
    double rr = 0.0;
    for (index_t t = 0; t < len; ++t) rr += r[t] * r[t];
    return rr <= stop;
  }

  // Solves M d = rhs exactly by elimination: with d = (x, -y) the system is the Laplacian of
  // the bipartite graph weighted by the kept entries, whose nodes of the larger side are
  // eliminated first (no fill among them: each adds a clique of its neighbours to a dense
  // Laplacian on the smaller side), then the dense one in the GTH manner [Grassmann 1985]:
  // every pivot is recomputed as the sum of the remaining off-diagonal weights, so no
  // subtraction ever occurs and the entries keep full relative accuracy however widely the
  // plan's entries range (a near-permutation plan spans 1e-30 and more, where CG stalls). The
  // ridge, an edge from every node to a ground node, fixes the (1, -1) null direction and
  // bounds the step on modes whose curvature is below the gradient's rounding (they carry a
  // marginal error of the ridge's order, far below any tolerance).
  // O(nnz k + s^3) time and s^2 memory, s = min(n, m).
  void solve_direct(const double* rhs, double* d) const {
    const bool rows_big = n_ >= m_;
    const index_t big = rows_big ? n_ : m_, small = rows_big ? m_ : n_;
    const index_t off_big = rows_big ? 0 : n_, off_small = rows_big ? n_ : 0;
    const double sign_big = rows_big ? 1.0 : -1.0;  // the Laplacian's unknowns are (x, -y)
    // The big side's adjacency (node -> small-side neighbours, weights) in CSR form.
    const index_t nnz = index_t(p_.idx.size());
    std::vector<index_t> start(big + 1, 0), nbr(nnz);
    std::vector<double> wt(nnz);
    if (rows_big) {
      start = p_.start;
      nbr = p_.idx;
      wt = p_.val;
    } else {
      for (index_t e = 0; e < nnz; ++e) ++start[p_.idx[e] + 1];
      for (index_t j = 0; j < m_; ++j) start[j + 1] += start[j];
      std::vector<index_t> fill(start.begin(), start.end() - 1);
      for (index_t i = 0; i < n_; ++i)
        for (index_t t = p_.start[i]; t < p_.start[i + 1]; ++t) {
          const index_t e = fill[p_.idx[t]]++;
          nbr[e] = i;
          wt[e] = p_.val[t];
        }
    }
    // Eliminate the big side: W (dense, small x small) and the small side's right-hand side.
    // The ridge is an edge to a ground node that is never eliminated (weight ground[s]).
    std::vector<double> w(std::size_t(small) * std::size_t(small), 0.0), r(small), pivot(big);
    std::vector<double> ground(small, ridge_);
    for (index_t s = 0; s < small; ++s) r[s] = sign_big * -rhs[off_small + s];
    for (index_t v = 0; v < big; ++v) {
      double dv = ridge_;
      for (index_t e = start[v]; e < start[v + 1]; ++e) dv += wt[e];
      pivot[v] = dv;
      const double rv = sign_big * rhs[off_big + v] / dv;
      for (index_t e = start[v]; e < start[v + 1]; ++e) {
        const index_t s1 = nbr[e];
        const double c = wt[e] / dv;
        r[s1] += wt[e] * rv;
        ground[s1] += c * ridge_;
        for (index_t q = start[v]; q < start[v + 1]; ++q)
          if (nbr[q] != s1) w[std::size_t(s1) * small + nbr[q]] += c * wt[q];
      }
    }
    // GTH elimination of the dense Laplacian, then back substitution.
    std::vector<double> piv(small), x(small, 0.0);
    for (index_t k = 0; k < small; ++k) {
      double* wk = w.data() + std::size_t(k) * small;
      double dk = ground[k];
      for (index_t j = k + 1; j < small; ++j) dk += wk[j];
      piv[k] = dk;
      const double rk = r[k] / dk;
      for (index_t i = k + 1; i < small; ++i) {
        const double wik = wk[i];  // symmetric: W_ik = W_ki
        if (wik == 0.0) continue;
        r[i] += wik * rk;
        ground[i] += wik * ground[k] / dk;
        double* wi = w.data() + std::size_t(i) * small;
        const double c = wik / dk;
#pragma omp simd
        for (index_t j = k + 1; j < small; ++j) wi[j] += c * wk[j];
        wi[i] = 0.0;  // no self-loop: pivots are sums of off-diagonal weights
      }
    }
    for (index_t k = small - 1; k >= 0; --k) {
      const double* wk = w.data() + std::size_t(k) * small;
      double acc = r[k];
      for (index_t j = k + 1; j < small; ++j) acc += wk[j] * x[j];
      x[k] = acc / piv[k];
    }
    for (index_t s = 0; s < small; ++s) d[off_small + s] = -sign_big * x[s];
    for (index_t v = 0; v < big; ++v) {
      double acc = sign_big * rhs[off_big + v];
      for (index_t e = start[v]; e < start[v + 1]; ++e) acc += wt[e] * x[nbr[e]];
      d[off_big + v] = sign_big * acc / pivot[v];
    }
  }

 private:
  index_t n_, m_;
  const SparsePlan& p_;
  std::vector<double> row_, col_;
  double ridge_;
};

inline double kl(const double* p, const double* q, index_t len) {
  double s = 0.0;
  for (index_t i = 0; i < len; ++i) {
    if (p[i] > 0.0) s += p[i] * std::log(p[i] / q[i]);
    s += q[i] - p[i];
  }
  return s;
}

}  // namespace detail

// Adapts a cost kernel (h, s interface) to potentials: the log-domain half-steps.
// With `float_lanes` and a float cost the half-steps run the exp in float lanes (about twice the
// throughput, ratios accurate to ~1e-7): approximate() is then true and the caller confirms
// convergence after set_exact() (the double-lane passes, exact as with a double cost).
// Solvers ask for float lanes only when tol >= kFloatLaneTol: the float-lane error estimate has
// a floor near 1e-7 (measured 1.0e-7 at n = 400, eps = 0.01), so a smaller tol would never be
// reported as reached.
constexpr double kFloatLaneTol = 1e-6;
template <class Kernel>
class LogDomain {
 public:
  LogDomain(const Kernel& k, const detail::Weights& w, bool float_lanes = false)
      : k_(k),
        w_(w),
        h_(std::max(w.n, w.m)),
        s_(std::max(w.n, w.m)),
        float_lanes_(float_lanes && std::is_same<typename Kernel::value_type, float>::value) {}
  // True while the half-steps run in float lanes.
  bool approximate() const { return float_lanes_; }
  // Double lanes from here on (returns whether float lanes were on, for restore()).
  bool set_exact() { return std::exchange(float_lanes_, false); }
  void restore(bool float_lanes) { float_lanes_ = float_lanes; }
  // With `next` and a dense cost of at least kFusedMinRows rows, the same read of C also writes
  // next->f_next and the column ratios at it, which fused_col_log_ratio returns.
  void row_log_ratio(const double* f, const double* g, double eps, double* out, int threads,
                     const RowUpdate* next = nullptr) {
    const double inv = 1.0 / eps;
    for (index_t j = 0; j < w_.m; ++j) h_[j] = w_.logb[j] + g[j] * inv;
    for (index_t i = 0; i < w_.n; ++i) s_[i] = f[i] * inv;
    fused_ = false;
    if constexpr (kFuses) {
      if (next != nullptr && w_.n >= kFusedMinRows) {
        const RowUpdate& up = *next;
        sc_.resize(w_.m);
        for (index_t j = 0; j < w_.m; ++j) sc_[j] = g[j] * inv;
        ha_.resize(w_.n);
        fused_cols_.resize(w_.m);
        const auto next_ha = [&](index_t i, double r) {
          const double fi = (1.0 - up.w) * f[i] + up.w * up.k * (f[i] - up.eps * r);
          up.f_next[i] = fi;
          return up.loga[i] + fi * inv;
        };
        k_.row_col_log_ratio(h_.data(), s_.data(), sc_.data(), inv, out, ha_.data(),
                             fused_cols_.data(), threads, float_lanes_, next_ha, partial_);
        fused_ = true;
        fused_w_ = up.w;
        fused_k_ = up.k;
        return;
      }
    }
    k_.row_log_ratio(h_.data(), s_.data(), inv, out, threads, float_lanes_);
  }
  // True when the last row_log_ratio also gave the column ratios for this update.
  bool fused_for(const RowUpdate& next) const {
    return fused_ && fused_w_ == next.w && fused_k_ == next.k;
  }
  // The column ratios the last row_log_ratio gave (fused_for), used once.
  void fused_col_log_ratio(double* out) {
    fused_ = false;
    std::copy(fused_cols_.begin(), fused_cols_.end(), out);
  }
  void drop_fused() { fused_ = false; }
  void col_log_ratio(const double* f, const double* g, double eps, double* out, int threads) {
    const double inv = 1.0 / eps;
    for (index_t i = 0; i < w_.n; ++i) h_[i] = w_.loga[i] + f[i] * inv;
    for (index_t j = 0; j < w_.m; ++j) s_[j] = g[j] * inv;
    k_.col_log_ratio(h_.data(), s_.data(), inv, out, threads, float_lanes_);
  }
  // The row ratios (as row_log_ratio, exact) and the Newton plan's candidates in `rows`, from
  // one exp pass (each row's values P_ij / a_i written once, then summed and scanned). False
  // when some row's sum leaves the safe range: `out` then comes from the max-shifted pass and
  // `rows` is not usable.
  bool row_ratio_plan(const double* f, const double* g, double eps, double* out,
                      detail::PlanRows& rows, int threads) {
    const double inv = 1.0 / eps;
    for (index_t j = 0; j < w_.m; ++j) h_[j] = w_.logb[j] + g[j] * inv;
    rows.resize(w_.n);
    std::vector<char> safe(n_blocks(w_.n, kRowBlock), 1);
    for_blocks(w_.n, kRowBlock, threads, [&](index_t i0, index_t i1) {
      std::vector<double> v(w_.m);
      std::vector<index_t> scratch;
      for (index_t i = i0; i < i1; ++i) {
        k_.gibbs_values(i, h_.data(), f[i] * inv, inv, v.data());
        double sum = 0.0, top = 0.0;
        const double* vi = v.data();
#pragma omp simd reduction(+ : sum) reduction(max : top)
        for (index_t j = 0; j < w_.m; ++j) {
          sum += vi[j];
          top = std::max(top, vi[j]);
        }
        if (!in_safe_range(sum)) safe[i0 / kRowBlock] = 0;
        out[i] = std::log(sum);
        rows.gather(i, vi, w_.m, top, w_.a[i], scratch);
      }
    });
    if (std::find(safe.begin(), safe.end(), 0) == safe.end()) return true;
    row_log_ratio(f, g, eps, out, threads);
    return false;
  }

  // The k largest plan entries of each row, P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps).
  void row_top_plan(const double* f, const double* g, double eps, index_t k, index_t* idx,
                    double* val, int threads) {
    const double inv = 1.0 / eps;
    for (index_t j = 0; j < w_.m; ++j) h_[j] = w_.logb[j] + g[j] * inv;
    for_blocks(w_.n, kRowBlock, threads, [&](index_t i0, index_t i1) {
      std::vector<double> v(w_.m);
      std::vector<double> scratch;
      std::vector<index_t> order;
      for (index_t i = i0; i < i1; ++i) {
        k_.gibbs_values(i, h_.data(), f[i] * inv, inv, v.data());
        top_entries(v.data(), w_.m, k, scratch, order, idx + i * k, val + i * k);
        for (index_t t = 0; t < k; ++t) val[i * k + t] *= w_.a[i];
      }
    });
  }

  // <P, C>, reduced over rows in a fixed order.
  double transport_cost(const double* f, const double* g, double eps, int threads) {
    const double inv = 1.0 / eps;
    std::vector<double> ha(w_.n), hb(w_.m), per_row(w_.n);
    for (index_t i = 0; i < w_.n; ++i) ha[i] = w_.loga[i] + f[i] * inv;
    for (index_t j = 0; j < w_.m; ++j) hb[j] = w_.logb[j] + g[j] * inv;
    for_blocks(w_.n, kRowBlock, threads, [&](index_t i0, index_t i1) {
      k_.row_weighted_costs(i0, i1, hb.data(), ha.data(), inv, per_row.data() + i0);
      for (index_t i = i0; i < i1; ++i)
        if (ha[i] == kNegInf) per_row[i] = 0.0;  // zero weight: no mass in this row
    });
    double total = 0.0;
    for (double v : per_row) total += v;
    return total;
  }

 private:
  static constexpr bool kFuses =
      std::is_same<Kernel, DenseCost<typename Kernel::value_type>>::value;
  const Kernel& k_;
  const detail::Weights& w_;
  std::vector<double> h_, s_;
  bool float_lanes_;
  std::vector<double> sc_, ha_, fused_cols_, partial_;  // the fused pass's
  bool fused_ = false;
  double fused_w_ = 0.0, fused_k_ = 0.0;
};

// One stage of the eps schedule runs iterations on one domain until its tolerance or cap.
template <class Kernel, class Scaling>
class Driver {
 public:
  Driver(const Kernel& kernel, Scaling* scaling, const double* a, const double* b, double* f,
         double* g, const Options& o)
      : o_(o),
        n_(kernel.rows()),
        m_(kernel.cols()),
        threads_(threads_for_work(o.threads, kernel.rows() * kernel.cols())),
        w_(a, b, n_, m_),
        logdom_(kernel, w_, /*float_lanes=*/o.tol >= kFloatLaneTol),
        scaling_(scaling),
        f_(f),
        g_(g),
        r_(n_),
        c_(m_),
        f_next_(n_) {}

  Result run() {
    const std::vector<double> schedule = eps_schedule();
    bool reached_last = false;
    for (std::size_t s = 0; s < schedule.size(); ++s) {
      reached_last = s + 1 == schedule.size();
      const index_t cap =
          reached_last ? o_.max_iter : std::min(o_.max_iter, res_.n_iter + kStageMaxIter);
      run_stage(schedule[s], reached_last ? o_.tol : std::max(o_.tol, kStageTol), cap, s > 0);
      if (res_.status == Status::NotFinite || res_.n_iter >= o_.max_iter) break;
    }
    if (!reached_last && res_.status != Status::NotFinite) {
      // Out of iterations in an annealing stage: the potentials belong to a larger eps. One
      // c-transform at the target eps makes the rows exact, so the returned (f, g), plan and
      // objective are those of the target problem (its columns still off: converged=False).
      res_.status = Status::MaxIter;
      eps_ = schedule.back();
      on_scaling_ = cols_exact_ = approx_ = exact_cols_ = false;
      logdom_.set_exact();
      logdom_.row_log_ratio(f_, g_, eps_, r_.data(), threads_);
      for (index_t i = 0; i < n_; ++i) f_[i] -= eps_ * r_[i];
      logdom_.row_log_ratio(f_, g_, eps_, r_.data(), threads_);
      row_err_ = detail::side_error(w_.a, r_.data(), f_, o_.tau_a, n_);
    }
    finish(schedule.back());
    return res_;
  }

 private:
  std::vector<double> eps_schedule() const {
    std::vector<double> eps;
    if (o_.eps_scaling > 0.0 && o_.eps_scaling < 1.0)
      for (double e = o_.eps_start; e > o_.eps && eps.size() < 200; e *= o_.eps_scaling)
        eps.push_back(e);
    eps.push_back(o_.eps);
    return eps;
  }

  // Auto uses the scaling domain where exp(-C / eps) is representable from a cold start, and on
  // every later annealing stage too: its kernel is then built at the previous
  // stage's potentials, where the entries that matter are O(1) (rows that still underflow are
  // answered by the exact log-domain kernel).
  bool scaling_for(double eps, bool warm) const {
    if (scaling_ == nullptr) return false;
    if (o_.method == Method::Scaling) return true;
    if (o_.method != Method::Auto) return false;
    return warm || o_.cost_range <= o_.scaling_limit * eps;
  }

  // Half-step ratios on the stage's domain; the log domain redoes any scaling-domain half-step
  // whose products under- or overflowed.
  // A float kernel's ratios are approximate, and so are float-lane log-domain ones: approx_
  // says that r_ and cols_exact_ are relative to them, and the driver then measures the true
  // error with exact log-domain passes.
  // `next`: the f update expected after this half-step (the scaling domain fuses the next
  // column half-step's read of K into this one).
  void row_ratio(double* out, const RowUpdate* next = nullptr) {
    approx_ = on_scaling_ && scaling_->single();
    logdom_.drop_fused();
    if (!on_scaling_ || !scaling_->row_log_ratio(f_, g_, w_.logb.data(), out, threads_, next)) {
      logdom_.row_log_ratio(f_, g_, eps_, out, threads_, next);
      approx_ = logdom_.approximate();
    }
  }
  void col_ratio(double* out) {
    if (!on_scaling_ || !scaling_->col_log_ratio(f_, g_, w_.loga.data(), out, threads_))
      logdom_.col_log_ratio(f_, g_, eps_, out, threads_);
  }

  // The exact row ratios (r_, row_err_) and column ratios (c_, returned error) at (f, g): one
  // fused exp pass, or the two log-domain passes where its sums leave the safe range.
  // Double lanes from here on.
  double exact_errors() {
    logdom_.set_exact();
    if (scaling_ == nullptr ||
        !scaling_->exact_ratios(f_, g_, w_.a, w_.b, eps_, r_.data(), c_.data(), threads_)) {
      logdom_.row_log_ratio(f_, g_, eps_, r_.data(), threads_);
      logdom_.col_log_ratio(f_, g_, eps_, c_.data(), threads_);
    }
    row_err_ = detail::side_error(w_.a, r_.data(), f_, o_.tau_a, n_);
    approx_ = cols_exact_ = false;
    exact_cols_ = true;
    return detail::side_error(w_.b, c_.data(), g_, o_.tau_b, m_);
  }

  void run_stage(double eps, double tol, index_t cap, bool warm) {
    eps_ = eps;
    on_scaling_ = scaling_for(eps, warm);
    if (on_scaling_ && !scaling_->ready_for(eps)) scaling_->rebuild(f_, g_, eps, threads_);
    const double ka = o_.tau_a == kInf ? 1.0 : o_.tau_a / (o_.tau_a + eps);
    const double kb = o_.tau_b == kInf ? 1.0 : o_.tau_b / (o_.tau_b + eps);
    const bool balanced = o_.tau_a == kInf && o_.tau_b == kInf;
    detail::Relaxation relax(o_.overrelax && balanced);
    const bool newton_ok = tol == o_.tol && o_.method == Method::Auto && balanced;
    // eps far below the cost's range (annealed down to it): the plan is sparse and Newton on its
    // support cheap, so it is tried from the stage's first iterations.
    const bool eager_ok = warm && o_.eps_scaling > 0.0;
    support_failed_ = false;
    thin_plan_ = m_ < kNewtonLevelCols;
    plan_dense_ = false;
    double newton_below = kNewtonStart;
    index_t retry_at = o_.max_iter, retry_gap = kNewtonRetry;
    newton_damping_ = kNewtonRidge;
    std::vector<double> history;  // error estimates of this stage
    cols_exact_ = exact_cols_ = false;
    double col_err = kInf;
    index_t steady = 0;  // iterations since the relaxation weight last changed
    res_.status = Status::MaxIter;
    // The update is speculated with the current relaxation weight; when the weight changes
    // (rarely: once on, off on growth, plain at the end) the column pass reads K again.
    RowUpdate next{1.0, ka, eps, w_.loga.data(), f_next_.data()};
    while (true) {
      next.w = relax.weight();
      if (on_scaling_) scaling_->value_in_pass(o_.value && tol == o_.tol && likely_last(history));
      row_ratio(r_.data(), &next);  // r at the current (f, g)
      row_err_ = detail::side_error(w_.a, r_.data(), f_, o_.tau_a, n_);
      if (std::isnan(row_err_)) {
        res_.status = Status::NotFinite;
        return;
      }
      if (cols_exact_ && row_err_ <= tol) {
        if (!approx_ || tol != o_.tol) {
          res_.status = Status::Converged;
          return;
        }
        // Converged on the float kernel or float lanes: confirmed by the exact error, else the
        // solve goes on with a double kernel and double lanes (the columns were balanced by
        // approximate sums: not exact).
        const bool float_kernel = on_scaling_ && scaling_->single();
        col_err = exact_errors();
        if (std::isnan(row_err_) || row_err_ + col_err <= tol) {
          res_.status = std::isnan(row_err_) ? Status::NotFinite : Status::Converged;
          return;
        }
        exact_cols_ = cols_exact_ = false;
        if (float_kernel) scaling_->to_double(f_, g_, threads_);
        continue;
      }
      if (res_.n_iter >= cap) return;
      const double est = cols_exact_ ? row_err_ : row_err_ + col_err;
      history.push_back(est);
      const bool eager =
          eager_ok && !support_failed_ && index_t(history.size()) >= kNewtonEagerAfter;
      if (newton_ok && !plan_dense_ && (est <= newton_below || res_.n_iter >= retry_at) &&
          (eager || newton_pays(history, tol, steady))) {
        const bool lanes = logdom_.set_exact();  // Newton measures its error exactly
        if (newton(eps, tol, sinkhorn_rate(history), eager)) return;
        logdom_.restore(lanes);
        if (eager && support_failed_) continue;  // the usual gate from here on
        // The plan is not sparse enough yet, or Newton made slow progress (far from the
        // solution it moves some potentials by about eps per step): Sinkhorn goes on from the
        // current iterate, and Newton is tried again once the error is 100x smaller or after
        // retry_gap iterations, the gap doubling with every failed attempt (a Sinkhorn crawling
        // at a rate near 1 would take thousands of iterations for that 100x).
        retry_at = res_.n_iter + retry_gap;
        retry_gap *= 2;
        newton_below = 1e-2 * std::min(est, row_err_);
        continue;
      }
      double w = relax.observe(est);
      if (w != 1.0 && est <= tol) {
        relax.finish_plain();  // the last iterations are plain so columns are exact
        w = 1.0;
      }
      steady = w == next.w ? steady + 1 : 0;
      next.w = w;
      if (on_scaling_ && scaling_->fused_for(next)) {
        std::copy(f_next_.begin(), f_next_.end(), f_);
        if (!scaling_->fused_col_log_ratio(c_.data()))
          logdom_.col_log_ratio(f_, g_, eps_, c_.data(), threads_);
      } else if (logdom_.fused_for(next)) {
        std::copy(f_next_.begin(), f_next_.end(), f_);
        logdom_.fused_col_log_ratio(c_.data());
      } else {
        for (index_t i = 0; i < n_; ++i) f_[i] = (1.0 - w) * f_[i] + w * ka * (f_[i] - eps * r_[i]);
        col_ratio(c_.data());
      }
      col_err = detail::side_error(w_.b, c_.data(), g_, o_.tau_b, m_);
      for (index_t j = 0; j < m_; ++j) g_[j] = (1.0 - w) * g_[j] + w * kb * (g_[j] - eps * c_[j]);
      cols_exact_ = w == 1.0;
      exact_cols_ = false;
      if (on_scaling_) scaling_->maybe_absorb(f_, g_, threads_);
      ++res_.n_iter;
    }
  }

  // True when the coming row half-step will probably end the stage: the columns are exact (the
  // last update was plain) and the last error times the larger of the last two ratios of errors
  // is below tol (the first ratios, from a cold start, are far smaller than the steady rate).
  bool likely_last(const std::vector<double>& history) const {
    const std::size_t h = history.size();
    if (!cols_exact_ || h < 3) return false;
    const double rate =
        std::max(history[h - 1] / history[h - 2], history[h - 2] / history[h - 3]);
    return history[h - 1] * std::min(1.0, rate) <= o_.tol;
  }

  // The observed per-iteration rate of the last iterations (1 when it cannot be told yet).
  static double sinkhorn_rate(const std::vector<double>& history) {
    constexpr std::size_t kSpan = 5;
    if (history.size() <= kSpan) return 1.0;
    const double ratio = history.back() / history[history.size() - 1 - kSpan];
    const double rate = std::pow(ratio, 1.0 / kSpan);
    return std::isfinite(rate) ? std::min(rate, 1.0) : 1.0;
  }
  // Newton pays when the observed rate predicts many more iterations. A Newton step costs a
  // few exp passes: about two log-domain iterations, but ten or more scaling-domain ones while
  // the kernel fits in cache. There the rate must be that of the current relaxation weight
  // (`steady` iterations at it): the plain iterations before over-relaxation starts predict
  // far too many (measured at n = 1000, d = 2, eps = 0.01: a failed attempt doubled the time).
  bool newton_pays(const std::vector<double>& history, double tol, index_t steady) const {
    if (history.size() <= 5) return false;
    const double rate = sinkhorn_rate(history);
    const double gain = on_scaling_ ? 10.0 * kNewtonMinGain : kNewtonMinGain;
    if (!(rate < 1.0)) return history.size() > 50;  // stalled, not merely starting
    if (on_scaling_ && steady < 6) return false;
    return std::log(tol / history.back()) / std::log(rate) > gain;
  }

  // The plan cut to its k largest entries per row into plan_, k the smallest of kNewtonTopK,
  // 2 kNewtonTopK, ..., kNewtonTopMaxK whose entries carry `needed` mass (one pass over the
  // plan); false when none does.
  bool top_plan(double eps, double needed) {
    const index_t kmax = std::min(m_, kNewtonTopMaxK);
    std::vector<index_t>& idx = plan_.idx;
    std::vector<double>& val = plan_.val;
    idx.resize(n_ * kmax);
    val.resize(n_ * kmax);
    logdom_.row_top_plan(f_, g_, eps, kmax, idx.data(), val.data(), threads_);
    for (index_t k = std::min(m_, kNewtonTopK);; k = std::min(kmax, 2 * k)) {
      double kept = 0.0;
      for (index_t i = 0; i < n_; ++i)
        for (index_t t = 0; t < k; ++t) kept += val[i * kmax + t];
      if (kept >= needed) {
        for (index_t i = 0; i < n_; ++i)  // compact rows to k entries (rows sorted largest first)
          for (index_t t = 0; t < k; ++t) {
            idx[i * k + t] = idx[i * kmax + t];
            val[i * k + t] = val[i * kmax + t];
          }
        idx.resize(n_ * k);
        val.resize(n_ * k);
        plan_.start.resize(n_ + 1);
        for (index_t i = 0; i <= n_; ++i) plan_.start[i] = i * k;
        return true;
      }
      if (k == kmax) return false;
    }
  }

  // Sinkhorn-Newton-Sparse (ALGORITHMS 2.5): Newton ascent on the dual with the Hessian's plan
  // cut to its largest entries per row, the step by preconditioned CG, an Armijo line search.
  // Returns true when the stage is over (converged or out of iterations) and false when the
  // line search fails (Sinkhorn then continues). r_ is current at (f, g) on entry and exit.
  // `eager`: an attempt before newton_pays (the last stage of an annealed schedule), given up
  // when the plan's support is not sparse.
  bool newton(double eps, double tol, double sinkhorn_rate, bool eager) {
    // A Newton step costs about two Sinkhorn iterations: it must beat their progress.
    const double worth = sinkhorn_rate * sinkhorn_rate;
    double last_err = kInf;
    int slow_steps = 0;
    std::vector<double> rhs(n_ + m_), d(n_ + m_), fn(n_), gn(m_), rn(n_);
    const double* a = w_.a;
    const double* b = w_.b;
    double& damping = newton_damping_;
    // The exact row ratios (r_ may come from a float kernel) and the plan's candidates at (f, g);
    // later ones come from the line search's pass at the accepted point.
    // The levels' plan, unless it is thin: then the k largest entries per row (top_k), for the
    // rest of the stage (later attempts skip the candidates' pass).
    bool rows_ok = true, top_k = thin_plan_;
    if (!top_k) {
      rows_ok = logdom_.row_ratio_plan(f_, g_, eps, r_.data(), rows_, threads_);
      top_k = thin_plan_ =
          rows_ok &&
          rows_.select(kNewtonCoverage * detail::mass_from_ratio(a, r_.data(), n_), plan_) &&
          double(plan_.idx.size()) < kNewtonThinRow * double(n_);
    } else if (approx_) {  // r_ from a float kernel: Newton works on the exact ratios
      logdom_.row_log_ratio(f_, g_, eps, r_.data(), threads_);
    }
    approx_ = false;
    bool on_support = rows_ok && !top_k && enter_support();
    if (eager && !on_support) {
      support_failed_ = true;
      return false;
    }
    int rebuilds = 0;
    cols_exact_ = exact_cols_ = false;
    while (true) {
      if (on_support) {
        support_ratios(f_, g_, eps, r_.data(), c_.data());
      } else {
        logdom_.col_log_ratio(f_, g_, eps, c_.data(), threads_);
      }
      row_err_ = detail::side_error(a, r_.data(), f_, kInf, n_);
      const double col_err = detail::side_error(b, c_.data(), g_, kInf, m_);
      const double err = row_err_ + col_err;
      double dual = detail::dot_masked(a, f_, n_) + detail::dot_masked(b, g_, m_) -
                    eps * detail::mass_from_ratio(a, r_.data(), n_);
      exact_cols_ = !on_support;  // c_ is exact at (f, g): finish() needs no column pass
      if (err <= (on_support ? kSparseCheck * tol : tol)) {
        const double exact_col = on_support ? exact_errors() : col_err;  // sets row_err_
        if (row_err_ + exact_col <= tol) {
          res_.status = Status::Converged;
          return true;
        }
        // The support left out mass that matters now: rebuilt at (f, g) (r_ is exact there).
        rows_ok = logdom_.row_ratio_plan(f_, g_, eps, r_.data(), rows_, threads_);
        on_support = rows_ok && ++rebuilds <= kSparseRebuilds && enter_support();
        exact_cols_ = false;
        continue;
      }
      if (res_.n_iter >= o_.max_iter) {
        approx_ = on_support;  // finish() measures the error on the whole plan
        return true;
      }
      exact_cols_ = false;
      slow_steps = err > worth * last_err ? slow_steps + 1 : 0;
      if (slow_steps >= 2) return false;  // Sinkhorn is the better method here for now
      last_err = err;
      // rhs = eps * gradient of the dual: eps (a - P 1, b - P^T 1)
      for (index_t i = 0; i < n_; ++i)
        rhs[i] = a[i] > 0.0 ? eps * a[i] * (1.0 - std::exp(r_[i])) : 0.0;
      for (index_t j = 0; j < m_; ++j)
        rhs[n_ + j] = b[j] > 0.0 ? eps * b[j] * (1.0 - std::exp(c_[j])) : 0.0;
      // The sparse Hessian is only a good model when the kept entries carry most of the mass
      // (small eps), else Sinkhorn is the better method for now.
      if (!rows_ok && !top_k) return false;  // a row's sum left the safe range (far off)
      const double needed = kNewtonCoverage * detail::mass_from_ratio(a, r_.data(), n_);
      const bool sparse =
          on_support || (top_k ? top_plan(eps, needed) : rows_.select(needed, plan_));
      if (!sparse) {
        // The plan at this eps is not sparse: no further attempt in this stage (each costs an
        // exp pass).
        plan_dense_ = true;
        return false;
      }
      // The step solves (H + ridge) d = eps grad. Far from the solution the exact Newton step
      // overshoots on the weakly coupled modes (the dual is exponential there): when the line
      // search finds no step of at least kNewtonMinStep, the ridge is raised (damping those
      // modes first, a Levenberg-Marquardt step) and lowered again after full steps.
      bool accepted = false;
      double step = 0.0;
      while (!accepted) {
        const detail::SparseHessian hess(n_, m_, plan_, damping);
        const index_t side = std::min(n_, m_);
        if (side <= kNewtonDirect ||
            (!hess.solve(rhs.data(), d.data(), 1e-3, kNewtonCgIter) && side <= kNewtonDirectMax))
          hess.solve_direct(rhs.data(), d.data());
        double slope = 0.0;  // directional derivative of the dual along d
        for (index_t t = 0; t < n_ + m_; ++t) slope += rhs[t] * d[t] / eps;
        if (!(slope > 0.0)) return false;
        const bool last = damping >= kNewtonMaxDamping;
        for (double t = 1.0; t >= (last ? 1e-6 : kNewtonMinStep) && !accepted; t *= 0.5) {
          for (index_t i = 0; i < n_; ++i) fn[i] = f_[i] + t * d[i];
          for (index_t j = 0; j < m_; ++j) gn[j] = g_[j] + t * d[n_ + j];
          bool trial_ok = true;
          if (on_support)
            support_ratios(fn.data(), gn.data(), eps, rn.data(), nullptr);
          else if (top_k)
            logdom_.row_log_ratio(fn.data(), gn.data(), eps, rn.data(), threads_);
          else
            trial_ok = logdom_.row_ratio_plan(fn.data(), gn.data(), eps, rn.data(), trial_rows_,
                                              threads_);
          const double trial = detail::dot_masked(a, fn.data(), n_) +
                               detail::dot_masked(b, gn.data(), m_) -
                               eps * detail::mass_from_ratio(a, rn.data(), n_);
          const double slack = 1e-13 * (std::fabs(dual) + eps);  // round-off of the dual
          if (std::isfinite(trial) && trial >= dual + 1e-4 * t * slope - slack) {
            accepted = true;
            step = t;
            dual = trial;
            f_ = std::copy(fn.begin(), fn.end(), f_) - n_;
            g_ = std::copy(gn.begin(), gn.end(), g_) - m_;
            r_.swap(rn);
            if (!on_support && !top_k) std::swap(rows_, trial_rows_);
            rows_ok = trial_ok;
          }
        }
        if (!accepted && last) break;
        if (!accepted) damping *= kNewtonDampingFactor;
      }
      if (step == 1.0) damping = std::max(kNewtonRidge, damping / kNewtonDampingFactor);
      if (!accepted) return false;
      ++res_.n_iter;
    }
  }

  // Newton's steps on the support of the plan's large entries (kSupportFloor), taken from rows_
  // (gathered at (f, g)) when it is complete and sparse enough, with the Hessian's plan at the
  // level that covers the mass there (its entries' positions kept for the rest of the solve on
  // this support, their values updated every step).
  bool enter_support() {
    if (!rows_.support(support_)) return false;
    if (double(support_.idx.size()) > kSparseFill * double(n_) * double(m_)) return false;
    if (!rows_.select(kNewtonCoverage * detail::mass_from_ratio(w_.a, r_.data(), n_), plan_))
      return false;
    // Each of the plan's entries is one of the support's (both in column order by row).
    support_src_.resize(plan_.idx.size());
    for (index_t i = 0; i < n_; ++i) {
      index_t e = support_.start[i];
      for (index_t k = plan_.start[i]; k < plan_.start[i + 1]; ++k) {
        while (support_.idx[e] != plan_.idx[k]) ++e;
        support_src_[k] = e;
      }
    }
    support_f_.assign(f_, f_ + n_);
    support_g_.assign(g_, g_ + m_);
    return true;
  }

  // The row ratios r and, when c is given, the column ratios of the plan cut to the support at
  // (f, g): P_ij = P0_ij exp((f_i - f0_i + g_j - g0_j) / eps), P0 the support's entries at the
  // potentials (f0, g0) it was taken at; with c, also the Hessian's plan entries at (f, g).
  // O(nnz), one thread, fixed order. Always true (the line search rejects non-finite duals).
  bool support_ratios(const double* f, const double* g, double eps, double* r, double* c) {
    const double inv = 1.0 / eps;
    const detail::SparsePlan& s = support_;
    support_v_.resize(m_);
    support_u_.resize(n_);
    for (index_t j = 0; j < m_; ++j) support_v_[j] = std::exp((g[j] - support_g_[j]) * inv);
    if (c != nullptr) support_col_.assign(m_, 0.0);
    for (index_t i = 0; i < n_; ++i) {
      const double u = std::exp((f[i] - support_f_[i]) * inv);
      double acc = 0.0;
      for (index_t e = s.start[i]; e < s.start[i + 1]; ++e) {
        const index_t j = s.idx[e];
        const double p = s.val[e] * support_v_[j] * u;
        acc += p;
        if (c != nullptr) support_col_[j] += p;
      }
      r[i] = w_.a[i] > 0.0 ? std::log(acc / w_.a[i]) : 0.0;
      support_u_[i] = u;
    }
    if (c == nullptr) return true;
    for (index_t j = 0; j < m_; ++j)
      c[j] = w_.b[j] > 0.0 ? std::log(support_col_[j] / w_.b[j]) : 0.0;
    for (index_t i = 0; i < n_; ++i)
      for (index_t k = plan_.start[i]; k < plan_.start[i + 1]; ++k)
        plan_.val[k] = s.val[support_src_[k]] * support_v_[plan_.idx[k]] * support_u_[i];
    return true;
  }

  // Value, objective and the exact marginal error at the returned potentials; r_ holds the
  // row ratios at them on entry (every stage exits right after measuring r_), exactly unless
  // approx_; c_ holds the exact column ratios when exact_cols_.
  void finish(double eps) {
    if (res_.status == Status::NotFinite) return;
    eps_ = eps;
    on_scaling_ = false;  // exact log-domain passes from here on
    logdom_.set_exact();
    double col_err;
    if (exact_cols_) {
      col_err = detail::side_error(w_.b, c_.data(), g_, o_.tau_b, m_);
    } else if (approx_) {
      col_err = exact_errors();
    } else {
      if (!cols_exact_ || o_.tau_b != kInf) logdom_.col_log_ratio(f_, g_, eps, c_.data(), threads_);
      col_err = cols_exact_ ? 0.0 : detail::side_error(w_.b, c_.data(), g_, o_.tau_b, m_);
    }
    res_.marginal_error = row_err_ + col_err;
    if (res_.status == Status::Converged && res_.marginal_error > o_.tol)
      res_.status = Status::MaxIter;
    res_.value = std::numeric_limits<double>::quiet_NaN();
    if (o_.value &&
        (scaling_ == nullptr || !scaling_->value_at(f_, g_, w_.a, w_.b, eps, threads_, res_.value)))
      res_.value = logdom_.transport_cost(f_, g_, eps, threads_);
    const double mass = detail::mass_from_ratio(w_.a, r_.data(), n_);
    const double mass_term = eps * (mass - w_.sum_a * w_.sum_b);
    if (o_.tau_a == kInf && o_.tau_b == kInf) {
      res_.objective =
          detail::dot_masked(w_.a, f_, n_) + detail::dot_masked(w_.b, g_, m_) - mass_term;
    } else {
      std::vector<double> pa(n_), pb(m_);
      for (index_t i = 0; i < n_; ++i) pa[i] = w_.a[i] > 0.0 ? w_.a[i] * std::exp(r_[i]) : 0.0;
      for (index_t j = 0; j < m_; ++j) pb[j] = w_.b[j] > 0.0 ? w_.b[j] * std::exp(c_[j]) : 0.0;
      double obj = -mass_term;
      for (index_t i = 0; i < n_; ++i) obj += pa[i] > 0.0 ? pa[i] * f_[i] : 0.0;
      for (index_t j = 0; j < m_; ++j) obj += pb[j] > 0.0 ? pb[j] * g_[j] : 0.0;
      if (o_.tau_a != kInf) obj += o_.tau_a * detail::kl(pa.data(), w_.a, n_);
      if (o_.tau_b != kInf) obj += o_.tau_b * detail::kl(pb.data(), w_.b, m_);
      res_.objective = obj;
    }
  }

  const Options& o_;
  index_t n_, m_;
  int threads_;
  detail::Weights w_;
  LogDomain<Kernel> logdom_;
  Scaling* scaling_;
  double* f_;
  double* g_;
  std::vector<double> r_, c_;
  std::vector<double> f_next_;  // the f update computed by a fused scaling-domain row pass
  double eps_ = 1.0, row_err_ = kInf;
  bool on_scaling_ = false, cols_exact_ = false;
  bool approx_ = false;      // r_ and cols_exact_ come from a float kernel (not exact)
  bool exact_cols_ = false;  // c_ holds the exact column ratios at (f, g)
  double newton_damping_ = kNewtonRidge;  // the Newton system's ridge, kept between attempts
  detail::PlanRows rows_, trial_rows_;  // Newton's plan candidates at (f, g) and a trial point
  detail::SparsePlan plan_;             // the plan its Hessian is built from
  bool support_failed_ = false;  // an eager attempt found no sparse support in this stage
  bool thin_plan_ = false;       // this stage's Newton uses the top-k plan (levels too thin)
  detail::SparsePlan support_;   // the sparse solve's support, its entries at the potentials
  std::vector<double> support_f_, support_g_;                // (support_f_, support_g_)
  std::vector<index_t> support_src_;  // the support's entry behind each of plan_'s
  std::vector<double> support_u_, support_v_, support_col_;  // scratch
  bool plan_dense_ = false;  // this stage's plan needs more than kNewtonMaxK entries per row
  Result res_;
};

// Sinkhorn on one problem. `scaling` (may be null) offers the stabilized scaling domain for
// dense costs. f, g hold the initial potentials on entry and the solution on exit.
template <class Kernel, class Scaling>
Result solve(const Kernel& kernel, Scaling* scaling, const double* a, const double* b, double* f,
             double* g, const Options& o) {
  return Driver<Kernel, Scaling>(kernel, scaling, a, b, f, g, o).run();
}

// A dense problem: builds the scaling-domain kernel only when some stage will use it.
// `product` (optional) asks for P Y at the returned potentials as well.
template <class T>
Result solve_dense(MatrixView<T> c, const double* a, const double* b, double* f, double* g,
                   Options o, PlanProduct* product = nullptr) {
  const DenseCost<T> cost(c);
  // P Y: from the float kernel's confirmation pass, else (unless fused_only) from a double K
  // without exp, else by an exp pass over C.
  const auto with_product = [&](const Result& r, ScalingKernel<T>* scaling) {
    if (product == nullptr || r.status == Status::NotFinite) return r;
    const int threads = threads_for_work(o.threads, c.rows * c.cols);
    product->written = scaling != nullptr && scaling->product_at(f, g, o.eps);
    if (!product->written && !product->fused_only) {
      if (scaling == nullptr || !scaling->kernel_product(f, g, a, o.eps, threads))
        plan_product(cost, a, b, f, g, o.eps, *product, threads);
      product->written = true;
    }
    return r;
  };
  o.scaling_limit = kScalingRangeLimit;
  const bool annealing = o.eps_scaling > 0.0 && o.eps_start > o.eps;
  const double first_eps = annealing ? o.eps_start : o.eps;
  const bool may_scale =
      o.method == Method::Scaling ||
      (o.method == Method::Auto && (annealing || o.cost_range <= o.scaling_limit * first_eps));
  if (!may_scale)
    return with_product(solve(cost, static_cast<ScalingKernel<T>*>(nullptr), a, b, f, g, o),
                        nullptr);
  const bool single = o.tol >= kSingleTol && o.cost_range <= kSingleRangeLimit * o.eps &&
                      c.rows * c.cols >= kSingleMinEntries;
  ScalingKernel<T> scaling(cost, kAbsorbLimit, single);
  scaling.request_value(o.value);
  if (product != nullptr) scaling.request_product(*product, b);
  return with_product(solve(cost, &scaling, a, b, f, g, o), &scaling);
}

// Point clouds, cost evaluated on the fly.
template <class T>
Result solve_online(MatrixView<T> x, MatrixView<T> y, Metric metric, double p, const double* a,
                    const double* b, double* f, double* g, const Options& o) {
  return dispatch_metric(metric, [&](auto tag) {
    const OnlineCost<T, decltype(tag)::value> cost(x, y, p);
    return solve(cost, static_cast<ScalingKernel<T>*>(nullptr), a, b, f, g, o);
  });
}

// The self-transport of a measure (the debiasing terms of the Sinkhorn divergence, ALGORITHMS
// 2.6): h <- (h + T_a(h)) / 2 on the symmetric problem, which converges in a few steps.
// A float cost runs the half-steps in float lanes (about twice the exp throughput) until they
// report convergence or stop improving; double lanes then measure the error exactly, and the
// iterations go on in double lanes when that error is still above tol.
template <class Kernel>
Result solve_symmetric(const Kernel& kernel, const double* a, double* h, const Options& o) {
  const index_t n = kernel.rows();
  const int threads = threads_for_work(o.threads, n * n);
  const detail::Weights w(a, a, n, n);
  LogDomain<Kernel> logdom(kernel, w, /*float_lanes=*/o.tol >= kFloatLaneTol);
  std::vector<double> r(n);
  Result res;
  double last = kInf;
  while (true) {
    logdom.row_log_ratio(h, h, o.eps, r.data(), threads);
    res.marginal_error = 2.0 * detail::side_error(a, r.data(), h, kInf, n);
    if (!std::isfinite(res.marginal_error)) {
      res.status = Status::NotFinite;
      return res;
    }
    const bool done = res.marginal_error <= o.tol || res.n_iter >= o.max_iter;
    if ((done || res.marginal_error >= last) && logdom.set_exact()) continue;  // same h, exact
    if (res.marginal_error <= o.tol) {
      res.status = Status::Converged;
      break;
    }
    if (res.n_iter >= o.max_iter) break;
    last = res.marginal_error;
    for (index_t i = 0; i < n; ++i) h[i] -= 0.5 * o.eps * r[i];
    ++res.n_iter;
  }
  const double mass = detail::mass_from_ratio(a, r.data(), n);
  res.objective = 2.0 * detail::dot_masked(a, h, n) - o.eps * (mass - w.sum_a * w.sum_a);
  res.value = o.value ? logdom.transport_cost(h, h, o.eps, threads)
                      : std::numeric_limits<double>::quiet_NaN();
  return res;
}

template <class T>
Result solve_symmetric_dense(MatrixView<T> c, const double* a, double* h, const Options& o) {
  return solve_symmetric(DenseCost<T>(c), a, h, o);
}

template <class T>
Result solve_symmetric_online(MatrixView<T> x, Metric metric, double p, const double* a, double* h,
                              const Options& o) {
  return dispatch_metric(metric, [&](auto tag) {
    return solve_symmetric(OnlineCost<T, decltype(tag)::value>(x, x, p), a, h, o);
  });
}

// ---------------------------------------------------------------------------------------------
// Gradient of the entropic objective with respect to the source points (ALGORITHMS 10, the
// envelope theorem): out_i = sum_j P_ij grad_x c(x_i, y_j) with P_ij = a_i b_j exp((f_i + g_j -
// C_ij) / eps). Cost tiles are evaluated on the fly as in OnlineCost, so P is never formed:
// memory O((n + m) d). The gradient with respect to y is the same call with the clouds (and
// weights, potentials) swapped, every metric being symmetric.
//
// Per metric, with w_j = P_ij and c_j = c(x_i, y_j):
//   sqeuclidean  2 sum_j w_j (x_i - y_j)
//   euclidean    sum_j (w_j / c_j) (x_i - y_j)                  (0 where c_j = 0)
//   cosine       (sum_j w_j cos_j xh_i - sum_j w_j yh_j) / |x_i| (xh, yh unit rows)
//   minkowski    sum_j (w_j / c_j^(p-1)) sign(t) |t|^(p-1), t = x_ik - y_jk (cityblock: p = 1)
// The first three are "linear": alpha_i x'_i - sum_j coef_j y'_j, accumulated as two sums.
// The per-pair gradient pieces (kLinearGradient, pair_coef, coordinate_slope) live in
// common/costs.hpp, shared with the CUDA kernels.

// What gradient_block sums over the pairs (i, j) of a row, w_ij = exp(hb_j + ha_i - c_ij / eps):
//   Plan    the point gradient sum_j w_ij grad_1 c(p_i, q_j) (w = P_ij when ha = log a + f / eps);
//   Map     the entropic map's sums sum_j w_ij v_j (into acc) and sum_j w_ij (into alpha), with
//           ha_i replaced by -m_i, m_i the running maximum of hb_j - c_ij / eps: an online
//           log-sum-exp that rescales the row's sums whenever the maximum grows;
//   MapVjp  the point gradient with w_ij <G_i, v_j - T_i> in place of w_ij, ha_i = -log sum_j
//           exp(hb_j - c_ij / eps) being the map's log-normaliser (w_ij its softmax weights);
//   Weighted  the point gradient with w_ij (r_i + s_j + gamma c_ij) in place of w_ij (the
//           implicit gradient of the plan's value: per-row, per-column and cost-proportional
//           pair weights).
// v are the points the map averages (y itself: for the cosine q holds the normalised y).
enum class Pairs { Plan, Map, MapVjp, Weighted };

template <class T>
struct MapTerms {
  const PointsT<T>* values = nullptr;  // v (Map, MapVjp)
  const T* value_panels = nullptr;     // MapVjp in the GEMM form: v in dot_block's panel layout
  double* running = nullptr;           // Map: m_i, (i1 - i0), in and out
  const double* cot = nullptr;         // MapVjp: G, (i1 - i0) x d, row-major
  const double* cot_t = nullptr;       // MapVjp: <G_i, T_i>, (i1 - i0)
  const double* row_w = nullptr;       // Weighted: r, indexed by the global row
  const double* col_w = nullptr;       // Weighted: s (q.n)
  double gamma = 0.0;                  // Weighted: the cost's coefficient
};

namespace detail {

template <Pairs W>
constexpr bool kFactored = W == Pairs::MapVjp || W == Pairs::Weighted;

// Weighted: factor[t] = r_i + s_(j0 + t) + gamma c_t over a cost tile of len pairs.
template <class T>
PYOT_ALWAYS_INLINE void pair_weights(const MapTerms<T>& terms, index_t i, index_t j0,
                                     const T* tile, index_t len, double* factor) {
  const double r = terms.row_w[i], gamma = terms.gamma;
  const double* s = terms.col_w + j0;
#pragma omp simd
  for (index_t t = 0; t < len; ++t) factor[t] = r + s[t] + gamma * double(tile[t]);
}

// One row's coefficients over a cost tile (len pairs, hbj = hb + j0): coef[t] the weight of
// point t in the row's weighted sum, their total (or, for the cosine, sum w (1 - c)) added to
// alpha. Map: w = exp(hb_j - c / eps - m) with m = running, the row's running maximum, raised
// (and row[0..d) and alpha rescaled) when the tile holds a larger exponent; false when the tile
// holds only zero-weight targets (coef is then not written). Plan, MapVjp, Weighted: w =
// exp(hb_j + ha - c / eps) (times factor[t] for MapVjp and Weighted) and coef = pair_coef.
template <Metric M, Pairs W, class T>
PYOT_ALWAYS_INLINE bool row_coefficients(const T* tile, const double* hbj, double ha,
                                         const double* factor, index_t len, double inv_eps,
                                         double pm1, double* coef, double* running, double* row,
                                         index_t d, double& alpha) {
  double a_sum = 0.0;
  if constexpr (W == Pairs::Map) {
    double tmax = kNegInf;
#pragma omp simd reduction(max : tmax)
    for (index_t t = 0; t < len; ++t) {
      coef[t] = hbj[t] - double(tile[t]) * inv_eps;
      tmax = coef[t] > tmax ? coef[t] : tmax;
    }
    double& mx = *running;
    if (tmax == kNegInf) return false;  // only zero-weight targets in this tile
    if (tmax > mx) {                    // the maximum grew: rescale the sums kept so far
      const double r = mx == kNegInf ? 0.0 : std::exp(mx - tmax);
      for (index_t k = 0; k < d; ++k) row[k] *= r;
      alpha *= r;
      mx = tmax;
    }
    const double shift = mx;
#pragma omp simd reduction(+ : a_sum)
    for (index_t t = 0; t < len; ++t) {
      coef[t] = exp_vec(coef[t] - shift);
      a_sum += coef[t];
    }
  } else {
#pragma omp simd reduction(+ : a_sum)
    for (index_t t = 0; t < len; ++t) {
      const double c = double(tile[t]);
      double w = exp_vec(hbj[t] + ha - c * inv_eps);
      if constexpr (kFactored<W>) w *= factor[t];
      coef[t] = pair_coef<M>(w, c, pm1);
      a_sum += M == Metric::Cosine ? w * (1.0 - c) : coef[t];
    }
  }
  alpha += a_sum;
  return true;
}

// acc_r += sum_t coef[r, t] u_t over a block of rows. With FloatSums (float32 clouds) the weights
// are rounded to float and summed in float partials of kPartial terms, accumulated in double
// (the callers sum centred points: the map's targets, point_gradient's centred clouds): half the
// vector work of double products, and a relative error ~1e-6 on the partials, below that of the
// float32 costs the weights come from (u |C| / eps). `wf` holds rows * len floats when FloatSums.
template <bool FloatSums, class T>
PYOT_ALWAYS_INLINE void pair_weighted_sums(const double* coef, float* wf, index_t rows,
                                           index_t len, const T* u, index_t d, double* acc) {
  if constexpr (FloatSums) {
    for (index_t k = 0; k < rows * len; ++k) wf[k] = float(coef[k]);
    weighted_sum_block(wf, len, rows, u, len, d, acc);
  } else {
    weighted_sum_block(coef, len, rows, u, len, d, acc);
  }
}

}  // namespace detail

// Rows [i0, i1) of the gradient; acc holds (i1 - i0) * d doubles, alpha (i1 - i0).
template <Metric M, Pairs W = Pairs::Plan, class T>
PYOT_MULTIVERSION void gradient_block(const PointsT<T>& p, const PointsT<T>& q, index_t i0,
                                      index_t i1, T pexp, const double* hb, const double* ha,
                                      double inv_eps, double* acc, double* alpha,
                                      const MapTerms<T>& terms = {}) {
  constexpr bool kLinear = W == Pairs::Map || kLinearGradient<M>;
  const index_t d = p.d;
  const double pm1 = double(pexp) - 1.0;
  const PointsT<T>& v = W == Pairs::Map || W == Pairs::MapVjp ? *terms.values : q;
  const PointsT<T>& sum_over = W == Pairs::Map ? v : q;  // the points whose weighted sum is kept
  T tile[kColBlock];
  double coef[kColBlock], factor[kColBlock];
  std::fill(acc, acc + (i1 - i0) * d, 0.0);
  std::fill(alpha, alpha + (i1 - i0), 0.0);
  if constexpr (W == Pairs::Map) std::fill(terms.running, terms.running + (i1 - i0), kNegInf);
  for (index_t j0 = 0; j0 < q.n; j0 += kColBlock) {
    const index_t j1 = std::min(q.n, j0 + kColBlock), len = j1 - j0;
    for (index_t i = i0; i < i1; ++i) {
      if constexpr (W != Pairs::Map) {
        if (ha[i] == kNegInf) continue;  // zero weight: no mass, no gradient
      }
      cost_row_tile<M>(p.point(i), q, j0, j1, pexp, tile);
      double* row = acc + (i - i0) * d;
      if constexpr (W == Pairs::MapVjp) {
        const double* gi = terms.cot + (i - i0) * d;
        const double base = terms.cot_t[i - i0];
        for (index_t t = 0; t < len; ++t) factor[t] = -base;
        for (index_t k = 0; k < d; ++k) {
          const T* vk = v.coord(k) + j0;
          const double gk = gi[k];
#pragma omp simd
          for (index_t t = 0; t < len; ++t) factor[t] += gk * double(vk[t]);
        }
      }
      if constexpr (W == Pairs::Weighted) detail::pair_weights(terms, i, j0, tile, len, factor);
      if (!detail::row_coefficients<M, W>(tile, hb + j0, W == Pairs::Map ? 0.0 : ha[i], factor,
                                          len, inv_eps, pm1, coef,
                                          W == Pairs::Map ? terms.running + (i - i0) : nullptr,
                                          row, d, alpha[i - i0]))
        continue;
      for (index_t k = 0; k < d; ++k) {
        const T* qk = sum_over.coord(k) + j0;
        double s = 0.0;
        if constexpr (kLinear) {
#pragma omp simd reduction(+ : s)
          for (index_t t = 0; t < len; ++t) s += coef[t] * double(qk[t]);
          row[k] += W == Pairs::Map ? s : -s;
        } else {
          const double xk = double(p.point(i)[k]);
          for (index_t t = 0; t < len; ++t)
            s += coef[t] * coordinate_slope<M>(xk - double(qk[t]), pm1);
          row[k] += s;
        }
      }
    }
  }
}

// gradient_block in the GEMM form (d >= kGemmMinDim, the costs gemm_cost_block covers: the
// linear gradients), one block of at most kRowBlock rows at a time: the block's cost tile by
// the shared dot-product micro-kernel on g (centred clouds; unit rows for the cosine), MapVjp's
// <G_i, v_j> by the same kernel, the rows' coefficients as in gradient_block, then the block's
// weighted sums acc_i += sum_j coef_ij u_j by the second shared product (u: v for Map, q
// otherwise, row-major; they are summed as given, so the centring never reaches T(z)). Every
// row is summed in the same order whatever block or thread it falls in.
template <Metric M, Pairs W = Pairs::Plan, class T>
PYOT_MULTIVERSION void gradient_block_gemm(const GemmPoints<T>& g, const PointsT<T>& q,
                                           index_t i0, index_t i1, const double* hb,
                                           const double* ha, double inv_eps, double* acc,
                                           double* alpha, const MapTerms<T>& terms = {}) {
  static_assert(kLinearGradient<M>, "the GEMM form covers the linear gradients");
  constexpr index_t B = kRowBlock, L = kColBlock;
  const index_t d = g.d, rows = i1 - i0;
  require(rows <= B, "gradient_block_gemm: at most kRowBlock rows");
  const PointsT<T>& sum_over = W == Pairs::Map ? *terms.values : q;
  alignas(64) T tile[B * L];
  alignas(64) double coef[B * L];
  alignas(64) double factor[detail::kFactored<W> ? B * L : 1];
  // float32 clouds sum float weights (Map, Plan, Weighted): see the weighted sums below.
  constexpr bool kFloatSums = std::is_same_v<T, float> && W != Pairs::MapVjp;
  alignas(64) float wf[kFloatSums ? B * L : 1];
  std::fill(acc, acc + rows * d, 0.0);
  std::fill(alpha, alpha + rows, 0.0);
  if constexpr (W == Pairs::Map) std::fill(terms.running, terms.running + rows, kNegInf);
  for (index_t j0 = 0; j0 < q.n; j0 += L) {
    const index_t j1 = std::min(q.n, j0 + L), len = j1 - j0;
    gemm_cost_block<M>(g, i0, i1, j0, j1, tile, len);
    if constexpr (W == Pairs::MapVjp) {
      dot_block<double>(terms.cot, terms.value_panels, d, 0, rows, j0, j1,
                        [&](index_t r, index_t j, double s) {
                          factor[r * len + (j - j0)] = s - terms.cot_t[r];
                        });
    }
    if constexpr (W == Pairs::Weighted)
      for (index_t r = 0; r < rows; ++r)
        detail::pair_weights(terms, i0 + r, j0, tile + r * len, len, factor + r * len);
    for (index_t r = 0; r < rows; ++r) {
      double* cr = coef + r * len;
      const bool live =
          (W == Pairs::Map || ha[i0 + r] != kNegInf) &&
          detail::row_coefficients<M, W>(tile + r * len, hb + j0,
                                         W == Pairs::Map ? 0.0 : ha[i0 + r],
                                         detail::kFactored<W> ? factor + r * len : nullptr, len,
                                         inv_eps, 1.0, cr,
                                         W == Pairs::Map ? terms.running + r : nullptr,
                                         acc + r * d, d, alpha[r]);
      if (!live) std::fill(cr, cr + len, 0.0);
    }
    const T* u = sum_over.rows.data() + j0 * d;
    detail::pair_weighted_sums<kFloatSums>(coef, wf, rows, len, u, d, acc);
  }
  if constexpr (W != Pairs::Map)  // the linear gradients subtract the weighted sums
    for (index_t k = 0; k < rows * d; ++k) acc[k] = -acc[k];
}

namespace detail {

// Whether gradient_block_gemm serves metric M in d coordinates.
template <Metric M>
bool use_gemm(index_t d) {
  return kLinearGradient<M> && d >= kGemmMinDim;
}

// dst (d values) = the point gradient of row i from gradient_block's row sums and alpha.
template <Metric M, class T>
void finish_gradient_row(const PointsT<T>& p, MatrixView<T> x, index_t i, const double* row,
                         double alpha, double scale, double* dst) {
  const index_t d = x.cols;  // p is empty in the GEMM form except for the cosine
  if constexpr (M == Metric::Cosine) {
    double norm = 0.0;
    for (index_t k = 0; k < d; ++k) norm += double(x(i, k)) * double(x(i, k));
    norm = std::sqrt(norm);
    const double inv = norm > 0.0 ? scale / norm : 0.0;  // a zero row: no direction
    for (index_t k = 0; k < d; ++k) dst[k] = inv * (alpha * double(p.point(i)[k]) + row[k]);
  } else if constexpr (kLinearGradient<M>) {
    for (index_t k = 0; k < d; ++k) dst[k] = scale * (alpha * double(x(i, k)) + row[k]);
  } else {
    for (index_t k = 0; k < d; ++k) dst[k] = scale * row[k];
  }
}

// The y cloud of g (centred, in dot_block's panel layout) as row-major points (rows only: the
// GEMM form reads no coordinate-major copy).
template <class T>
PointsT<T> centred_rows(const GemmPoints<T>& g) {
  constexpr index_t P = kPanel<T>;
  PointsT<T> out;
  out.n = g.m;
  out.d = g.d;
  out.rows.resize(std::size_t(g.m * g.d));
  for (index_t j = 0; j < g.m; ++j)
    for (index_t k = 0; k < g.d; ++k)
      out.rows[j * g.d + k] = g.yc[(j / P) * P * g.d + k * P + j % P];
  return out;
}

// hb_j = log b_j + g_j / eps (-inf for a zero weight).
inline std::vector<double> log_weighted(const double* b, const double* g, double inv_eps,
                                        index_t m) {
  std::vector<double> hb(m);
  for (index_t j = 0; j < m; ++j) hb[j] = b[j] > 0.0 ? std::log(b[j]) + g[j] * inv_eps : kNegInf;
  return hb;
}

}  // namespace detail

// Rows [i0, i1) of gradient_block's sums, by the matrix-product form when `gemm` (from
// detail::use_gemm; g then holds the GEMM layout of the rows and q) and by direct tiles otherwise.
template <Metric M, Pairs W = Pairs::Plan, class T>
void pair_block(bool gemm, const GemmPoints<T>& g, const PointsT<T>& p, const PointsT<T>& q,
                index_t i0, index_t i1, T pexp, const double* hb, const double* ha,
                double inv_eps, double* acc, double* alpha, const MapTerms<T>& terms = {}) {
  if constexpr (kLinearGradient<M>) {
    if (gemm) {
      gradient_block_gemm<M, W>(g, q, i0, i1, hb, ha, inv_eps, acc, alpha, terms);
      return;
    }
  }
  gradient_block<M, W>(p, q, i0, i1, pexp, hb, ha, inv_eps, acc, alpha, terms);
}

// out (n x d, row-major) = sum_j P_ij grad_x c(x_i, y_j), see above; with row_w (n), col_w (m)
// given, sum_j P_ij (row_w_i + col_w_j + gamma c_ij) grad_x c(x_i, y_j) (Pairs::Weighted).
template <class T>
void point_gradient(MatrixView<T> x, MatrixView<T> y, Metric metric, double p, const double* a,
                    const double* b, const double* f, const double* g, double eps, double* out,
                    int threads, const double* row_w = nullptr, const double* col_w = nullptr,
                    double gamma = 0.0) {
  const index_t n = x.rows, m = y.rows, d = x.cols;
  require(y.cols == d, "x and y must have the same number of columns");
  const double inv_eps = 1.0 / eps;
  const std::vector<double> ha = detail::log_weighted(a, f, inv_eps, n);
  const std::vector<double> hb = detail::log_weighted(b, g, inv_eps, m);
  const int t = threads_for_work(threads, n * m);
  MapTerms<T> terms;
  terms.row_w = row_w;
  terms.col_w = col_w;
  terms.gamma = gamma;
  dispatch_metric(metric, [&](auto tag) {
    constexpr Metric M = decltype(tag)::value;
    constexpr bool kNormalise = M == Metric::Cosine;
    const bool gemm = detail::use_gemm<M>(d);
    GemmPoints<T> gp;
    if (gemm) gp.assign(x, y, kNormalise ? GemmCentre::Unit : GemmCentre::Both);
    const PointsT<T> px = gemm && !kNormalise ? PointsT<T>() : PointsT<T>(x, kNormalise);
    // The GEMM form of the squared Euclidean and Euclidean gradients sums the clouds centred by
    // the common mean: alpha_i x_i - sum_j coef_j y_j is unchanged (alpha_i = sum_j coef_j), the
    // sums no longer carry the clouds' offset from the origin (float32 partial sums).
    const bool centred = gemm && !kNormalise;
    const PointsT<T> py = centred ? detail::centred_rows(gp) : PointsT<T>(y, kNormalise);
    const MatrixView<T> xf = centred ? MatrixView<T>(gp.xr.data(), n, d) : x;
    for_blocks(n, kRowBlock, t, [&](index_t i0, index_t i1) {
      std::vector<double> acc((i1 - i0) * d), alpha(i1 - i0);
      if (row_w) {
        pair_block<M, Pairs::Weighted>(gemm, gp, px, py, i0, i1, T(p), hb.data(), ha.data(),
                                       inv_eps, acc.data(), alpha.data(), terms);
      } else {
        pair_block<M>(gemm, gp, px, py, i0, i1, T(p), hb.data(), ha.data(), inv_eps, acc.data(),
                      alpha.data());
      }
      for (index_t i = i0; i < i1; ++i)
        detail::finish_gradient_row<M>(px, xf, i, acc.data() + (i - i0) * d, alpha[i - i0], 1.0,
                                       out + i * d);
    });
    return 0;
  });
}

// Rows [i0, i1) of the point gradient's sums from a dense cost matrix (rows <= kRowBlock): the
// coefficients of gradient_block_gemm read from c instead of built by a product, the weighted
// sums over q (centred rows) by the same second product.
template <Metric M, class T>
PYOT_MULTIVERSION void gradient_block_dense(MatrixView<T> c, const PointsT<T>& q, index_t i0,
                                            index_t i1, const double* hb, const double* ha,
                                            double inv_eps, double* acc, double* alpha) {
  constexpr index_t B = kRowBlock, L = kColBlock;
  constexpr bool kFloatSums = std::is_same_v<T, float>;
  const index_t d = q.d, rows = i1 - i0;
  require(rows <= B, "gradient_block_dense: at most kRowBlock rows");
  alignas(64) double coef[B * L];
  alignas(64) float wf[kFloatSums ? B * L : 1];
  std::fill(acc, acc + rows * d, 0.0);
  std::fill(alpha, alpha + rows, 0.0);
  for (index_t j0 = 0; j0 < q.n; j0 += L) {
    const index_t j1 = std::min(q.n, j0 + L), len = j1 - j0;
    for (index_t r = 0; r < rows; ++r) {
      double* cr = coef + r * len;
      const bool live =
          ha[i0 + r] != kNegInf && detail::row_coefficients<M, Pairs::Plan>(
                                       c.row(i0 + r) + j0, hb + j0, ha[i0 + r], nullptr, len,
                                       inv_eps, 1.0, cr, nullptr, acc + r * d, d, alpha[r]);
      if (!live) std::fill(cr, cr + len, 0.0);
    }
    const T* u = q.rows.data() + j0 * d;
    detail::pair_weighted_sums<kFloatSums>(coef, wf, rows, len, u, d, acc);
  }
  for (index_t k = 0; k < rows * d; ++k) acc[k] = -acc[k];
}

// point_gradient when the cost matrix c (n x m) is at hand (a small problem solved on its
// materialised cost, pyot.torch's SinkhornLoss): one exp pass over c and the weighted sums, no
// cost evaluation. The squared Euclidean and Euclidean costs (the sums run over the clouds
// centred by their common mean, as point_gradient's GEMM form); c must be their cost of x, y.
template <class T>
void dense_point_gradient(MatrixView<T> c, MatrixView<T> x, MatrixView<T> y, Metric metric,
                          const double* a, const double* b, const double* f, const double* g,
                          double eps, double* out, int threads) {
  const index_t n = x.rows, m = y.rows, d = x.cols;
  require(y.cols == d, "x and y must have the same number of columns");
  require(c.rows == n && c.cols == m, "the cost must be (n, m)");
  require(metric == Metric::SqEuclidean || metric == Metric::Euclidean,
          "dense_point_gradient: squared Euclidean or Euclidean costs");
  const double inv_eps = 1.0 / eps;
  const std::vector<double> ha = detail::log_weighted(a, f, inv_eps, n);
  const std::vector<double> hb = detail::log_weighted(b, g, inv_eps, m);
  const int t = threads_for_work(threads, n * m);
  GemmPoints<T> gp;
  gp.assign(x, y, GemmCentre::Both);
  const PointsT<T> py = detail::centred_rows(gp);
  const MatrixView<T> xc(gp.xr.data(), n, d);
  const PointsT<T> none;
  auto run = [&](auto tag) {
    constexpr Metric M = decltype(tag)::value;
    for_blocks(n, kRowBlock, t, [&](index_t i0, index_t i1) {
      std::vector<double> acc((i1 - i0) * d), alpha(i1 - i0);
      gradient_block_dense<M>(c, py, i0, i1, hb.data(), ha.data(), inv_eps, acc.data(),
                              alpha.data());
      for (index_t i = i0; i < i1; ++i)
        detail::finish_gradient_row<M>(none, xc, i, acc.data() + (i - i0) * d, alpha[i - i0], 1.0,
                                       out + i * d);
    });
  };
  if (metric == Metric::SqEuclidean) {
    run(std::integral_constant<Metric, Metric::SqEuclidean>());
  } else {
    run(std::integral_constant<Metric, Metric::Euclidean>());
  }
}

// Rows [i0, i1) of the online plan-vector product out[i - i0] = sum_j w_ij (v_j + gamma c_ij),
// w_ij = exp(hb_j + ha_i - c_ij / eps): the cost tiles of pair_block (the matrix-product form
// when `gemm`), the row's sum in one exp pass per tile.
template <Metric M, class T>
PYOT_MULTIVERSION void matvec_block(bool gemm, const GemmPoints<T>& g, const PointsT<T>& p,
                                    const PointsT<T>& q, index_t i0, index_t i1, T pexp,
                                    const double* hb, const double* ha, double inv_eps,
                                    const double* v, double gamma, double* out) {
  constexpr index_t B = kRowBlock, L = kColBlock;
  const index_t rows = i1 - i0;
  require(rows <= B, "matvec_block: at most kRowBlock rows");
  alignas(64) T tile[B * L];
  std::fill(out, out + rows, 0.0);
  for (index_t j0 = 0; j0 < q.n; j0 += L) {
    const index_t j1 = std::min(q.n, j0 + L), len = j1 - j0;
    if constexpr (kLinearGradient<M>) {
      if (gemm) gemm_cost_block<M>(g, i0, i1, j0, j1, tile, len);
    }
    const double* hbj = hb + j0;
    const double* vj = v + j0;
    for (index_t r = 0; r < rows; ++r) {
      const double hai = ha[i0 + r];
      if (hai == kNegInf) continue;  // zero weight: an empty row
      const T* c = tile + r * len;
      if (!gemm) {
        cost_row_tile<M>(p.point(i0 + r), q, j0, j1, pexp, tile);
        c = tile;
      }
      double s = 0.0;
#pragma omp simd reduction(+ : s)
      for (index_t t = 0; t < len; ++t) {
        const double ct = double(c[t]);
        s += exp_vec(hbj[t] + hai - ct * inv_eps) * (vj[t] + gamma * ct);
      }
      out[r] += s;
    }
  }
}

// out (n) = sum_j P_ij (v_j + gamma c(x_i, y_j)), P_ij = a_i b_j exp((f_i + g_j - c_ij) / eps)
// from the potentials, cost tiles on the fly (memory O((n + m) d)): the plan-vector products of
// the implicit gradients on point clouds (P^T u is the same call with the clouds swapped).
template <class T>
void plan_matvec(MatrixView<T> x, MatrixView<T> y, Metric metric, double p, const double* a,
                 const double* b, const double* f, const double* g, double eps, const double* v,
                 double gamma, double* out, int threads) {
  const index_t n = x.rows, m = y.rows, d = x.cols;
  require(y.cols == d, "x and y must have the same number of columns");
  const double inv_eps = 1.0 / eps;
  const std::vector<double> ha = detail::log_weighted(a, f, inv_eps, n);
  const std::vector<double> hb = detail::log_weighted(b, g, inv_eps, m);
  const int t = threads_for_work(threads, n * m);
  dispatch_metric(metric, [&](auto tag) {
    constexpr Metric M = decltype(tag)::value;
    constexpr bool kNormalise = M == Metric::Cosine;
    const bool gemm = detail::use_gemm<M>(d);
    GemmPoints<T> gp;
    if (gemm) gp.assign(x, y, kNormalise ? GemmCentre::Unit : GemmCentre::Both);
    const PointsT<T> px = gemm ? PointsT<T>() : PointsT<T>(x, kNormalise);
    const PointsT<T> py(y, kNormalise);  // q.n: the column count in either form
    for_blocks(n, kRowBlock, t, [&](index_t i0, index_t i1) {
      matvec_block<M>(gemm, gp, px, py, i0, i1, T(p), hb.data(), ha.data(), inv_eps, v, gamma,
                      out + i0);
    });
    return 0;
  });
}

// ---------------------------------------------------------------------------------------------
// The entropic map (ALGORITHMS 9) at query points z: T(z_i) = sum_j w_ij y_j with
// w_ij = softmax_j(log b_j + (g_j - c(z_i, y_j)) / eps), one online pass over tiles of y, O(m d)
// per query and no n x m array. out (n x d) receives T(z), lse (n) the log-normaliser
// log sum_j exp(log b_j + (g_j - c(z_i, y_j)) / eps) (-f(z_i) / eps, the backward's shift).
template <class T>
void entropic_map(MatrixView<T> z, MatrixView<T> y, Metric metric, double p, const double* b,
                  const double* g, double eps, double* out, double* lse, int threads) {
  const index_t n = z.rows, m = y.rows, d = z.cols;
  require(y.cols == d, "z and y must have the same number of columns");
  const double inv_eps = 1.0 / eps;
  const std::vector<double> hb = detail::log_weighted(b, g, inv_eps, m);
  const int t = threads_for_work(threads, n * m);
  dispatch_metric(metric, [&](auto tag) {
    constexpr Metric M = decltype(tag)::value;
    constexpr bool kNormalise = M == Metric::Cosine;
    const bool gemm = detail::use_gemm<M>(d);
    GemmPoints<T> gz;
    if (gemm) gz.assign(z, y, kNormalise ? GemmCentre::Unit : GemmCentre::Y);
    const PointsT<T> pz = gemm ? PointsT<T>() : PointsT<T>(z, kNormalise), py(y, kNormalise);
    const PointsT<T> raw = kNormalise ? PointsT<T>(y, false) : PointsT<T>();
    // The GEMM form averages the targets centred by their mean c (T(z) = sum_j w_j (y_j - c) /
    // sum_j w_j + c, for any metric): its float partial sums then see |y_j - c|, not |y_j|.
    std::vector<double> centre(gemm ? std::size_t(d) : 0, 0.0);
    std::vector<T> shifted;
    PointsT<T> centred;
    if (gemm) {
      for (index_t j = 0; j < m; ++j)
        for (index_t k = 0; k < d; ++k) centre[k] += double(y(j, k));
      for (double& c : centre) c /= double(m);
      shifted.resize(std::size_t(m * d));
      for (index_t j = 0; j < m; ++j)
        for (index_t k = 0; k < d; ++k) shifted[j * d + k] = T(double(y(j, k)) - centre[k]);
      centred = PointsT<T>(MatrixView<T>(shifted.data(), m, d), false);
    }
    MapTerms<T> terms;
    terms.values = gemm ? &centred : kNormalise ? &raw : &py;
    for_blocks(n, kRowBlock, t, [&](index_t i0, index_t i1) {
      std::vector<double> acc((i1 - i0) * d), alpha(i1 - i0), running(i1 - i0);
      MapTerms<T> mine = terms;
      mine.running = running.data();
      pair_block<M, Pairs::Map>(gemm, gz, pz, py, i0, i1, T(p), hb.data(), nullptr, inv_eps,
                                acc.data(), alpha.data(), mine);
      for (index_t i = i0; i < i1; ++i) {
        const double s = alpha[i - i0];
        require(s > 0.0, "every target has zero weight");
        for (index_t k = 0; k < d; ++k)
          out[i * d + k] = acc[(i - i0) * d + k] / s + (gemm ? centre[k] : 0.0);
        lse[i] = running[i - i0] + std::log(s);
      }
    });
    return 0;
  });
}

// The vector-Jacobian product of entropic_map in z: with G = cot (n x d), tz = T(z) and lse
// from entropic_map, out_i = -(1/eps) sum_j w_ij <G_i, y_j - T(z_i)> grad_z c(z_i, y_j)
// (d w_ij / d z_i = -(w_ij / eps) (grad c_ij - sum_k w_ik grad c_ik)), one more online pass.
template <class T>
void entropic_map_vjp(MatrixView<T> z, MatrixView<T> y, Metric metric, double p, const double* b,
                      const double* g, double eps, const double* lse, const double* tz,
                      const double* cot, double* out, int threads) {
  const index_t n = z.rows, m = y.rows, d = z.cols;
  require(y.cols == d, "z and y must have the same number of columns");
  const double inv_eps = 1.0 / eps;
  const std::vector<double> hb = detail::log_weighted(b, g, inv_eps, m);
  std::vector<double> ha(n), cot_t(n);
  for (index_t i = 0; i < n; ++i) {
    ha[i] = -lse[i];
    double s = 0.0;
    for (index_t k = 0; k < d; ++k) s += cot[i * d + k] * tz[i * d + k];
    cot_t[i] = s;
  }
  const int t = threads_for_work(threads, n * m);
  dispatch_metric(metric, [&](auto tag) {
    constexpr Metric M = decltype(tag)::value;
    constexpr bool kNormalise = M == Metric::Cosine;
    const bool gemm = detail::use_gemm<M>(d);
    GemmPoints<T> gz;
    if (gemm) gz.assign(z, y, kNormalise ? GemmCentre::Unit : GemmCentre::Y);
    const PointsT<T> pz = gemm && !kNormalise ? PointsT<T>() : PointsT<T>(z, kNormalise);
    const PointsT<T> py(y, kNormalise);
    const PointsT<T> raw = kNormalise ? PointsT<T>(y, false) : PointsT<T>();
    std::vector<T> panels;
    if (gemm) to_panels<T>(m, d, [&](index_t j) { return y.row(j); }, panels);
    for_blocks(n, kRowBlock, t, [&](index_t i0, index_t i1) {
      std::vector<double> acc((i1 - i0) * d), alpha(i1 - i0);
      MapTerms<T> terms;
      terms.values = kNormalise ? &raw : &py;
      terms.value_panels = panels.data();
      terms.cot = cot + i0 * d;
      terms.cot_t = cot_t.data() + i0;
      pair_block<M, Pairs::MapVjp>(gemm, gz, pz, py, i0, i1, T(p), hb.data(), ha.data(),
                                   inv_eps, acc.data(), alpha.data(), terms);
      for (index_t i = i0; i < i1; ++i)
        detail::finish_gradient_row<M>(pz, z, i, acc.data() + (i - i0) * d, alpha[i - i0],
                                       -inv_eps, out + i * d);
    });
    return 0;
  });
}

}  // namespace pyot::sinkhorn
