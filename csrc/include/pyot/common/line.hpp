// Optimal transport on the line (ALGORITHMS 3.2), shared by every solver that works on 1D
// samples: sliced and max-sliced Wasserstein, wasserstein_1d, partial OT on the line.
//
// For a convex cost h(u - v) (here h(t) = |t|^p, p >= 1) the monotone coupling of two measures
// on the line is optimal: W_p^p = int_0^1 h(F^-1(t) - G^-1(t)) dt. With both samples sorted
// ascending and A_i, B_j their cumulative weights, the coupling is a staircase of cells (i, j)
// that the merge below visits in order: the interval (t', t] of the quantile axis, with t the
// next breakpoint min(A_i, B_j), puts mass t - t' on cell (i, j); i advances when t = A_i and j
// when t = B_j (both on ties). Masses are differences of cumulative sums, never remainders
// carried from cell to cell, so no rounding drifts along the merge; the last cumulative
// entries must be equal (see `cumulative_weights`), which makes the merge end on both samples
// at once.
//
// Values are float or double; every sum is accumulated in double. The kernels allocate
// nothing: callers own the scratch buffers (one SortScratch per thread).
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "pyot/common/config.hpp"

namespace pyot::line {

// h(t) = |t|^p and its derivative h'(t) = p |t|^(p-1) sign(t) (0 at t = 0). K = 1 and K = 2
// are the cases p = 1 and p = 2 resolved at compile time (no pow in the loop); K = 0 is any p.
template <int K>
struct AbsPow {
  double p = K;
  double value(double t) const {
    if constexpr (K == 1) {
      return std::fabs(t);
    } else if constexpr (K == 2) {
      return t * t;
    } else {
      return std::pow(std::fabs(t), p);
    }
  }
  double slope(double t) const {
    if constexpr (K == 1) {
      return t > 0.0 ? 1.0 : (t < 0.0 ? -1.0 : 0.0);
    } else if constexpr (K == 2) {
      return 2.0 * t;
    } else {
      const double s = p * std::pow(std::fabs(t), p - 1.0);
      return t > 0.0 ? s : (t < 0.0 ? -s : 0.0);
    }
  }
};

// Calls fn(h) with the AbsPow specialisation for the run-time exponent p.
template <class Fn>
decltype(auto) dispatch_power(double p, Fn&& fn) {
  if (p == 1.0) return fn(AbsPow<1>{});
  if (p == 2.0) return fn(AbsPow<2>{});
  AbsPow<0> h;
  h.p = p;
  return fn(h);
}

// ---------------------------------------------------------------------------------------------
// The merge: visit(i, j, mass) for every cell of the monotone coupling, in quantile order.
// Cells of zero mass (ties, zero weights) are visited too, so the cells always form a staircase
// from (0, 0) to (n - 1, m - 1): a spanning tree of the bipartite graph, as potentials need.

// Weighted samples given by cumulative weights cu (n) and cv (m), non-decreasing, with
// cu[n - 1] == cv[m - 1].
template <class Visit>
void merge_cumulative(const double* cu, index_t n, const double* cv, index_t m, Visit&& visit) {
  index_t i = 0, j = 0;
  double t = 0.0;
  while (i < n && j < m) {
    const double ci = cu[i], cj = cv[j];
    const double next = ci < cj ? ci : cj;
    visit(i, j, next - t);
    t = next;
    i += ci == next;
    j += cj == next;
  }
}

// Uniform weights 1/n and 1/m. The breakpoints (i + 1)/n and (j + 1)/m are compared as the
// integers (i + 1) m and (j + 1) n (units of 1/(n m)), so ties are exact.
template <class Visit>
void merge_uniform(index_t n, index_t m, Visit&& visit) {
  const double unit = 1.0 / (double(n) * double(m));
  index_t i = 0, j = 0, t = 0;
  while (i < n && j < m) {
    const index_t ci = (i + 1) * m, cj = (j + 1) * n;
    const index_t next = ci < cj ? ci : cj;
    visit(i, j, double(next - t) * unit);
    t = next;
    i += ci == next;
    j += cj == next;
  }
}

// out[k] = w[0] + ... + w[k], clamped to `total` and with out[n - 1] = total exactly: two
// measures of (nearly) equal mass get equal last entries, as merge_cumulative requires.
inline void cumulative_weights(const double* w, index_t n, double total, double* out) {
  double s = 0.0;
  for (index_t k = 0; k < n; ++k) {
    s += w[k];
    out[k] = s < total ? s : total;
  }
  if (n > 0) out[n - 1] = total;
}

// ---------------------------------------------------------------------------------------------
// W_p^p of sorted samples. The result is the cost of the coupling of the measures as given:
// for weights of total mass M it is M times W_p^p of the normalised measures (like <P, C>).

template <class T, class H>
double wpp_sorted(const T* u, const double* cu, index_t n, const T* v, const double* cv, index_t m,
                  const H& h) {
  double acc = 0.0;
  merge_cumulative(cu, n, cv, m, [&](index_t i, index_t j, double mass) {
    acc += mass * h.value(double(u[i]) - double(v[j]));
  });
  return acc;
}

namespace detail {
// sum_k h(u_k - v_k) over one block (SIMD partial sums; blocks are combined in order).
template <class T, class H>
PYOT_ALWAYS_INLINE double paired_block_sum(const T* u, const T* v, index_t len, const H& h) {
  double acc = 0.0;
#pragma omp simd reduction(+ : acc)
  for (index_t k = 0; k < len; ++k) acc += h.value(double(u[k]) - double(v[k]));
  return acc;
}
}  // namespace detail

// (1/n) sum_k h(u_k - v_k): uniform samples of equal size, where the coupling pairs ranks.
// Summed in blocks of 4096 so the rounding error grows with the number of blocks, not of terms.
template <class T, class H>
PYOT_MULTIVERSION double wpp_sorted_paired(const T* u, const T* v, index_t n, const H& h) {
  constexpr index_t kBlock = 4096;
  double total = 0.0;
  for (index_t k0 = 0; k0 < n; k0 += kBlock)
    total += detail::paired_block_sum(u + k0, v + k0, std::min(kBlock, n - k0), h);
  return total / double(n);
}

// Uniform samples of any sizes: the paired fast path when n == m, else the integer merge.
template <class T, class H>
double wpp_sorted_uniform(const T* u, index_t n, const T* v, index_t m, const H& h) {
  if (n == m) return wpp_sorted_paired(u, v, n, h);
  double acc = 0.0;
  merge_uniform(n, m, [&](index_t i, index_t j, double mass) {
    acc += mass * h.value(double(u[i]) - double(v[j]));
  });
  return acc;
}

// ---------------------------------------------------------------------------------------------
// Sorting. Large inputs use an LSD radix sort on the order-preserving unsigned image of the
// floats (11-bit digits: 3 passes for float, 6 for double; a pass whose digit is the same for
// every key is skipped), optionally carrying a payload (a weight, an index) along; measured 6 to
// 15 times faster than std::sort from a few thousand values on (bench/sliced.py reports it).
// Below kRadixMinSize std::sort is used. NaN must not occur (Python rejects it).

template <class T>
struct RadixKey;
template <>
struct RadixKey<float> {
  using type = std::uint32_t;
};
template <>
struct RadixKey<double> {
  using type = std::uint64_t;
};

constexpr index_t kRadixMinSize = 2048;  // below this std::sort is as fast
constexpr int kRadixBits = 11;
constexpr index_t kRadixBuckets = index_t(1) << kRadixBits;

// A value with its weight: small weighted samples are sorted as pairs by std::sort.
template <class T>
struct Weighted {
  T value;
  double weight;
};

// Buffers of the sorts below, sized once per thread (`reserve`) so the sorts allocate nothing.
template <class T>
struct SortScratch {
  using Key = typename RadixKey<T>::type;
  std::vector<Key> keys, tmp;
  std::vector<double> weights;     // payload scratch of weighted sorts
  std::vector<index_t> indices;    // payload scratch of argsort
  std::vector<Weighted<T>> pairs;  // small weighted sorts
  void reserve(index_t n, bool weighted, bool indexed = false) {
    const auto size = std::size_t(n);
    keys.resize(size);
    tmp.resize(size);
    if (weighted) {
      weights.resize(size);
      pairs.resize(size);
    }
    if (indexed) indices.resize(size);
  }
};

namespace detail {
// Flip the sign bit of positives and every bit of negatives: unsigned order == float order.
template <class U>
PYOT_ALWAYS_INLINE U to_ordered(U bits) {
  constexpr U sign = U(1) << (8 * sizeof(U) - 1);
  return (bits & sign) ? ~bits : (bits | sign);
}
template <class U>
PYOT_ALWAYS_INLINE U from_ordered(U key) {
  constexpr U sign = U(1) << (8 * sizeof(U) - 1);
  return (key & sign) ? (key & ~sign) : ~key;
}

// keys[k] = ordered image of v[k] (through memcpy: no type punning).
template <class T, class U>
void load_keys(const T* v, index_t n, U* keys) {
  static_assert(sizeof(T) == sizeof(U), "radix key width");
  std::memcpy(keys, v, sizeof(T) * std::size_t(n));
  for (index_t k = 0; k < n; ++k) keys[k] = to_ordered(keys[k]);
}
template <class T, class U>
void store_values(U* keys, index_t n, T* v) {
  for (index_t k = 0; k < n; ++k) keys[k] = from_ordered(keys[k]);
  std::memcpy(v, keys, sizeof(T) * std::size_t(n));
}

// Stable LSD radix sort of keys[0..n) (ordered images), payload[k] moving with keys[k] when
// payload is not null; ktmp / ptmp are scratch of n. The result is left in keys / payload.
template <class U, class P>
void radix_sort(U* keys, U* ktmp, P* payload, P* ptmp, index_t n) {
  constexpr int kPasses = (8 * int(sizeof(U)) + kRadixBits - 1) / kRadixBits;
  constexpr U kMask = U(kRadixBuckets - 1);
  std::array<std::array<index_t, kRadixBuckets>, kPasses> count{};
  for (index_t k = 0; k < n; ++k)
    for (int pass = 0; pass < kPasses; ++pass)
      ++count[pass][(keys[k] >> (pass * kRadixBits)) & kMask];
  U *src = keys, *dst = ktmp;
  P *psrc = payload, *pdst = ptmp;
  for (int pass = 0; pass < kPasses; ++pass) {
    const int shift = pass * kRadixBits;
    auto& c = count[pass];
    if (c[(src[0] >> shift) & kMask] == n) continue;  // one digit for all: nothing moves
    index_t offset = 0;
    for (index_t b = 0; b < kRadixBuckets; ++b) {
      const index_t size = c[b];
      c[b] = offset;
      offset += size;
    }
    for (index_t k = 0; k < n; ++k) {
      const index_t to = c[(src[k] >> shift) & kMask]++;
      dst[to] = src[k];
      if (payload) pdst[to] = psrc[k];
    }
    std::swap(src, dst);
    std::swap(psrc, pdst);
  }
  if (src != keys) {
    std::copy(src, src + n, keys);
    if (payload) std::copy(psrc, psrc + n, payload);
  }
}
}  // namespace detail

// Sorts v[0..n) ascending.
template <class T>
void sort_values(T* v, index_t n, SortScratch<T>& s) {
  if (n < kRadixMinSize) {
    std::sort(v, v + n);
    return;
  }
  detail::load_keys(v, n, s.keys.data());
  detail::radix_sort(s.keys.data(), s.tmp.data(), static_cast<char*>(nullptr),
                     static_cast<char*>(nullptr), n);
  detail::store_values(s.keys.data(), n, v);
}

// Sorts (values[k], w[k]) by value into `sorted` (n) and `cumulative` (n, the cumulative
// weights of cumulative_weights with `total`). `s` needs reserve(n, weighted = true).
template <class T>
void sort_with_weights(const T* values, const double* w, index_t n, double total, SortScratch<T>& s,
                       T* sorted, double* cumulative) {
  if (n < kRadixMinSize) {
    Weighted<T>* pairs = s.pairs.data();
    for (index_t k = 0; k < n; ++k) pairs[k] = {values[k], w[k]};
    std::sort(pairs, pairs + n,
              [](const Weighted<T>& l, const Weighted<T>& r) { return l.value < r.value; });
    for (index_t k = 0; k < n; ++k) {
      sorted[k] = pairs[k].value;
      cumulative[k] = pairs[k].weight;
    }
  } else {
    detail::load_keys(values, n, s.keys.data());
    std::copy(w, w + n, cumulative);
    detail::radix_sort(s.keys.data(), s.tmp.data(), cumulative, s.weights.data(), n);
    detail::store_values(s.keys.data(), n, sorted);
  }
  cumulative_weights(cumulative, n, total, cumulative);  // in place: reads w[k] before out[k]
}

// The permutation that sorts values ascending (ties by index, as both sorts are stable on the
// identity): order[r] is the index of rank r. `s` needs reserve(n, false, indexed = true).
template <class T>
void argsort(const T* values, index_t n, index_t* order, SortScratch<T>& s) {
  for (index_t k = 0; k < n; ++k) order[k] = k;
  if (n < kRadixMinSize) {
    std::stable_sort(order, order + n,
                     [values](index_t l, index_t r) { return values[l] < values[r]; });
    return;
  }
  detail::load_keys(values, n, s.keys.data());
  detail::radix_sort(s.keys.data(), s.tmp.data(), order, s.indices.data(), n);
}

}  // namespace pyot::line
