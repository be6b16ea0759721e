#pragma once
// The allocator behind parameter and wire buffers: cache-line aligned, and fast for large blocks.
//
// Small blocks come from malloc, aligned by hand (glibc recycles them between rounds; aligned
// operator new does not). Blocks of 32 MiB and more, which glibc always maps fresh from the
// kernel, are mapped with transparent huge pages requested and kept in a small cache when freed,
// so a round that frees one model-sized buffer and allocates the next reuses it instead of
// faulting in every page again. First touch of fresh 4 KiB pages measured 0.33 GB/s on this
// project's VM against 14 GB/s for a warm memcpy (benchmarks/ and the README's Performance part).

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <new>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>  // mmap, madvise(MADV_HUGEPAGE), munmap for large blocks
#define FLOTILLA_HAVE_MMAP 1
#endif

namespace flotilla::detail {

inline constexpr std::size_t cache_line = 64;

#ifdef FLOTILLA_HAVE_MMAP
/// Large blocks freed recently, kept for reuse (bounded in count and bytes).
class large_block_cache {
 public:
  static constexpr std::size_t threshold = std::size_t{32} << 20;

  static large_block_cache& instance() {
    static auto* cache = new large_block_cache;  // never destroyed: buffers may outlive static destructors
    return *cache;
  }

  void* allocate(std::size_t bytes) {
    const auto size = rounded(bytes);
    {
      std::lock_guard lock(mutex_);
      for (auto it = blocks_.begin(); it != blocks_.end(); ++it)
        if (it->size == size) {
          void* reused = it->address;
          cached_bytes_ -= size;
          blocks_.erase(it);
          return reused;
        }
    }
    void* fresh = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (fresh == MAP_FAILED) throw std::bad_alloc();
    madvise(fresh, size, MADV_HUGEPAGE);  // a hint: fewer page faults when the kernel allows it
    return fresh;
  }

  /// Bounds on what is kept; blocks beyond them are returned to the kernel at once.
  void limit(std::size_t blocks, std::size_t bytes) {
    std::vector<block> released;
    {
      std::lock_guard lock(mutex_);
      max_blocks_ = blocks;
      max_bytes_ = bytes;
      while (!blocks_.empty() && (blocks_.size() > max_blocks_ || cached_bytes_ > max_bytes_)) {
        cached_bytes_ -= blocks_.back().size;
        released.push_back(blocks_.back());
        blocks_.pop_back();
      }
    }
    for (const auto& freed : released) munmap(freed.address, freed.size);
  }

  void deallocate(void* address, std::size_t bytes) noexcept {
    const auto size = rounded(bytes);
    {
      std::lock_guard lock(mutex_);
      if (blocks_.size() < max_blocks_ && cached_bytes_ + size <= max_bytes_) {
        try {
          blocks_.push_back({address, size});
          cached_bytes_ += size;
          return;
        } catch (...) {  // no memory for the bookkeeping: give the block back instead
        }
      }
    }
    munmap(address, size);
  }

 private:
  struct block {
    void* address;
    std::size_t size;
  };
  static std::size_t rounded(std::size_t bytes) { return (bytes + 4095) & ~std::size_t{4095}; }

  std::mutex mutex_;
  std::vector<block> blocks_;
  std::size_t cached_bytes_ = 0;
  std::size_t max_blocks_ = 8;
  std::size_t max_bytes_ = std::size_t{2} << 30;
};
#endif

template <class T>
struct aligned_allocator {
  using value_type = T;

  aligned_allocator() noexcept = default;
  template <class U>
  aligned_allocator(const aligned_allocator<U>&) noexcept {}  // NOLINT: rebinding is implicit

  [[nodiscard]] T* allocate(std::size_t count) {
    if (count > (static_cast<std::size_t>(-1) - cache_line) / sizeof(T)) throw std::bad_array_new_length();
#ifdef FLOTILLA_HAVE_MMAP
    if (count * sizeof(T) >= large_block_cache::threshold)
      return static_cast<T*>(large_block_cache::instance().allocate(count * sizeof(T)));  // page-aligned
#endif
    void* raw = std::malloc(count * sizeof(T) + cache_line);
    if (raw == nullptr) throw std::bad_alloc();
    // malloc aligns to at least 16 bytes, so there is always room before the aligned address
    // to remember where the block started.
    const auto aligned = (reinterpret_cast<std::uintptr_t>(raw) + cache_line) & ~std::uintptr_t{cache_line - 1};
    reinterpret_cast<void**>(aligned)[-1] = raw;
    return reinterpret_cast<T*>(aligned);
  }

  void deallocate(T* pointer, std::size_t count) noexcept {
#ifdef FLOTILLA_HAVE_MMAP
    if (count * sizeof(T) >= large_block_cache::threshold) {
      large_block_cache::instance().deallocate(pointer, count * sizeof(T));
      return;
    }
#endif
    std::free(reinterpret_cast<void**>(pointer)[-1]);
  }

  template <class U>
  bool operator==(const aligned_allocator<U>&) const noexcept { return true; }
};

/// The same allocator, but `resize` leaves new elements uninitialized: for byte buffers that are
/// about to be overwritten by a read or an encoder, where zero-filling would be a wasted pass.
template <class T>
struct uninitialized_allocator : aligned_allocator<T> {
  template <class U>
  struct rebind {
    using other = uninitialized_allocator<U>;
  };
  uninitialized_allocator() noexcept = default;
  template <class U>
  uninitialized_allocator(const uninitialized_allocator<U>&) noexcept {}  // NOLINT: rebinding is implicit

  template <class U, class... Arguments>
  void construct(U* place, Arguments&&... arguments) {
    if constexpr (sizeof...(Arguments) == 0) ::new (static_cast<void*>(place)) U;
    else ::new (static_cast<void*>(place)) U(std::forward<Arguments>(arguments)...);
  }
};

}  // namespace flotilla::detail
