#pragma once
// Splits one pass over a large flat buffer across a few threads: aggregation is bound by memory
// bandwidth, which one core cannot saturate on its own. The helper threads live for the whole
// process and wait between passes, so a pass pays a wake-up (microseconds), not a thread start.

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <span>
#include <thread>

#include <unistd.h>  // getpid: a forked child has none of its parent's helper threads

namespace flotilla::detail {

/// Threads to use when the caller asks for 0 ("as many as the machine has").
inline std::size_t default_threads() { return std::max(1u, std::thread::hardware_concurrency()); }

/// The process's helper threads for for_each_piece: one fewer than the cores, started at first
/// use. A pass hands out its pieces and waits for all of them; passes from several threads at
/// once take turns, and a pass started on a helper (or inside another pass) runs on its own thread.
class piece_helpers {
 public:
  /// Never destroyed: the helpers wait until the process ends, so no exit-time join can find a
  /// pass under way (or, in a forked child, threads that are not there).
  static piece_helpers& instance() {
    static piece_helpers* const helpers = new piece_helpers(default_threads() - 1);
    return *helpers;
  }

  /// Helpers this process can use: none in a child forked after they started.
  [[nodiscard]] std::size_t size() const { return ::getpid() == owner_ ? helpers_ : 0; }
  /// Whether this thread is a helper, or in the middle of a pass: a pass started here runs alone.
  [[nodiscard]] static bool on_helper() { return is_helper_; }

  /// Runs `piece(0)` on the calling thread and `piece(i)` for i in [1, count] on the helpers,
  /// and returns when all are done.
  void run(std::size_t count, const std::function<void(std::size_t)>& piece) {
    std::lock_guard pass(pass_mutex_);  // one pass at a time
    {
      std::lock_guard lock(mutex_);
      piece_ = &piece;
      remaining_ = count;
      handed_out_ = 0;
      wanted_ = count;
      ++generation_;
    }
    ready_.notify_all();
    is_helper_ = true;  // a pass inside this piece runs on this thread alone
    piece(0);
    is_helper_ = false;
    std::unique_lock lock(mutex_);
    done_.wait(lock, [this] { return remaining_ == 0; });
  }

  piece_helpers(const piece_helpers&) = delete;
  piece_helpers& operator=(const piece_helpers&) = delete;

 private:
  explicit piece_helpers(std::size_t count) : helpers_(count) {
    for (std::size_t i = 0; i < count; ++i) std::thread([this] { work(); }).detach();
  }

  void work() {
    is_helper_ = true;
    std::size_t seen = 0;
    for (;;) {
      std::size_t index = 0;
      const std::function<void(std::size_t)>* piece = nullptr;
      {
        std::unique_lock lock(mutex_);
        ready_.wait(lock, [&] { return generation_ != seen && handed_out_ < wanted_; });
        index = ++handed_out_;
        if (handed_out_ == wanted_) seen = generation_;
        piece = piece_;
      }
      (*piece)(index);
      std::lock_guard lock(mutex_);
      if (--remaining_ == 0) done_.notify_one();
    }
  }

  inline static thread_local bool is_helper_ = false;
  std::mutex pass_mutex_;
  std::mutex mutex_;
  std::condition_variable ready_, done_;
  const std::function<void(std::size_t)>* piece_ = nullptr;
  std::size_t generation_ = 0, handed_out_ = 0, wanted_ = 0, remaining_ = 0;
  const ::pid_t owner_ = ::getpid();
  const std::size_t helpers_;
};

/// Calls `body(begin, end)` on contiguous pieces covering [0, count): the calling thread takes
/// the first piece and up to `threads - 1` of the process's helper threads the others. Pieces
/// start on 64-scalar boundaries (whole cache lines for float and double). Buffers too small to
/// repay waking a helper are done on the calling thread alone. `body` must not throw.
template <class Body>
void for_each_piece(std::size_t count, std::size_t threads, Body body) {
  constexpr std::size_t smallest_piece = std::size_t{1} << 15;  // 128 KB of floats: a wake-up is ~10 us
  if (threads == 0) threads = default_threads();
  if (piece_helpers::on_helper()) threads = 1;
  threads = std::min({threads, std::max<std::size_t>(1, count / smallest_piece), piece_helpers::instance().size() + 1});
  if (threads <= 1) {
    body(std::size_t{0}, count);
    return;
  }
  const std::size_t piece = (count / threads + 63) / 64 * 64;
  piece_helpers::instance().run((count - 1) / piece, [&](std::size_t i) { body(i * piece, std::min(count, (i + 1) * piece)); });
}

/// Copies `from` into `to` (the same size) in pieces across `threads` threads (0: one per core).
template <class T>
void parallel_copy(std::span<const T> from, std::span<T> to, std::size_t threads = 0) {
  for_each_piece(to.size(), threads, [&](std::size_t begin, std::size_t end) {
    std::copy(from.begin() + std::ptrdiff_t(begin), from.begin() + std::ptrdiff_t(end), to.begin() + std::ptrdiff_t(begin));
  });
}

}  // namespace flotilla::detail
