// A vectorizable exp and the log-sum-exp reductions of the entropic solvers.
//
// `exp_vec` is written as straight-line scalar code (no calls, no table lookups) so that the
// compiler turns loops over it into SIMD code in each multiversioned clone; it is accurate to a
// few ulp on [-708, 709] and flushes smaller arguments (and -inf) to exactly 0.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "pyot/common/config.hpp"

namespace pyot {

PYOT_HD std::uint64_t bits_of(double x) {
  std::uint64_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}
PYOT_HD double double_of(std::uint64_t u) {
  double x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

PYOT_ALWAYS_INLINE double exp_vec(double x) {
  constexpr double kLog2e = 1.4426950408889634074;
  constexpr double kLn2Hi = 6.93147180369123816490e-01;  // fdlibm split: n * kLn2Hi is exact
  constexpr double kLn2Lo = 1.90821492927058770002e-10;
  constexpr double kShifter = 6755399441055744.0;  // 1.5 * 2^52: rounds to an integer in place
  const double xc = x < -708.0 ? -708.0 : (x > 709.0 ? 709.0 : x);
  const double t = xc * kLog2e + kShifter;
  const double n = t - kShifter;
  const double r = (xc - n * kLn2Hi) - n * kLn2Lo;  // |r| <= ln(2) / 2
  // Taylor polynomial of degree 12: truncation error below 2e-16 on |r| <= ln(2) / 2.
  double p = 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  // 2^n from the low bits of t: (bits(t) + 1023) << 52 drops the shifter's own bits.
  const double scale = double_of((bits_of(t) + 1023u) << 52);
  const double y = p * scale;
  return x < -708.0 ? 0.0 : y;
}

// A one-pass sum of exp(v) is used when the caller shifts the exponents by a good guess of
// the answer (the current potential); outside this range the sum is redone with the maximum
// subtracted, so the result is exact either way.
constexpr double kSafeSumLow = 1e-250;
constexpr double kSafeSumHigh = 1e250;

PYOT_HD bool in_safe_range(double s) { return s > kSafeSumLow && s < kSafeSumHigh; }

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// log(sum_j exp(v_j)) over a materialised vector, max-shifted (the exact fallback).
inline double lse_two_pass(const double* v, index_t n) {
  double mx = kNegInf;
  for (index_t j = 0; j < n; ++j) mx = v[j] > mx ? v[j] : mx;
  if (mx == kNegInf) return kNegInf;
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (index_t j = 0; j < n; ++j) s += exp_vec(v[j] - mx);
  return mx + std::log(s);
}

}  // namespace pyot
