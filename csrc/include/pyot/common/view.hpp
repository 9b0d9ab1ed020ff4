// Non-owning row-major views: the core takes pointers, shapes and a row stride, nothing else.
#pragma once
#include <stdexcept>
#include <string>

#include "pyot/common/config.hpp"

namespace pyot {

template <class T>
struct MatrixView {
  const T* data = nullptr;
  index_t rows = 0;
  index_t cols = 0;
  index_t ld = 0;  // elements between consecutive rows

  MatrixView() = default;
  MatrixView(const T* d, index_t r, index_t c) : data(d), rows(r), cols(c), ld(c) {}
  MatrixView(const T* d, index_t r, index_t c, index_t l) : data(d), rows(r), cols(c), ld(l) {}
  PYOT_HD const T* row(index_t i) const { return data + i * ld; }
  PYOT_HD T operator()(index_t i, index_t j) const { return data[i * ld + j]; }
};

inline void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument(what);
}

}  // namespace pyot
