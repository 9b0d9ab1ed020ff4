// Thread helpers over OpenMP (serial when the build has none). Work is split so that every
// output is reduced by one thread in a fixed order: results never depend on the thread count.
#pragma once
#include <algorithm>
#include <exception>
#include <mutex>

#include "pyot/common/config.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace pyot {

inline int max_threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

inline int resolve_threads(int requested) {
  return requested > 0 ? std::min(requested, 4 * max_threads() + 64) : max_threads();
}

// Cost entries per pass below which a solver uses fewer threads: a parallel region costs
// microseconds on an idle machine but up to a scheduler quantum when another process holds a
// core (measured: a 500 x 500 Sinkhorn ran 100x slower on 2 threads than on 1 that way).
constexpr index_t kMinWorkPerThread = index_t{1} << 18;

// Threads worth using for passes over `work` cost entries: at most one per kMinWorkPerThread.
inline int threads_for_work(int requested, index_t work) {
  const index_t useful = std::max<index_t>(1, work / kMinWorkPerThread);
  return static_cast<int>(std::min<index_t>(resolve_threads(requested), useful));
}

inline int thread_id() {
#if defined(_OPENMP)
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// Runs body(i) for i in [0, n) on up to `threads` threads (dynamic schedule). The first
// exception thrown by a worker is rethrown on the calling thread after the loop.
template <class Body>
void parallel_for(index_t n, int threads, Body&& body) {
  if (n <= 0) return;
  threads = static_cast<int>(std::min<index_t>(std::max(threads, 1), n));
  if (threads == 1) {
    for (index_t i = 0; i < n; ++i) body(i);
    return;
  }
  std::exception_ptr error;
  std::mutex error_mutex;
#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
#endif
  for (index_t i = 0; i < n; ++i) {
    try {
      body(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

// Runs first(i) for i in [0, n1), then, once all of them have returned, second(j) for j in
// [0, n2): two dependent loops in one parallel region, so that the threads wake up once for
// both (an iteration of a bandwidth-bound solver is a few hundred microseconds at n = 1000).
// Dynamic schedules as parallel_for; the first exception is rethrown after the region (second
// does not run once first has thrown).
template <class First, class Second>
void parallel_for_then(index_t n1, index_t n2, int threads, First&& first, Second&& second) {
  threads = static_cast<int>(std::min<index_t>(std::max(threads, 1), std::max(n1, n2)));
  if (threads <= 1) {
    for (index_t i = 0; i < n1; ++i) first(i);
    for (index_t j = 0; j < n2; ++j) second(j);
    return;
  }
  std::exception_ptr error;
  std::mutex error_mutex;
  const auto guarded = [&](auto& body, index_t i) {
    try {
      body(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  };
#if defined(_OPENMP)
#pragma omp parallel num_threads(threads)
#endif
  {
#if defined(_OPENMP)
#pragma omp for schedule(dynamic, 1)
#endif
    for (index_t i = 0; i < n1; ++i) guarded(first, i);
    // (the implicit barrier of the loop above)
    bool failed;
    {
      std::lock_guard<std::mutex> lock(error_mutex);
      failed = error != nullptr;
    }
#if defined(_OPENMP)
#pragma omp for schedule(dynamic, 1)
#endif
    for (index_t j = 0; j < n2; ++j)
      if (!failed) guarded(second, j);
  }
  if (error) std::rethrow_exception(error);
}

// Number of fixed-size blocks covering n items: block boundaries never depend on threads.
inline index_t n_blocks(index_t n, index_t block) { return (n + block - 1) / block; }

// Runs body(i0, i1) over the fixed blocks [i0, i1) of size `block` covering [0, n).
template <class Body>
void for_blocks(index_t n, index_t block, int threads, Body&& body) {
  parallel_for(n_blocks(n, block), threads,
               [&](index_t b) { body(b * block, std::min(n, (b + 1) * block)); });
}

}  // namespace pyot
