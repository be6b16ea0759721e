#pragma once
// Splits one pass over a large flat buffer across a few threads: aggregation is bound by memory
// bandwidth, which one core cannot saturate on its own.

#include <algorithm>
#include <cstddef>
#include <span>
#include <thread>
#include <vector>

namespace flotilla::detail {

/// Threads to use when the caller asks for 0 ("as many as the machine has").
inline std::size_t default_threads() { return std::max(1u, std::thread::hardware_concurrency()); }

/// Calls `body(begin, end)` on contiguous pieces covering [0, count): the calling thread takes
/// the first piece and up to `threads - 1` helper threads the others. Pieces start on 64-scalar
/// boundaries (whole cache lines for float and double). Buffers too small to repay starting a
/// thread are done on the calling thread alone. `body` must not throw.
template <class Body>
void for_each_piece(std::size_t count, std::size_t threads, Body body) {
  constexpr std::size_t smallest_piece = std::size_t{1} << 18;  // ~1 MB of floats: a thread start is ~50 us
  if (threads == 0) threads = default_threads();
  threads = std::min(threads, std::max<std::size_t>(1, count / smallest_piece));
  if (threads <= 1) {
    body(std::size_t{0}, count);
    return;
  }
  const std::size_t piece = (count / threads + 63) / 64 * 64;
  std::vector<std::jthread> helpers;
  helpers.reserve(threads - 1);
  for (std::size_t begin = piece; begin < count; begin += piece)
    helpers.emplace_back([&body, begin, end = std::min(count, begin + piece)] { body(begin, end); });
  body(std::size_t{0}, std::min(count, piece));
}  // std::jthread joins the helpers as they go out of scope

/// Copies `from` into `to` (the same size) in pieces across `threads` threads (0: one per core).
template <class T>
void parallel_copy(std::span<const T> from, std::span<T> to, std::size_t threads = 0) {
  for_each_piece(to.size(), threads, [&](std::size_t begin, std::size_t end) {
    std::copy(from.begin() + std::ptrdiff_t(begin), from.begin() + std::ptrdiff_t(end), to.begin() + std::ptrdiff_t(begin));
  });
}

}  // namespace flotilla::detail
