// Bindings of the CUDA kernels (cuda/pyot_cuda.hpp) and the CUDA build facts.
//
// The queries are always registered, so `pyot.cuda_available()` answers on every build: False
// when the module was built without PYOT_CUDA, or when no driver or device is present (the
// runtime is linked statically, so asking never fails the import). The kernels themselves are
// exposed only in a CUDA build, as private `_cuda_*` functions taking raw device pointers as
// integers: the torch layer owns the tensors, their validation and their stream, and passes
// `tensor.data_ptr()` and `torch.cuda.current_stream().cuda_stream`.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#ifdef PYOT_WITH_CUDA
#include "pyot_cuda.hpp"
#endif

namespace py = pybind11;

namespace {

constexpr bool kCudaBuilt =
#ifdef PYOT_WITH_CUDA
    true;
#else
    false;
#endif

int cuda_device_count() noexcept {
#ifdef PYOT_WITH_CUDA
  return pyot::cuda::device_count();
#else
  return 0;
#endif
}

#ifdef PYOT_WITH_CUDA

template <class T>
const T* cptr(std::uintptr_t address) {
  return reinterpret_cast<const T*>(address);
}
template <class T>
T* mptr(std::uintptr_t address) {
  return reinterpret_cast<T*>(address);
}
pyot::cuda::stream_t as_stream(std::uintptr_t address) {
  return reinterpret_cast<pyot::cuda::stream_t>(address);
}

// "float32" -> false, "float64" -> true; anything else is a caller bug worth a clear message.
bool is_float64(const std::string& fn, const std::string& dtype) {
  if (dtype == "float32") return false;
  if (dtype == "float64") return true;
  throw std::invalid_argument(fn + ": dtype must be 'float32' or 'float64', got '" + dtype + "'");
}

pyot::Metric as_metric(int metric) {
  if (metric < 0 || metric > static_cast<int>(pyot::Metric::Cosine)) {
    throw std::invalid_argument("_cuda_lse_rows_online: unknown metric code " +
                                std::to_string(metric));
  }
  return static_cast<pyot::Metric>(metric);
}

void lse_rows_online(std::uintptr_t x, std::uintptr_t y, std::int64_t n, std::int64_t m,
                     std::int64_t d, int metric, double p, std::uintptr_t h, double inv_eps,
                     std::uintptr_t out, std::uintptr_t stream, const std::string& dtype) {
  const bool f64 = is_float64("_cuda_lse_rows_online", dtype);
  const pyot::Metric kind = as_metric(metric);
  py::gil_scoped_release release;
  if (f64) {
    pyot::cuda::lse_rows_online(cptr<double>(x), cptr<double>(y), n, m, d, kind, p, cptr<double>(h),
                                inv_eps, mptr<double>(out), as_stream(stream));
  } else {
    pyot::cuda::lse_rows_online(cptr<float>(x), cptr<float>(y), n, m, d, kind, p, cptr<double>(h),
                                inv_eps, mptr<double>(out), as_stream(stream));
  }
}

void normalize_rows(std::uintptr_t x, std::int64_t n, std::int64_t d, std::uintptr_t out,
                    std::uintptr_t stream, const std::string& dtype) {
  const bool f64 = is_float64("_cuda_normalize_rows", dtype);
  py::gil_scoped_release release;
  if (f64) {
    pyot::cuda::normalize_rows(cptr<double>(x), n, d, mptr<double>(out), as_stream(stream));
  } else {
    pyot::cuda::normalize_rows(cptr<float>(x), n, d, mptr<float>(out), as_stream(stream));
  }
}

void bind_kernels(py::module_& m) {
  m.def("_cuda_lse_rows_online", &lse_rows_online, py::arg("x_ptr"), py::arg("y_ptr"), py::arg("n"),
        py::arg("m"), py::arg("d"), py::arg("metric"), py::arg("p"), py::arg("h_ptr"),
        py::arg("inv_eps"), py::arg("out_ptr"), py::arg("stream"), py::arg("dtype"),
        "out_i = LSE_j(h_j - c(x_i, y_j) * inv_eps) on device pointers (x, y: dtype; h, out: "
        "float64), launched on `stream`. Asynchronous; raises on a failed launch.");
  m.def("_cuda_normalize_rows", &normalize_rows, py::arg("x_ptr"), py::arg("n"), py::arg("d"),
        py::arg("out_ptr"), py::arg("stream"), py::arg("dtype"),
        "out_i = x_i / ||x_i|| (zero rows stay zero) on device pointers, for the cosine metric; "
        "out_ptr may equal x_ptr.");
}

#endif  // PYOT_WITH_CUDA

}  // namespace

void bind_cuda(py::module_& m) {
  m.def(
      "cuda_built", [] { return kCudaBuilt; },
      "True if this build of pyot._core includes the CUDA kernels.");
  m.def("cuda_device_count", &cuda_device_count,
        "Number of usable CUDA devices (0 without a CUDA build, driver or device).");
  m.def(
      "cuda_available", [] { return kCudaBuilt && cuda_device_count() > 0; },
      "True if the CUDA kernels were built and a CUDA device is usable.");
#ifdef PYOT_WITH_CUDA
  bind_kernels(m);
#endif
}
