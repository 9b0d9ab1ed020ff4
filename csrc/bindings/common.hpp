// Binding helpers shared by every family: array views, shape checks, dtype registration.
// Python has already validated and converted the inputs (pyot/_validate.py); these checks are
// the cheap second line that keeps the module from being crashed by direct calls.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <utility>

#include "pyot/common/view.hpp"

namespace pyot::bind {

namespace py = pybind11;

template <class T>
using carray = py::array_t<T, py::array::c_style>;

template <class T>
void require_ndim(const carray<T>& arr, int ndim, const char* name) {
  if (arr.ndim() != ndim)
    throw std::invalid_argument(std::string(name) + " must have " + std::to_string(ndim) +
                                " dimensions, got " + std::to_string(arr.ndim()));
}

template <class T>
void require_shape(const carray<T>& arr, std::initializer_list<index_t> shape, const char* name) {
  require_ndim(arr, int(shape.size()), name);
  int k = 0;
  for (index_t s : shape) {
    if (arr.shape(k) != s)
      throw std::invalid_argument(std::string(name) + " has shape mismatch in dimension " +
                                  std::to_string(k));
    ++k;
  }
}

template <class T>
MatrixView<T> matrix(const carray<T>& arr, const char* name) {
  require_ndim(arr, 2, name);
  return MatrixView<T>(arr.data(), arr.shape(0), arr.shape(1));
}

// Views of two point clouds x (n, d) and y (m, d), with their weights a, b and potentials f, g
// (n and m long) and the metric code checked: the arguments of every online solver.
template <class T>
std::pair<MatrixView<T>, MatrixView<T>> point_clouds(const carray<T>& x, const carray<T>& y,
                                                     int metric, const carray<double>& a,
                                                     const carray<double>& b,
                                                     const carray<double>& f,
                                                     const carray<double>& g) {
  const MatrixView<T> xv = matrix(x, "x"), yv = matrix(y, "y");
  require(xv.cols == yv.cols, "x and y must have the same number of columns");
  require_shape(a, {xv.rows}, "a");
  require_shape(b, {yv.rows}, "b");
  require_shape(f, {xv.rows}, "f");
  require_shape(g, {yv.rows}, "g");
  require(metric >= 0 && metric <= 4, "unknown metric");
  return {xv, yv};
}

// Registers fn<float> and fn<double> under one name: Python picks by the array dtype.
#define PYOT_DEF_FLOATING(m, name, fn, ...)  \
  do {                                       \
    (m).def(name, &fn<float>, __VA_ARGS__);  \
    (m).def(name, &fn<double>, __VA_ARGS__); \
  } while (0)

}  // namespace pyot::bind
