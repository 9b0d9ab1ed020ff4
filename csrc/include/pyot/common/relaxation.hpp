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
    if (w_ == 1.0) {
      if (err > 0.0 && err < 1.0 && prev_ > 0.0 && prev2_ > 0.0) {
        const double q1 = err / prev_, q2 = prev_ / prev2_;
        if (q1 > 0.5 && q1 < 1.0 && std::fabs(q1 - q2) < kStable) {
          const double w = std::min(kMaxWeight, 2.0 / (1.0 + std::sqrt(1.0 - q1)));
          if (w > 1.05) {
            w_ = w;
            best_ = err;
            since_ = 0;
          }
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
      if (++since_ >= 3 && err > 0.0 && prev_ > 0.0 && prev2_ > 0.0) {
        const double q1 = err / prev_, q2 = prev_ / prev2_;
        if (q1 < 1.0 && std::fabs(q1 - q2) < kStable && q1 > w_ - 1.0 + kRaiseMargin) {
          const double lam2 = (q1 + w_ - 1.0) * (q1 + w_ - 1.0) / (q1 * w_ * w_);
          const double w =
              lam2 < 1.0 ? std::min(kMaxWeight, 2.0 / (1.0 + std::sqrt(1.0 - lam2))) : kMaxWeight;
          if (w > w_ + 0.02) {
            w_ = w;
            since_ = 0;
          }
        }
      }
    }
    prev2_ = prev_;
    prev_ = err;
    return w_;
  }

 private:
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
