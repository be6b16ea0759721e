#pragma once
// Learners as objects in this process, training concurrently on a bounded thread pool. The
// global parameters are shared by pointer with every learner: nothing is copied per learner
// before it trains, and nothing is serialized.
//  - in_memory_transport hosts learners that live for the whole run;
//  - on_demand_transport simulates a large federation: a learner is built when a task arrives
//    for it and dropped after its reply, so memory follows the learners at work, not their number.

#include <algorithm>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
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
#include "flotilla/round/learner.hpp"
#include "flotilla/messages.hpp"

namespace flotilla {

/// Number of worker threads when none is given: one per hardware thread.
[[nodiscard]] inline std::size_t default_worker_count() {
  return std::max(1u, std::thread::hardware_concurrency());
}

namespace detail {
/// The learner's reply, or the failure its exception becomes: one learner fails alone.
template <Learner L>
message<typename L::parameters_type> handle_or_fail(L& learner, const task<typename L::parameters_type>& work) {
  try {
    return learner.handle(work);
  } catch (const std::exception& error) {
    return failure{learner.id(), work.kind, work.round, std::string("learner threw: ") + error.what()};
  } catch (...) {
    return failure{learner.id(), work.kind, work.round, "learner threw an exception of unknown type"};
  }
}
}  // namespace detail

/// @brief A `Transport` whose learners live in this process.
///
/// A learner works on one task at a time: while it is busy it is not `available()`, and a task
/// sent to it anyway fails with a reason. A learner that throws fails alone; the round goes on.
/// The destructor waits for tasks already running.
template <class L>
class in_memory_transport {
  static_assert(detail::explain_learner<L>());  // in the body: an error names the unmet requirement

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

  /// What learner `id` reported when it joined (here: its `properties()`, taken when the
  /// transport was made); empty for a learner type without properties or an unknown id.
  [[nodiscard]] settings properties(learner_id id) const {
    const auto found = index_.find(id);
    return found == index_.end() ? settings{} : slots_[found->second].properties;
  }

 private:
  struct hosted {
    L learner;
    bool busy = false;
    settings properties;
  };

  static std::deque<hosted> make_slots(std::vector<L> learners) {
    std::deque<hosted> slots;  // a deque: slots never move, jobs hold references to them
    for (auto& learner : learners) {
      settings properties;
      if constexpr (requires { { learner.properties() } -> std::convertible_to<settings>; })
        properties = learner.properties();
      slots.push_back(hosted{std::move(learner), false, std::move(properties)});
    }
    return slots;
  }

  void run(hosted& target, const task<parameters_type>& work) {
    auto outcome = detail::handle_or_fail(target.learner, work);
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

/// @brief A `Transport` over `count` learners with ids 0 to count - 1 (or over the ids given)
/// that exist only while they work: `make(id)` builds learner `id` when a task arrives for it,
/// on a worker thread (so `make` may run on several threads at once and must only read shared
/// state), and the learner is destroyed once it has replied. What a learner must keep between rounds
/// (SCAFFOLD's control variate, an optimizer's state) is therefore lost: give such learners an
/// in_memory_transport, or keep that state in what `make` reads.
///
/// Memory is the learners training at once (at most one per worker) plus replies waiting to be
/// folded, however large `count` is. Busy learners and failures behave as in in_memory_transport;
/// a `make` that throws fails that learner alone.
template <class L>
class on_demand_transport {
  static_assert(detail::explain_learner<L>());

 public:
  using learner_type = L;
  using parameters_type = typename L::parameters_type;
  using factory = std::function<L(learner_id)>;

  /// @throws configuration_error without learners or without a factory.
  on_demand_transport(std::size_t count, factory make, std::size_t workers = default_worker_count())
      : on_demand_transport(count_up(count), std::move(make), workers) {}

  /// Learners `ids` only (a share of a larger federation, as an MPI rank hosts).
  /// @throws configuration_error without learners, with an id twice, or without a factory.
  on_demand_transport(std::vector<learner_id> ids, factory make, std::size_t workers = default_worker_count())
      : ids_(sorted_unique(std::move(ids))), busy_(ids_.size(), false), make_(std::move(make)), pool_(workers) {
    if (!make_) throw configuration_error("an on-demand federation needs a function that makes its learners");
  }

  [[nodiscard]] std::vector<learner_id> available() const {
    std::lock_guard lock(mutex_);
    std::vector<learner_id> ids;
    ids.reserve(ids_.size());
    for (std::size_t i = 0; i < ids_.size(); ++i)
      if (!busy_[i]) ids.push_back(ids_[i]);
    return ids;
  }

  void send(const task<parameters_type>& work, std::span<const learner_id> to) {
    for (auto id : to) {
      std::lock_guard lock(mutex_);
      const auto slot = std::ranges::lower_bound(ids_, id);
      if (slot == ids_.end() || *slot != id) {
        inbox_.push(failure{id, work.kind, work.round,
                            "no learner with this id in the federation of " + std::to_string(ids_.size())});
        continue;
      }
      const auto index = static_cast<std::size_t>(slot - ids_.begin());
      if (busy_[index]) {
        inbox_.push(failure{id, work.kind, work.round, "learner is still busy with an earlier task"});
        continue;
      }
      busy_[index] = true;
      pool_.submit([this, index, work] { run(index, work); });
    }
  }

  [[nodiscard]] std::optional<message<parameters_type>> receive(deadline_clock::time_point deadline) {
    return inbox_.pop(deadline);
  }

  [[nodiscard]] std::size_t learner_count() const { return ids_.size(); }
  [[nodiscard]] std::size_t worker_count() const { return pool_.size(); }

 private:
  static std::vector<learner_id> count_up(std::size_t count) {
    std::vector<learner_id> ids(count);
    for (std::size_t i = 0; i < count; ++i) ids[i] = i;
    return ids;
  }

  static std::vector<learner_id> sorted_unique(std::vector<learner_id> ids) {
    if (ids.empty()) throw configuration_error("an on-demand federation needs at least one learner");
    std::ranges::sort(ids);
    if (const auto twice = std::ranges::adjacent_find(ids); twice != ids.end())
      throw configuration_error("learner id " + std::to_string(*twice) + " is given twice");
    return ids;
  }

  void run(std::size_t index, const task<parameters_type>& work) {
    const auto id = ids_[index];
    auto outcome = [&]() -> message<parameters_type> {
      std::optional<L> learner;
      try {
        learner.emplace(make_(id));
      } catch (const std::exception& error) {
        return failure{id, work.kind, work.round, std::string("making the learner failed: ") + error.what()};
      } catch (...) {
        return failure{id, work.kind, work.round, "making the learner threw an exception of unknown type"};
      }
      if (learner->id() != id)
        return failure{id, work.kind, work.round,
                       "the factory made learner " + std::to_string(learner->id()) + " when asked for this one"};
      return detail::handle_or_fail(*learner, work);
    }();  // the learner is gone here; only its reply remains
    {
      std::lock_guard lock(mutex_);
      busy_[index] = false;
    }
    inbox_.push(std::move(outcome));
  }

  std::vector<learner_id> ids_;  // sorted
  std::vector<bool> busy_;       // by position in ids_
  factory make_;
  mutable std::mutex mutex_;  // guards busy_
  detail::inbox<message<parameters_type>> inbox_;
  detail::thread_pool pool_;  // last: joined first, while everything its jobs touch still lives
};

}  // namespace flotilla
