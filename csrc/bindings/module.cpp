// The compiled module pyot._core: one bind_<family>() per solver family.
#include <pybind11/pybind11.h>

namespace py = pybind11;

void bind_config(py::module_& m);
void bind_costs(py::module_& m);
void bind_sinkhorn(py::module_& m);
void bind_exact(py::module_& m);
void bind_partial(py::module_& m);
void bind_sparse(py::module_& m);
void bind_sliced(py::module_& m);
void bind_minibatch(py::module_& m);
void bind_cuda(py::module_& m);

PYBIND11_MODULE(_core, m) {
  m.doc() = "pyot compiled core (C++17): thin bindings over the header-only solvers";
  bind_config(m);
  bind_costs(m);
  bind_sinkhorn(m);
  bind_exact(m);
  bind_partial(m);
  bind_sparse(m);
  bind_sliced(m);
  bind_minibatch(m);
  bind_cuda(m);
}
