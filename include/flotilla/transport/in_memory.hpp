#pragma once
// Learners as objects in this process, training concurrently on a bounded thread pool. The
// global parameters are shared by pointer with every learner: nothing is copied per learner
// before it trains, and nothing is serialized.

#include <cstddef>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "flotilla/concepts/transport.hpp"
#include "flotilla/detail/inbox.hpp"
#include "flotilla/detail/thread_pool.hpp"
#include "flotilla/errors.hpp"
#include "flotilla/learner.hpp"
#include "flotilla/messages.hpp"

namespace flotilla {

/// Number of worker threads when none is given: one per hardware thread.
[[nodiscard]] inline std::size_t default_worker_count() {
  return std::max(1u, std::thread::hardware_concurrency());
}

/// @brief A `Transport` whose learners live in this process.
///
/// A learner works on one task at a time: while it is busy it is not `available()`, and a task
/// sent to it anyway fails with a reason. A learner that throws fails alone; the round goes on.
/// The destructor waits for tasks already running.
template <Learner L>
class in_memory_transport {
 public:
  using learner_type = L;
  using parameters_type = typename L::parameters_type;

  /// @throws configuration_error if two learners share an id.
  explicit in_memory_transport(std::vector<L> learners, std::size_t workers = default_worker_count())
      : slots_(make_slots(std::move(learners))), pool_(workers) {}

  [[nodiscard]] std::vector<learner_id> available() const {
    std::lock_guard lock(mutex_);
    std::vector<learner_id> ids;
    ids.reserve(slots_.size());
    for (const auto& slot : slots_)
      if (!slot.busy) ids.push_back(slot.learner.id());
    return ids;
  }

  void send(const task<parameters_type>& work, std::span<const learner_id> to) {
    for (auto id : to) {
      std::lock_guard lock(mutex_);
      auto found = index_.find(id);
      if (found == index_.end()) {
        inbox_.push(failure{id, work.kind, work.round, "no learner with this id in the federation"});
        continue;
      }
      auto& slot = slots_[found->second];
      if (slot.busy) {
        inbox_.push(failure{id, work.kind, work.round, "learner is still busy with an earlier task"});
        continue;
      }
      slot.busy = true;
      // The job copies the task: a shared pointer to the parameters and the small config.
      pool_.submit([this, &slot, work] { run(slot, work); });
    }
  }

  [[nodiscard]] std::optional<message<parameters_type>> receive(deadline_clock::time_point deadline) {
    return inbox_.pop(deadline);
  }

  /// The learners, in the order given; read them only while no task is running.
  [[nodiscard]] std::vector<const L*> learners() const {
    std::vector<const L*> out;
    for (const auto& slot : slots_) out.push_back(&slot.learner);
    return out;
  }

  [[nodiscard]] std::size_t worker_count() const { return pool_.size(); }

 private:
  struct hosted {
    L learner;
    bool busy = false;
  };

  static std::deque<hosted> make_slots(std::vector<L> learners) {
    std::deque<hosted> slots;  // a deque: slots never move, jobs hold references to them
    for (auto& learner : learners) slots.push_back(hosted{std::move(learner), false});
    return slots;
  }

  void run(hosted& target, const task<parameters_type>& work) {
    message<parameters_type> outcome = [&]() -> message<parameters_type> {
      const auto id = target.learner.id();
      try {
        return target.learner.handle(work);
      } catch (const std::exception& error) {
        return failure{id, work.kind, work.round, std::string("learner threw: ") + error.what()};
      } catch (...) {
        return failure{id, work.kind, work.round, "learner threw an exception of unknown type"};
      }
    }();
    {
      std::lock_guard lock(mutex_);
      target.busy = false;
    }
    inbox_.push(std::move(outcome));
  }

  std::unordered_map<learner_id, std::size_t> build_index() const {
    std::unordered_map<learner_id, std::size_t> index;
    for (std::size_t i = 0; i < slots_.size(); ++i)
      if (!index.emplace(slots_[i].learner.id(), i).second)
        throw configuration_error("two learners share id " + std::to_string(slots_[i].learner.id()));
    return index;
  }

  std::deque<hosted> slots_;
  std::unordered_map<learner_id, std::size_t> index_ = build_index();
  mutable std::mutex mutex_;  // guards the slots' busy flags
  detail::inbox<message<parameters_type>> inbox_;
  detail::thread_pool pool_;  // last: joined first, while everything its jobs touch still lives
};

}  // namespace flotilla
