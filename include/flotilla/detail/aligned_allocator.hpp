#pragma once
// An allocator that aligns the parameter buffer to a cache line, so vectorized passes over it
// start on a boundary and never split a cache line at the first element.
//
// It over-allocates with std::malloc and aligns by hand rather than using aligned operator new:
// glibc recycles large malloc blocks across a round's allocate/free pairs, but hands every large
// aligned allocation fresh pages from the kernel, and the page faults then cost more than the
// arithmetic on them (measured in benchmarks/aggregation.cpp).

#include <cstddef>
#include <cstdint>
#include <cstdlib>
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
    if (count > (static_cast<std::size_t>(-1) - cache_line) / sizeof(T)) throw std::bad_array_new_length();
    void* raw = std::malloc(count * sizeof(T) + cache_line);
    if (raw == nullptr) throw std::bad_alloc();
    // malloc aligns to at least 16 bytes, so there is always room before the aligned address
    // to remember where the block started.
    const auto aligned = (reinterpret_cast<std::uintptr_t>(raw) + cache_line) & ~std::uintptr_t{cache_line - 1};
    reinterpret_cast<void**>(aligned)[-1] = raw;
    return reinterpret_cast<T*>(aligned);
  }
  void deallocate(T* pointer, std::size_t) noexcept { std::free(reinterpret_cast<void**>(pointer)[-1]); }

  template <class U>
  bool operator==(const aligned_allocator<U>&) const noexcept { return true; }
};

}  // namespace flotilla::detail
