// Large scratch arrays that are written in full before they are read (the scaling domain's
// kernel K, n x m): left uninitialised, and recycled across solves.
//
// A fresh multi-MiB array costs a page fault and the kernel's zeroing per 4 KiB page on first
// touch, about as much as writing it (and glibc maps every array above 32 MiB afresh). So:
// - the array is 2 MiB aligned and, on Linux, asks for transparent huge pages (one fault per
//   2 MiB where the system has THP in "madvise" or "always" mode);
// - the last array released is kept, process-wide, for the next request it can hold (a loop of
//   solves of one size touches no fresh page). At most kKeptBytes are kept this way; a larger
//   array is freed when released.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <mutex>
#include <new>
#include <utility>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace pyot {

namespace detail {
class ScratchPool {
 public:
  static constexpr std::size_t kAlign = std::size_t(1) << 21;
  static constexpr std::size_t kKeptBytes = std::size_t(64) << 20;

  // An array of at least `bytes` (its capacity in `capacity`).
  static void* take(std::size_t bytes, std::size_t& capacity) {
    {
      std::lock_guard<std::mutex> lock(mutex());
      Slot& s = slot();
      if (s.ptr != nullptr && s.bytes >= bytes) {
        void* ptr = s.ptr;
        capacity = s.bytes;
        s = Slot{};
        return ptr;
      }
      if (s.ptr != nullptr) {  // too small for this request: not worth keeping beside it
        std::free(s.ptr);
        s = Slot{};
      }
    }
    return allocate(bytes, capacity);
  }

  static void give(void* ptr, std::size_t bytes) {
    if (ptr == nullptr) return;
    if (bytes <= kKeptBytes) {
      std::lock_guard<std::mutex> lock(mutex());
      Slot& s = slot();
      std::swap(s.ptr, ptr);  // keep the latest; the one it replaces is freed below
      std::swap(s.bytes, bytes);
    }
    std::free(ptr);
  }

 private:
  struct Slot {
    void* ptr = nullptr;
    std::size_t bytes = 0;
  };
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }
  static Slot& slot() {
    static Slot s;
    return s;
  }

  static void* allocate(std::size_t bytes, std::size_t& capacity) {
    capacity = (bytes + kAlign - 1) / kAlign * kAlign;
    void* ptr = nullptr;
    if (posix_memalign(&ptr, kAlign, capacity) != 0) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    madvise(ptr, capacity, MADV_HUGEPAGE);  // advisory: ignored where THP is off
#endif
    return ptr;
  }
};
}  // namespace detail

// An uninitialised array of T from the scratch pool; resize() keeps the contents only when the
// capacity already suffices (callers write the array in full after resizing).
template <class T>
class ScratchBuffer {
 public:
  ScratchBuffer() = default;
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;
  ~ScratchBuffer() { release(); }

  void resize(std::size_t size) {
    if (size * sizeof(T) <= capacity_ && data_ != nullptr) {
      size_ = size;
      return;
    }
    release();
    data_ = static_cast<T*>(detail::ScratchPool::take(size * sizeof(T), capacity_));
    size_ = size;
  }
  // Back to the pool (kept for the next solve when small enough).
  void release() {
    detail::ScratchPool::give(data_, capacity_);
    data_ = nullptr;
    size_ = capacity_ = 0;
  }
  T* data() { return data_; }
  const T* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  T* data_ = nullptr;
  std::size_t size_ = 0, capacity_ = 0;
};

}  // namespace pyot
