// GPU self-test of cuda/sinkhorn.cu against a host reference built on the same pyot::CostOp.
// Exit 0: all pass; 1: a mismatch; 77: no device (then only the no-device paths are checked).
// Build and run from the repository root on a machine with a GPU:
//   nvcc -std=c++17 -Icsrc/include -Icuda -arch=sm_90 -o selftest cuda/selftest/selftest.cu \
//        cuda/sinkhorn.cu cuda/common.cu && ./selftest
// (.ci/run compiles it; tests/test_cuda.py, marked `gpu`, covers every kernel through pyot.)
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <vector>

#include "pyot/common/costs.hpp"
#include "pyot_cuda.hpp"

using pyot::Metric;
namespace pc = pyot::cuda;

template <class T>
double ref_cost(Metric metric, const T* a, const T* b, long d, T p) {
  return pyot::dispatch_metric(metric, [&](auto tag) {
    using Op = pyot::CostOp<decltype(tag)::value>;
    T acc = 0;
    for (long k = 0; k < d; ++k) acc += Op::term(a[k], b[k], p);
    return double(Op::finish(acc, p));
  });
}

template <class T>
std::vector<T> normalised(const std::vector<T>& x, long n, long d) {
  std::vector<T> out(x.size());
  for (long i = 0; i < n; ++i) {
    double s = 0;
    for (long k = 0; k < d; ++k) s += double(x[i * d + k]) * double(x[i * d + k]);
    const double sc = s > 0 ? 1.0 / std::sqrt(s) : 0.0;
    for (long k = 0; k < d; ++k) out[i * d + k] = T(double(x[i * d + k]) * sc);
  }
  return out;
}

template <class T>
T* upload(const std::vector<T>& v) {
  T* p = nullptr;
  if (cudaMalloc(&p, std::max<size_t>(1, v.size()) * sizeof(T)) != cudaSuccess) std::abort();
  if (!v.empty()) cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice);
  return p;
}

int failures = 0;

template <class T>
void one_case(Metric metric, long n, long m, long d, double p, double eps, bool neg_inf_h,
              cudaStream_t stream) {
  std::mt19937_64 rng(n * 1000003 + m * 1009 + d * 17 + int(metric));
  std::normal_distribution<double> nd;
  std::vector<T> x(n * d), y(m * d);
  for (auto& v : x) v = T(nd(rng));
  for (auto& v : y) v = T(nd(rng));
  if (n > 1 && d > 0) std::fill(x.begin() + d, x.begin() + 2 * d, T(0));  // a zero row
  std::vector<double> h(m);
  for (long j = 0; j < m; ++j) h[j] = neg_inf_h ? -INFINITY : (j % 7 == 3 ? -INFINITY : nd(rng));
  T* dx = upload(x);
  T* dy = upload(y);
  double* dh = upload(h);
  double* dout = upload(std::vector<double>(n, 12345.0));
  if (metric == Metric::Cosine) {
    pc::normalize_rows(dx, n, d, dx, stream);  // in place
    pc::normalize_rows(dy, m, d, dy, stream);
    x = normalised(x, n, d);
    y = normalised(y, m, d);
  }
  pc::lse_rows_online(dx, dy, n, m, d, metric, p, dh, 1.0 / eps, dout, stream);
  std::vector<double> out(n);
  cudaStreamSynchronize(stream);
  cudaMemcpy(out.data(), dout, n * sizeof(double), cudaMemcpyDeviceToHost);
  double worst = 0;
  for (long i = 0; i < n; ++i) {
    double mx = -INFINITY;
    std::vector<double> v(m);
    for (long j = 0; j < m; ++j) {
      v[j] = h[j] - ref_cost(metric, &x[i * d], &y[j * d], d, T(p)) / eps;
      mx = std::max(mx, v[j]);
    }
    double r = -INFINITY;
    if (mx != -INFINITY) {
      double s = 0;
      for (long j = 0; j < m; ++j) s += std::exp(v[j] - mx);
      r = mx + std::log(s);
    }
    const double err = (std::isinf(r) && r == out[i]) ? 0.0 : std::fabs(out[i] - r) / (1 + std::fabs(r));
    worst = std::max(worst, std::isnan(err) ? INFINITY : err);
  }
  const double tol = sizeof(T) == 8 ? 1e-12 : 1e-4;
  if (!(worst <= tol)) {
    ++failures;
    std::printf("FAIL %s metric=%d n=%ld m=%ld d=%ld: worst rel err %g\n",
                sizeof(T) == 8 ? "f64" : "f32", int(metric), n, m, d, worst);
  }
  cudaFree(dx);
  cudaFree(dy);
  cudaFree(dh);
  cudaFree(dout);
}

int main() {
  const int count = pc::device_count();
  std::printf("device_count() = %d\n", count);
  if (count == 0) {
    try {
      pc::lse_rows_online<double>(reinterpret_cast<double*>(8), reinterpret_cast<double*>(8), 4, 4,
                                  2, Metric::SqEuclidean, 2.0, reinterpret_cast<double*>(8), 1.0,
                                  reinterpret_cast<double*>(8), nullptr);
      std::printf("FAIL: no exception without a device\n");
      return 1;
    } catch (const pc::CudaError& e) {
      std::printf("no device: CudaError as expected: %s\n", e.what());
    }
    return 77;
  }
  cudaStream_t stream;
  cudaStreamCreate(&stream);
  const Metric metrics[] = {Metric::SqEuclidean, Metric::Euclidean, Metric::Cityblock,
                            Metric::Minkowski, Metric::Cosine};
  int cases = 0;
  for (Metric metric : metrics)
    for (long n : {1L, 127L, 128L, 300L})
      for (long m : {0L, 1L, 31L, 32L, 33L, 100L})
        for (long d : {0L, 1L, 3L, 16L, 17L, 40L}) {
          one_case<double>(metric, n, m, d, 1.5, 0.05, false, stream);
          one_case<float>(metric, n, m, d, 1.5, 0.5, false, stream);
          cases += 2;
        }
  one_case<double>(Metric::SqEuclidean, 50, 40, 3, 2.0, 0.1, true, stream);  // all -inf
  // A large case: stresses many tiles and an eps small enough for the max shift to matter.
  one_case<double>(Metric::SqEuclidean, 2000, 5000, 3, 2.0, 1e-3, false, stream);
  one_case<float>(Metric::Euclidean, 2000, 5000, 64, 2.0, 1e-2, false, stream);
  // Few rows, many columns: y is cut into many ranges merged by the second kernel.
  one_case<double>(Metric::Cityblock, 3, 100003, 2, 2.0, 0.05, false, stream);
  one_case<float>(Metric::Minkowski, 130, 20000, 5, 3.0, 0.1, false, stream);
  cases += 5;
  // Timing: n = m = 20000, d = 3.
  {
    const long n = 20000, m = 20000, d = 3;
    std::vector<float> x(n * d, 0.5f), y(m * d, 0.25f);
    std::vector<double> h(m, 0.0);
    float* dx = upload(x);
    float* dy = upload(y);
    double* dh = upload(h);
    double* dout = upload(std::vector<double>(n));
    cudaEvent_t a, b;
    cudaEventCreate(&a);
    cudaEventCreate(&b);
    pc::lse_rows_online(dx, dy, n, m, d, Metric::SqEuclidean, 2.0, dh, 10.0, dout, stream);
    cudaEventRecord(a, stream);
    for (int r = 0; r < 10; ++r)
      pc::lse_rows_online(dx, dy, n, m, d, Metric::SqEuclidean, 2.0, dh, 10.0, dout, stream);
    cudaEventRecord(b, stream);
    cudaEventSynchronize(b);
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    std::printf("timing: n=m=20000 d=3 float32 sqeuclidean: %.3f ms per half-step\n", ms / 10);
  }
  std::printf("%d cases, %d failures\n", cases, failures);
  return failures ? 1 : 0;
}
