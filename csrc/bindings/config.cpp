// Build facts for pyot.show_config() and the machine-bound probes used by bench/.
#include <pybind11/stl.h>

#include <chrono>
#include <string>
#include <vector>

#include "common.hpp"
#include "pyot/common/logsumexp.hpp"
#include "pyot/common/threads.hpp"

#ifndef PYOT_VERSION
#define PYOT_VERSION "0+unknown"
#endif
#ifndef PYOT_COMPILER
#define PYOT_COMPILER "unknown"
#endif

namespace {

using namespace pyot;
namespace py = pybind11;

// The instruction set the multiversioned kernels run with on this machine.
std::string simd_level() {
#if PYOT_HAVE_MULTIVERSION
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
    return "AVX-512 (x86-64-v4)";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "AVX2 (x86-64-v3)";
  return "baseline (x86-64)";
#else
  return "baseline (compiler default, no run-time dispatch)";
#endif
}

template <class T>
PYOT_MULTIVERSION double exp_sum(const T* x, index_t n) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (index_t i = 0; i < n; ++i) s += exp_vec(x[i]);
  return double(s);
}

// out_i = exp_vec(x_i): the solvers' exp, elementwise (its tests compare it with a reference).
template <class T>
PYOT_MULTIVERSION void exp_map(const T* x, index_t n, T* out) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) out[i] = exp_vec(x[i]);
}

// out_i = log_vec(x_i): the solvers' vectorized log (double), elementwise, for its tests.
PYOT_MULTIVERSION void log_map(const double* x, index_t n, double* out) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) out[i] = log_vec(x[i]);
}

pyot::bind::carray<double> log_vec_array(const pyot::bind::carray<double>& x) {
  pyot::bind::carray<double> out(x.size());
  const double* in = x.data();
  double* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    log_map(in, index_t(x.size()), o);
  }
  return out;
}

template <class T>
pyot::bind::carray<T> exp_vec_array(const pyot::bind::carray<T>& x) {
  pyot::bind::carray<T> out(x.size());
  const T* in = x.data();
  T* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    exp_map(in, index_t(x.size()), o);
  }
  return out;
}

PYOT_MULTIVERSION double plain_sum(const double* x, index_t n) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (index_t i = 0; i < n; ++i) s += x[i];
  return s;
}

// Runs body(chunk) over `chunks` chunks on `threads` threads `repeats` times; returns seconds.
template <class Body>
double time_parallel(index_t chunks, int threads, int repeats, Body&& body) {
  body(0);  // warm-up: page faults and clone resolution
  const auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < repeats; ++r) parallel_for(chunks, threads, body);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Evaluations per second of the solvers' exp, all threads: the double-precision one, or the
// float one (float lanes: float32 problems) when `single`.
template <class T>
double exp_throughput(index_t n, int repeats, int threads) {
  py::gil_scoped_release release;
  const int t = resolve_threads(threads);
  const index_t chunk = 4096;
  std::vector<T> x(chunk * t);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = T(-20.0 + 20.0 * double(i % 997) / 997.0);
  const index_t per_thread = std::max<index_t>(1, n / (chunk * t));
  volatile double sink = 0.0;
  const double secs = time_parallel(t, t, repeats, [&](index_t k) {
    double s = 0.0;
    for (index_t r = 0; r < per_thread; ++r) s += exp_sum(x.data() + k * chunk, chunk);
    sink = sink + s;
  });
  return double(per_thread * chunk * t) * repeats / secs;
}

double hw_exp_throughput(index_t n, int repeats, int threads, bool single) {
  return single ? exp_throughput<float>(n, repeats, threads)
                : exp_throughput<double>(n, repeats, threads);
}

// Bytes per second of a streaming read over a buffer far larger than the caches.
double hw_read_bandwidth(index_t nbytes, int repeats, int threads) {
  py::gil_scoped_release release;
  const int t = resolve_threads(threads);
  const index_t n = nbytes / index_t(sizeof(double));
  std::vector<double> x(n);
  const index_t chunk = 1 << 16;
  const index_t chunks = n_blocks(n, chunk);
  parallel_for(chunks, t, [&](index_t k) {  // first touch by the reading threads
    for (index_t i = k * chunk; i < std::min(n, (k + 1) * chunk); ++i) x[i] = double(i & 7);
  });
  volatile double sink = 0.0;
  const double secs = time_parallel(chunks, t, repeats, [&](index_t k) {
    const index_t i0 = k * chunk;
    sink = sink + plain_sum(x.data() + i0, std::min(n, i0 + chunk) - i0);
  });
  return double(n) * sizeof(double) * repeats / secs;
}

}  // namespace

void bind_config(py::module_& m) {
  m.attr("__version__") = PYOT_VERSION;
  m.def("build_info", []() {
    py::dict info;
    info["version"] = PYOT_VERSION;
    info["compiler"] = PYOT_COMPILER;
    info["cxx_standard"] = "C++17";
    info["openmp"] = bool(PYOT_HAVE_OPENMP);
    info["max_threads"] = max_threads();
    info["simd"] = simd_level();
    info["multiversioning"] = bool(PYOT_HAVE_MULTIVERSION);
    return info;
  });
  m.def("max_threads", &max_threads);
  m.def("hw_exp_throughput", &hw_exp_throughput, py::arg("n") = index_t(1) << 24,
        py::arg("repeats") = 5, py::arg("threads") = 0, py::arg("single") = false,
        "Exp evaluations per second with the solvers' vectorized exp: double precision, or the "
        "float exp of float32 problems when single.");
  m.def("exp_vec", &exp_vec_array<float>, py::arg("x").noconvert(),
        "The solvers' vectorized exp, elementwise (float32 lanes), for tests.");
  m.def("exp_vec", &exp_vec_array<double>, py::arg("x").noconvert(),
        "The solvers' vectorized exp, elementwise (float64 lanes), for tests.");
  m.def("log_vec", &log_vec_array, py::arg("x").noconvert(),
        "The solvers' vectorized log, elementwise (float64), for tests.");
  m.def("hw_read_bandwidth", &hw_read_bandwidth, py::arg("nbytes") = index_t(1) << 30,
        py::arg("repeats") = 5, py::arg("threads") = 0,
        "Streaming read bandwidth in bytes per second.");
}
