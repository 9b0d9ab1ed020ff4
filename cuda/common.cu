// Device queries, device memory for numpy callers, and the fixed-order partial sums shared by
// the kernels of cuda/ (see common.cuh).
#include <cuda_runtime.h>

#include "common.cuh"
#include "pyot_cuda.hpp"

namespace pyot::cuda {
namespace detail {
namespace {

__global__ void __launch_bounds__(kReduceThreads)
    sum_parts_kernel(const double* __restrict__ parts, index_t count, double* __restrict__ out) {
  __shared__ double shared[kReduceThreads];
  const double* row = parts + index_t(blockIdx.x) * count;
  double s = 0.0;
  for (index_t k = threadIdx.x; k < count; k += kReduceThreads) s += row[k];
  s = block_sum(s, shared);
  if (threadIdx.x == 0) out[blockIdx.x] = s;
}

}  // namespace

void sum_parts(const double* parts, index_t count, index_t segments, double* out,
               cudaStream_t stream) {
  if (segments <= 0) return;
  require(segments <= kMaxGridX, "sum_parts", "too many segments");
  sum_parts_kernel<<<unsigned(segments), kReduceThreads, 0, stream>>>(parts, count, out);
  check_launch("sum_parts_kernel launch");
}

}  // namespace detail

int device_count() noexcept {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // clear it, so a later launch check does not report it
    return 0;
  }
  return count;
}

void* device_alloc(std::size_t bytes) {
  void* ptr = nullptr;
  if (bytes == 0) return nullptr;
  detail::check(cudaMalloc(&ptr, bytes), "cudaMalloc");
  return ptr;
}

void device_free(void* ptr) noexcept {
  if (ptr != nullptr) (void)cudaFree(ptr);
}

void copy_to_device(void* dst, const void* src, std::size_t bytes, stream_t stream) {
  if (bytes == 0) return;
  const auto s = detail::as_cuda(stream);
  detail::check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s), "copy to device");
  detail::check(cudaStreamSynchronize(s), "copy to device (synchronize)");
}

void copy_to_host(void* dst, const void* src, std::size_t bytes, stream_t stream) {
  if (bytes == 0) return;
  const auto s = detail::as_cuda(stream);
  detail::check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s), "copy to host");
  detail::check(cudaStreamSynchronize(s), "copy to host (synchronize)");
}

void synchronize(stream_t stream) {
  detail::check(cudaStreamSynchronize(detail::as_cuda(stream)), "cudaStreamSynchronize");
}

}  // namespace pyot::cuda
