#pragma once
// An allocator that aligns the parameter buffer to a cache line, so vectorized passes over it
// start on a boundary and never split a cache line at the first element.

#include <cstddef>
#include <new>

namespace flotilla::detail {

inline constexpr std::size_t cache_line = 64;

template <class T>
struct aligned_allocator {
  using value_type = T;

  aligned_allocator() noexcept = default;
  template <class U>
  aligned_allocator(const aligned_allocator<U>&) noexcept {}  // NOLINT: rebinding is implicit

  [[nodiscard]] T* allocate(std::size_t count) {
    if (count > static_cast<std::size_t>(-1) / sizeof(T)) throw std::bad_array_new_length();
    return static_cast<T*>(::operator new(count * sizeof(T), std::align_val_t{cache_line}));
  }
  void deallocate(T* pointer, std::size_t) noexcept {
    ::operator delete(pointer, std::align_val_t{cache_line});
  }

  template <class U>
  bool operator==(const aligned_allocator<U>&) const noexcept { return true; }
};

}  // namespace flotilla::detail
