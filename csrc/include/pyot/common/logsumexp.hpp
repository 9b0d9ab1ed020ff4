// A vectorizable exp and the log-sum-exp reductions of the entropic solvers.
//
// `exp_vec` is written as straight-line scalar code (no calls, no table lookups) so that the
// compiler turns loops over it into SIMD code in each multiversioned clone. The double version is
// accurate to a few ulp on [-708, 709] and flushes smaller arguments (and -inf) to exactly 0; the
// float version (twice the lanes per vector) is accurate to 2 ulp, returns +inf past float's
// range and 0 for results below 2^-125 (x < -86.99; -inf included), never a subnormal.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "pyot/common/config.hpp"

namespace pyot {

// The bits of x as a To of the same size (C++17 has no std::bit_cast).
template <class To, class From>
PYOT_HD To bit_cast(From x) {
  static_assert(sizeof(To) == sizeof(From), "bit_cast needs types of equal size");
  To y;
  std::memcpy(&y, &x, sizeof y);
  return y;
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
  const double scale = bit_cast<double>((bit_cast<std::uint64_t>(t) + 1023u) << 52);
  const double y = p * scale;
  return x < -708.0 ? 0.0 : y;
}

PYOT_ALWAYS_INLINE float exp_vec(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f;  // Cody-Waite split: n * kLn2Hi is exact for |n| < 2^8
  constexpr float kLn2Lo = -2.12194440e-4f;
  constexpr float kShifter = 12582912.0f;  // 1.5 * 2^23: rounds to an integer in place
  // No clamp of x (GCC turns a clamp to constants into three masked cases): the arguments
  // outside [-87.5, 89] are answered by the selects at the end, whatever t holds for them.
  const float t = x * kLog2e + kShifter;
  const float n = t - kShifter;
  const float r = (x - n * kLn2Hi) - n * kLn2Lo;  // |r| <= ln(2) / 2 (+ rounding)
  // 2 e^r = 2 + 2r + r^2 P(r): the Cephes expf minimax polynomial with its coefficients doubled
  // (exact), so that the scale is 2^(n - 1) and n = 128 still has a normal scale (x in [-87.5,
  // 89] gives n in [-126, 128]: the exponent field n + 126 is in [0, 254], 0 giving exactly 0,
  // and 2 e^r 2^127 = inf past float's range).
  float p = 2.0f * 1.9875691500e-4f;
  p = p * r + 2.0f * 1.3981999507e-3f;
  p = p * r + 2.0f * 8.3334519073e-3f;
  p = p * r + 2.0f * 4.1665795894e-2f;
  p = p * r + 2.0f * 1.6666665459e-1f;
  p = p * r + 2.0f * 5.0000001201e-1f;
  const float y = p * (r * r) + (2.0f * r + 2.0f);
  // 2^(n - 1) from t's low bits.
  const float scale = bit_cast<float>((bit_cast<std::uint32_t>(t) + 126u) << 23);
  const float z = y * scale;
  return x < -87.5f ? 0.0f : (x > 89.0f ? std::numeric_limits<float>::infinity() : z);
}

// The natural log, written like exp_vec (straight-line, no calls or tables) for the loops that
// take logs of many sums at once (the scaling domain's ratios). fdlibm's method: x = 2^k z with
// z in [sqrt(1/2), sqrt(2)), log z = 2 atanh(s), s = (z - 1) / (z + 1), by its minimax
// polynomial; within 1 ulp on the positive doubles, subnormals included. log(0) = -inf,
// log(inf) = inf, NaN for negative x and NaN.
PYOT_ALWAYS_INLINE double log_vec(double x) {
  constexpr double kLn2Hi = 6.93147180369123816490e-01;  // as in exp_vec: k * kLn2Hi is exact
  constexpr double kLn2Lo = 1.90821492927058770002e-10;
  constexpr double kLg1 = 6.666666666666735130e-01, kLg2 = 3.999999999940941908e-01;
  constexpr double kLg3 = 2.857142874366239149e-01, kLg4 = 2.222219843214978396e-01;
  constexpr double kLg5 = 1.818357216161805012e-01, kLg6 = 1.531383769920937332e-01;
  constexpr double kLg7 = 1.479819860511658591e-01;
  constexpr std::uint64_t kSqrtHalf = 0x3fe6a09e667f3bcdu;  // the bits of sqrt(1/2)
  constexpr std::uint64_t kExpField = 0xfff0000000000000u;  // sign and exponent
  const bool tiny = x < std::numeric_limits<double>::min();  // subnormal: scaled by 2^54 first
  const std::uint64_t ix = bit_cast<std::uint64_t>(tiny ? x * 18014398509481984.0 : x);
  // tmp's top 12 bits hold k in two's complement (z = x / 2^k): as a double without an int64
  // conversion (AVX2 has none), 2^52 + (k + 2048) from the bits, minus 2^52 + 2048.
  const std::uint64_t tmp = ix - kSqrtHalf;
  const double k = bit_cast<double>(((tmp >> 52) ^ 0x800u) | 0x4330000000000000u) -
                   (4503599627370496.0 + 2048.0) - (tiny ? 54.0 : 0.0);
  const double z = bit_cast<double>(ix - (tmp & kExpField));
  const double f = z - 1.0, s = f / (2.0 + f), s2 = s * s, s4 = s2 * s2;
  const double t1 = s4 * (kLg2 + s4 * (kLg4 + s4 * kLg6));
  const double t2 = s2 * (kLg1 + s4 * (kLg3 + s4 * (kLg5 + s4 * kLg7)));
  const double hfsq = 0.5 * f * f;
  const double y = k * kLn2Hi - ((hfsq - (s * (hfsq + (t1 + t2)) + k * kLn2Lo)) - f);
  constexpr double kInf = std::numeric_limits<double>::infinity();
  return x > 0.0 ? (x < kInf ? y : x)
                 : (x == 0.0 ? -kInf : std::numeric_limits<double>::quiet_NaN());
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
