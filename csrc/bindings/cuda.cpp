// Bindings of the CUDA kernels (cuda/pyot_cuda.hpp) and the CUDA build facts.
//
// `pyot._core.CudaError` (a RuntimeError; re-exported as pyot.CudaError) is registered on every
// build, so code can catch it whether or not this build has kernels. The queries are always
// registered, so `pyot.cuda_available()` answers on every build: False
// when the module was built without PYOT_CUDA, or when no driver or device is present (the
// runtime is linked statically, so asking never fails the import). The kernels themselves are
// exposed only in a CUDA build, as private `_cuda_*` functions taking raw device pointers as
// integers: the torch layer owns the tensors, their validation and their stream, and passes
// `tensor.data_ptr()` and `torch.cuda.current_stream().cuda_stream`.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <tuple>

// No CUDA header: the launchers' declarations and CudaError are plain C++.
#include "pyot_cuda.hpp"

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
    throw std::invalid_argument("pyot._core._cuda: unknown metric code " + std::to_string(metric));
  }
  return static_cast<pyot::Metric>(metric);
}

// Calls fn(T{}) with T = float or double as `dtype` says.
template <class Fn>
decltype(auto) with_dtype(const std::string& fn_name, const std::string& dtype, Fn&& fn) {
  if (is_float64(fn_name, dtype)) return fn(double{});
  return fn(float{});
}

pyot::cuda::SinkhornOptions sinkhorn_options(double eps, double tol, std::int64_t max_iter,
                                             double eps_scaling, double eps_start, bool value) {
  pyot::cuda::SinkhornOptions o;
  o.eps = eps;
  o.tol = tol;
  o.max_iter = max_iter;
  o.eps_scaling = eps_scaling;
  o.eps_start = eps_start;
  o.value = value;
  return o;
}

using Outcome = std::tuple<int, std::int64_t, double, double, double>;

Outcome as_tuple(const pyot::cuda::SinkhornOutcome& r) {
  return {r.status, r.n_iter, r.marginal_error, r.value, r.objective};
}

Outcome sinkhorn_online(std::uintptr_t x, std::uintptr_t y, std::int64_t n, std::int64_t m,
                        std::int64_t d, int metric, double p, std::uintptr_t a, std::uintptr_t b,
                        std::uintptr_t f, std::uintptr_t g, double eps, double tol,
                        std::int64_t max_iter, double eps_scaling, double eps_start, bool value,
                        std::uintptr_t stream, const std::string& dtype) {
  const pyot::Metric kind = as_metric(metric);
  const auto o = sinkhorn_options(eps, tol, max_iter, eps_scaling, eps_start, value);
  return with_dtype("_cuda_sinkhorn_online", dtype, [&](auto tag) {
    using T = decltype(tag);
    py::gil_scoped_release release;
    return as_tuple(pyot::cuda::sinkhorn_online(cptr<T>(x), cptr<T>(y), n, m, d, kind, p,
                                                cptr<double>(a), cptr<double>(b), mptr<double>(f),
                                                mptr<double>(g), o, as_stream(stream)));
  });
}

Outcome sinkhorn_dense(std::uintptr_t cost, std::int64_t n, std::int64_t m, std::uintptr_t a,
                       std::uintptr_t b, std::uintptr_t f, std::uintptr_t g, double eps, double tol,
                       std::int64_t max_iter, double eps_scaling, double eps_start, bool value,
                       std::uintptr_t stream, const std::string& dtype) {
  const auto o = sinkhorn_options(eps, tol, max_iter, eps_scaling, eps_start, value);
  return with_dtype("_cuda_sinkhorn_dense", dtype, [&](auto tag) {
    using T = decltype(tag);
    py::gil_scoped_release release;
    return as_tuple(pyot::cuda::sinkhorn_dense(cptr<T>(cost), n, m, cptr<double>(a),
                                               cptr<double>(b), mptr<double>(f), mptr<double>(g), o,
                                               as_stream(stream)));
  });
}

void lse_dense(bool rows, std::uintptr_t cost, std::int64_t n, std::int64_t m, std::uintptr_t h,
               double inv_eps, std::uintptr_t out, std::uintptr_t stream,
               const std::string& dtype) {
  with_dtype("_cuda_lse_dense", dtype, [&](auto tag) {
    using T = decltype(tag);
    py::gil_scoped_release release;
    if (rows) {
      pyot::cuda::lse_rows_dense(cptr<T>(cost), n, m, cptr<double>(h), inv_eps, mptr<double>(out),
                                 as_stream(stream));
    } else {
      pyot::cuda::lse_cols_dense(cptr<T>(cost), n, m, cptr<double>(h), inv_eps, mptr<double>(out),
                                 as_stream(stream));
    }
  });
}

void transport_rows(std::uintptr_t x, std::uintptr_t y, std::int64_t n, std::int64_t m,
                    std::int64_t d, int metric, double p, std::uintptr_t a, std::uintptr_t b,
                    std::uintptr_t f, std::uintptr_t g, double eps, std::uintptr_t cost_rows,
                    std::uintptr_t grad, std::uintptr_t stream, const std::string& dtype) {
  const pyot::Metric kind = as_metric(metric);
  with_dtype("_cuda_transport_rows", dtype, [&](auto tag) {
    using T = decltype(tag);
    py::gil_scoped_release release;
    pyot::cuda::transport_rows(cptr<T>(x), cptr<T>(y), n, m, d, kind, p, cptr<double>(a),
                               cptr<double>(b), cptr<double>(f), cptr<double>(g), eps,
                               mptr<double>(cost_rows), mptr<double>(grad), as_stream(stream));
  });
}

void sliced_projected(std::uintptr_t x, std::uintptr_t y, std::int64_t n, std::int64_t m,
                      std::int64_t d, std::uintptr_t a, std::uintptr_t b, double mass,
                      std::uintptr_t directions, std::int64_t L, double p, std::uintptr_t projected,
                      std::uintptr_t grad_x, std::uintptr_t grad_y, std::uintptr_t stream,
                      const std::string& dtype) {
  with_dtype("_cuda_sliced_projected", dtype, [&](auto tag) {
    using T = decltype(tag);
    py::gil_scoped_release release;
    pyot::cuda::sliced_projected(cptr<T>(x), cptr<T>(y), n, m, d, cptr<double>(a), cptr<double>(b),
                                 mass, cptr<double>(directions), L, p, mptr<double>(projected),
                                 mptr<double>(grad_x), mptr<double>(grad_y), as_stream(stream));
  });
}

void sinkhorn_batched(std::uintptr_t x, std::uintptr_t y, std::int64_t batches, std::int64_t n,
                      std::int64_t m, std::int64_t d, int metric, double p, std::uintptr_t a,
                      std::uintptr_t b, double eps, double tol, std::int64_t max_iter,
                      std::uintptr_t f, std::uintptr_t g, std::uintptr_t value, std::uintptr_t err,
                      std::uintptr_t objective, std::uintptr_t n_iter, std::uintptr_t status,
                      std::uintptr_t stream, const std::string& dtype) {
  const pyot::Metric kind = as_metric(metric);
  const auto o = sinkhorn_options(eps, tol, max_iter, 0.0, 0.0, true);
  with_dtype("_cuda_sinkhorn_batched", dtype, [&](auto tag) {
    using T = decltype(tag);
    py::gil_scoped_release release;
    pyot::cuda::sinkhorn_batched(cptr<T>(x), cptr<T>(y), batches, n, m, d, kind, p, cptr<double>(a),
                                 cptr<double>(b), o, mptr<double>(f), mptr<double>(g),
                                 mptr<double>(value), mptr<double>(err), mptr<double>(objective),
                                 mptr<std::int64_t>(n_iter), mptr<int>(status), as_stream(stream));
  });
}

// Device memory owned by a Python object (numpy callers): freed with it.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(std::size_t nbytes) : nbytes_(nbytes) {
    ptr_ = pyot::cuda::device_alloc(nbytes);
  }
  ~DeviceBuffer() { pyot::cuda::device_free(ptr_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  std::uintptr_t ptr() const { return reinterpret_cast<std::uintptr_t>(ptr_); }
  std::size_t nbytes() const { return nbytes_; }
  void upload(const py::buffer& src) {
    const py::buffer_info info = src.request();
    require_contiguous(info);
    py::gil_scoped_release release;
    pyot::cuda::copy_to_device(ptr_, info.ptr, bytes_of(info), nullptr);
  }
  void download(const py::buffer& dst) {
    const py::buffer_info info = dst.request(true);
    require_contiguous(info);
    py::gil_scoped_release release;
    pyot::cuda::copy_to_host(info.ptr, ptr_, bytes_of(info), nullptr);
  }

 private:
  std::size_t bytes_of(const py::buffer_info& info) const {
    const std::size_t bytes = std::size_t(info.size) * std::size_t(info.itemsize);
    if (bytes != nbytes_) {
      throw std::invalid_argument("_CudaBuffer: the array has " + std::to_string(bytes) +
                                  " bytes, the buffer " + std::to_string(nbytes_));
    }
    return bytes;
  }
  static void require_contiguous(const py::buffer_info& info) {
    py::ssize_t expected = info.itemsize;
    for (py::ssize_t k = info.ndim - 1; k >= 0; --k) {
      if (info.shape[k] > 1 && info.strides[k] != expected) {
        throw std::invalid_argument("_CudaBuffer: the array must be C-contiguous");
      }
      expected *= info.shape[k];
    }
  }
  void* ptr_ = nullptr;
  std::size_t nbytes_ = 0;
};

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
  py::class_<DeviceBuffer>(m, "_CudaBuffer",
                           "Device memory (cudaMalloc) owned by this object; for numpy callers.")
      .def(py::init<std::size_t>(), py::arg("nbytes"))
      .def_property_readonly("ptr", &DeviceBuffer::ptr)
      .def_property_readonly("nbytes", &DeviceBuffer::nbytes)
      .def("upload", &DeviceBuffer::upload, py::arg("array"),
           "Copies a C-contiguous array of exactly nbytes to the device.")
      .def("download", &DeviceBuffer::download, py::arg("array"),
           "Copies the buffer into a writable C-contiguous array of exactly nbytes.");
  m.def("_cuda_sinkhorn_online", &sinkhorn_online, py::arg("x_ptr"), py::arg("y_ptr"), py::arg("n"),
        py::arg("m"), py::arg("d"), py::arg("metric"), py::arg("p"), py::arg("a_ptr"),
        py::arg("b_ptr"), py::arg("f_ptr"), py::arg("g_ptr"), py::arg("eps"), py::arg("tol"),
        py::arg("max_iter"), py::arg("eps_scaling"), py::arg("eps_start"), py::arg("value"),
        py::arg("stream"), py::arg("dtype"),
        "Balanced online Sinkhorn on the device; f, g (float64) warm start in, potentials out. "
        "Returns (status, n_iter, marginal_error, value, objective) once done.");
  m.def("_cuda_sinkhorn_dense", &sinkhorn_dense, py::arg("cost_ptr"), py::arg("n"), py::arg("m"),
        py::arg("a_ptr"), py::arg("b_ptr"), py::arg("f_ptr"), py::arg("g_ptr"), py::arg("eps"),
        py::arg("tol"), py::arg("max_iter"), py::arg("eps_scaling"), py::arg("eps_start"),
        py::arg("value"), py::arg("stream"), py::arg("dtype"),
        "Balanced dense log-domain Sinkhorn on the device (see _cuda_sinkhorn_online).");
  m.def("_cuda_lse_dense", &lse_dense, py::arg("rows"), py::arg("cost_ptr"), py::arg("n"),
        py::arg("m"), py::arg("h_ptr"), py::arg("inv_eps"), py::arg("out_ptr"), py::arg("stream"),
        py::arg("dtype"),
        "On a row-major device cost: rows=True out_i = LSE_j(h_j - C_ij * inv_eps), rows=False "
        "out_j = LSE_i(h_i - C_ij * inv_eps).");
  m.def("_cuda_transport_rows", &transport_rows, py::arg("x_ptr"), py::arg("y_ptr"), py::arg("n"),
        py::arg("m"), py::arg("d"), py::arg("metric"), py::arg("p"), py::arg("a_ptr"),
        py::arg("b_ptr"), py::arg("f_ptr"), py::arg("g_ptr"), py::arg("eps"),
        py::arg("cost_rows_ptr"), py::arg("grad_ptr"), py::arg("stream"), py::arg("dtype"),
        "Row sums of the plan from potentials: sum_j P_ij C_ij and sum_j P_ij grad_x c "
        "(float64 outputs; 0 skips one).");
  m.def("_cuda_sliced_projected", &sliced_projected, py::arg("x_ptr"), py::arg("y_ptr"),
        py::arg("n"), py::arg("m"), py::arg("d"), py::arg("a_ptr"), py::arg("b_ptr"),
        py::arg("mass"), py::arg("directions_ptr"), py::arg("L"), py::arg("p"),
        py::arg("projected_ptr"), py::arg("grad_x_ptr"), py::arg("grad_y_ptr"), py::arg("stream"),
        py::arg("dtype"),
        "W_p^p per direction (float64), and optionally the gradients of their mean.");
  m.def("_cuda_sinkhorn_batched", &sinkhorn_batched, py::arg("x_ptr"), py::arg("y_ptr"),
        py::arg("batches"), py::arg("n"), py::arg("m"), py::arg("d"), py::arg("metric"),
        py::arg("p"), py::arg("a_ptr"), py::arg("b_ptr"), py::arg("eps"), py::arg("tol"),
        py::arg("max_iter"), py::arg("f_ptr"), py::arg("g_ptr"), py::arg("value_ptr"),
        py::arg("err_ptr"), py::arg("objective_ptr"), py::arg("n_iter_ptr"), py::arg("status_ptr"),
        py::arg("stream"), py::arg("dtype"),
        "Many small balanced Sinkhorn problems, one thread block each (asynchronous).");
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
  py::register_exception<pyot::cuda::CudaError>(m, "CudaError", PyExc_RuntimeError);
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
