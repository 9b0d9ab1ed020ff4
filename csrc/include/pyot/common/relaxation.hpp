// Adaptive over-relaxation of the Sinkhorn updates, shared by the CPU driver (sinkhorn.hpp)
// and the CUDA one (cuda/sinkhorn.cu): plain host C++, no device code.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>

namespace pyot::sinkhorn::detail {

// Over-relaxation (ALGORITHMS 2.5): w = 2 / (1 + sqrt(1 - r)) from the observed linear rate r of
// plain iterations; back to w = 1 for good if the error grows.
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
        if (q1 > lo_ && q1 < 1.0 && std::fabs(q1 - q2) < stab_) {
          const double w = std::min(1.9, 2.0 / (1.0 + std::sqrt(1.0 - q1)));
          if (w > 1.05) {
            w_ = w;
            best_ = err;
          }
        }
      }
      prev2_ = prev_;
      prev_ = err;
    } else {
      best_ = std::min(best_, err);
      if (err > 4.0 * best_ || !std::isfinite(err)) {
        w_ = 1.0;
        enabled_ = false;
      }
    }
    return w_;
  }

 private:
  bool enabled_;
  double lo_ = std::getenv("PYOT_RLO") ? std::atof(std::getenv("PYOT_RLO")) : 0.5;  // TEMP-KNOB
  double stab_ = std::getenv("PYOT_RSTAB") ? std::atof(std::getenv("PYOT_RSTAB")) : 0.01;
  double w_ = 1.0, prev_ = 0.0, prev2_ = 0.0, best_ = std::numeric_limits<double>::infinity();
};

}  // namespace pyot::sinkhorn::detail
