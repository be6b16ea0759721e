#pragma once
// A queue of messages that one thread waits on with a deadline while others push: how every
// transport hands replies and failures to the coordinator's thread.

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <utility>

namespace flotilla::detail {

template <class Message>
class inbox {
 public:
  void push(Message message) {
    {
      std::lock_guard lock(mutex_);
      messages_.push_back(std::move(message));
    }
    ready_.notify_one();
  }

  /// The oldest message, or nothing once `deadline` has passed with the inbox empty.
  template <class Clock, class Duration>
  std::optional<Message> pop(std::chrono::time_point<Clock, Duration> deadline) {
    std::unique_lock lock(mutex_);
    if (!ready_.wait_until(lock, deadline, [this] { return !messages_.empty(); })) return std::nullopt;
    auto next = std::move(messages_.front());
    messages_.pop_front();
    return next;
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Message> messages_;
};

}  // namespace flotilla::detail
