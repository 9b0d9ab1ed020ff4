// The two register-blocked products of the GEMM-form kernels, shared by the dense costs
// (costs.hpp: GemmPoints, sqeuclidean_gemm_rows), the mini-batch costs and the online tiles of
// the entropic map and point gradients (sinkhorn.hpp: gradient_block_gemm):
//   dot_block           <x_i, y_j> for a block of rows of x against a range of columns of y;
//   weighted_sum_block  acc_i += sum_t w_it v_t, a block of rows of weights times points.
// Both are always-inlined into the multiversioned (AVX-512 / AVX2+FMA / baseline) callers. Each
// output entry is summed in a fixed order that depends neither on the block it falls in nor on
// the thread count.
#pragma once
#include <algorithm>
#include <type_traits>
#include <vector>

#include "pyot/common/config.hpp"

namespace pyot {

constexpr index_t kGemmRows = 8;  // divides kRowBlock (16): the online tiles take no partial path

// The panel layout of a cloud for dot_block: points in panels of kPanel<T> (one 64-byte line),
// coordinate k of point j at out[(j / P) * P * d + k * P + j % P], the last panel zero-padded,
// so a panel's d lines are contiguous (prefetched, and reused from L1 by every block of rows).
template <class T>
constexpr index_t kPanel = index_t(64 / sizeof(T));

template <class T, class Point>
void to_panels(index_t m, index_t d, Point&& point, std::vector<T>& out) {
  constexpr index_t P = kPanel<T>;
  out.assign(std::size_t((m + P - 1) / P * P * d), T(0));
  for (index_t j = 0; j < m; ++j) {
    const auto* r = point(j);
    T* dst = out.data() + (j / P) * P * d + j % P;
    for (index_t k = 0; k < d; ++k) dst[k * P] = T(r[k]);
  }
}

// put(i, j, s) with s = sum_k x_ik y_kj (summed in A) for i in [i0, i1), j in [j0, j1) (j0 a
// multiple of kPanel<TY>): x row-major (d values a row), y in the panel layout. kGemmRows rows
// of x against one panel of y columns at a time, one FMA per term.
template <class A, class TX, class TY, class Put>
PYOT_ALWAYS_INLINE void dot_block(const TX* x, const TY* y, index_t d, index_t i0, index_t i1,
                                  index_t j0, index_t j1, Put&& put) {
  constexpr index_t R = kGemmRows, W = kPanel<TY>;
  for (index_t c0 = j0; c0 < j1; c0 += W) {
    const index_t w = std::min(W, j1 - c0);
    const TY* panel = y + (c0 / W) * W * d;
    for (index_t r0 = i0; r0 < i1; r0 += R) {
      const index_t h = std::min(R, i1 - r0);
      A acc[R][W] = {};
      if (h == R) {
        for (index_t k = 0; k < d; ++k) {
          const TY* yk = panel + k * W;
          for (index_t r = 0; r < R; ++r) {
            const A xv = A(x[(r0 + r) * d + k]);
#pragma omp simd
            for (index_t c = 0; c < W; ++c) acc[r][c] += xv * A(yk[c]);
          }
        }
      } else {
        for (index_t k = 0; k < d; ++k) {
          const TY* yk = panel + k * W;
          for (index_t r = 0; r < h; ++r) {
            const A xv = A(x[(r0 + r) * d + k]);
#pragma omp simd
            for (index_t c = 0; c < W; ++c) acc[r][c] += xv * A(yk[c]);
          }
        }
      }
      for (index_t r = 0; r < h; ++r)
        for (index_t c = 0; c < w; ++c) put(r0 + r, c0 + c, acc[r][c]);
    }
  }
}

// acc[r * d + k] += sum_t w[r * ldw + t] v[t * d + k] for r < rows, k < d, t < len (v: len points,
// row-major), 8 rows against one 64-byte vector of coordinates at a time, each point's slice
// loaded once for the 8 rows (points in chunks of 256). With double weights every product is
// formed and summed in double; with weights in T = float the products and partial sums of
// kPartial consecutive terms are in float (relative error ~ kPartial u on the partial, which
// the callers keep small by summing centred points) and only those partials are accumulated in
// double: half the vector work.
constexpr index_t kPartial = 16;

template <class TW, class T>
PYOT_ALWAYS_INLINE void weighted_sum_block(const TW* w, index_t ldw, index_t rows, const T* v,
                                           index_t len, index_t d, double* acc) {
  constexpr index_t R = 8, C = index_t(64 / sizeof(TW)), kChunk = 256;
  // Terms per partial sum (double weights: a whole chunk, one double sum).
  constexpr index_t K = std::is_same_v<TW, double> ? kChunk : kPartial;
  using P = TW;  // the products' and partial sums' type
  // A last slice of fewer than C coordinates is copied, zero-padded, so it takes the vector path.
  alignas(64) T pad[kChunk * C];
  for (index_t k0 = 0; k0 < d; k0 += C) {
    const index_t cw = std::min(C, d - k0);
    for (index_t t0 = 0; t0 < len; t0 += kChunk) {
      const index_t t1 = std::min(len, t0 + kChunk);
      const T* base = v + t0 * d + k0;
      index_t stride = d;
      if (cw < C) {
        for (index_t t = 0; t < t1 - t0; ++t)
          for (index_t c = 0; c < C; ++c) pad[t * C + c] = c < cw ? base[t * d + c] : T(0);
        base = pad;
        stride = C;
      }
      for (index_t r0 = 0; r0 < rows; r0 += R) {
        const index_t h = std::min(R, rows - r0);
        double s[R][C] = {};
        for (index_t u0 = t0; u0 < t1; u0 += K) {
          const index_t u1 = std::min(t1, u0 + K);
          P part[R][C] = {};
          if (h == R) {
            for (index_t t = u0; t < u1; ++t) {
              const T* vt = base + (t - t0) * stride;
              for (index_t r = 0; r < R; ++r) {
                const P wr = P(w[(r0 + r) * ldw + t]);
#pragma omp simd
                for (index_t c = 0; c < C; ++c) part[r][c] += wr * P(vt[c]);
              }
            }
          } else {
            for (index_t t = u0; t < u1; ++t) {
              const T* vt = base + (t - t0) * stride;
              for (index_t r = 0; r < h; ++r) {
                const P wr = P(w[(r0 + r) * ldw + t]);
#pragma omp simd
                for (index_t c = 0; c < C; ++c) part[r][c] += wr * P(vt[c]);
              }
            }
          }
          for (index_t r = 0; r < R; ++r)
#pragma omp simd
            for (index_t c = 0; c < C; ++c) s[r][c] += double(part[r][c]);
        }
        for (index_t r = 0; r < h; ++r)
          for (index_t c = 0; c < cw; ++c) acc[(r0 + r) * d + k0 + c] += s[r][c];
      }
    }
  }
}

}  // namespace pyot
