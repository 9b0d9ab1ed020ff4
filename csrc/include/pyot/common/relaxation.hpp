// Adaptive over-relaxation of the Sinkhorn updates, shared by the CPU driver (sinkhorn.hpp)
// and the CUDA one (cuda/sinkhorn.cu): plain host C++, no device code.
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>

namespace pyot::sinkhorn::detail {

// Over-relaxation (ALGORITHMS 2.5): w = 2 / (1 + sqrt(1 - r)) from the observed linear rate r of
// plain iterations, raised when the rate observed at w shows a larger plain rate; back to w = 1
// for good if the error grows.
class Relaxation {
 public:
  explicit Relaxation(bool enabled) : enabled_(enabled) {}
  void finish_plain() { w_ = 1.0; }
  // The weight observe() returned last (1 before the first call).
  double weight() const { return w_; }
  // Feeds the error measured this iteration; returns the weight for the next updates.
  double observe(double err) {
    if (!enabled_) return 1.0;
    double q = 0.0;
    const bool steady = steady_rate(err, q);
    if (w_ == 1.0) {
      if (steady && err < 1.0 && q > 0.5) {
        const double w = optimal_weight(q);
        if (w > 1.05) {
          w_ = w;
          best_ = err;
          since_ = 0;
        }
      }
    } else {
      best_ = std::min(best_, err);
      if (err > 4.0 * best_ || !std::isfinite(err)) {
        w_ = 1.0;
        enabled_ = false;
        return w_;
      }
      // The plain rate measured while it still grows (the first iterations) gives a weight below
      // the optimum; the rate q at weight w then exceeds w - 1 (the optimum's rate) and tells the
      // plain rate: an SOR eigenvalue mu relates to the plain one lambda^2 by
      // (mu + w - 1)^2 = mu w^2 lambda^2 [Young 1971]. The weight is raised to that optimum.
      if (++since_ >= 3 && steady && q > w_ - 1.0 + kRaiseMargin) {
        const double w = optimal_weight((q + w_ - 1.0) * (q + w_ - 1.0) / (q * w_ * w_));
        if (w > w_ + 0.02) {
          w_ = w;
          since_ = 0;
        }
      }
    }
    prev2_ = prev_;
    prev_ = err;
    return w_;
  }

 private:
  // q = err / (the previous error) when it is a linear rate below 1: the two last ratios agree
  // within kStable.
  bool steady_rate(double err, double& q) const {
    if (!(err > 0.0 && prev_ > 0.0 && prev2_ > 0.0)) return false;
    q = err / prev_;
    return q < 1.0 && std::fabs(q - prev_ / prev2_) < kStable;
  }
  // The optimal weight for a plain linear rate (kMaxWeight from rate 1 on).
  static double optimal_weight(double plain_rate) {
    return plain_rate < 1.0 ? std::min(kMaxWeight, 2.0 / (1.0 + std::sqrt(1.0 - plain_rate)))
                            : kMaxWeight;
  }

  bool enabled_;
  // Successive error ratios within kStable of each other are a rate; the weight is raised
  // when the rate at it exceeds w - 1 by kRaiseMargin (measured on uniform clouds, n = 1000:
  // a looser kStable gained at eps = 0.01 and lost more at eps = 0.001, the margin mattered
  // little between 0.02 and 0.1).
  static constexpr double kMaxWeight = 1.9, kStable = 0.01, kRaiseMargin = 0.05;
  int since_ = 0;  // iterations at the current weight
  double w_ = 1.0, prev_ = 0.0, prev2_ = 0.0, best_ = std::numeric_limits<double>::infinity();
};

}  // namespace pyot::sinkhorn::detail
