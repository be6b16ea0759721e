#pragma once
// The Transport contract: deliver tasks to learners and their replies back.

#include <chrono>
#include <concepts>
#include <optional>
#include <span>
#include <vector>

#include "flotilla/concepts/parameter_set.hpp"
#include "flotilla/fwd.hpp"

namespace flotilla {

/// @brief Moves tasks from the coordinator to learners and their answers back.
///
/// Requirements, each with its reason:
///  1. `T::parameters_type` names the `ParameterSet` it carries: the coordinator is typed on it.
///  2. `t.available()` lists the learners that can take a task now: selection draws from it.
///  3. `t.send(task, learners)` delivers one task to each listed learner without waiting for
///     the work; the task's parameters are shared or encoded once, never once per learner.
///  4. `t.receive(deadline)` blocks until one reply or failure is ready and returns it, or
///     returns an empty optional once `deadline` has passed: the coordinator folds each reply
///     in as it arrives and stops waiting at the round deadline. With a deadline already
///     passed it returns a message that is already waiting, if any, without blocking: the
///     coordinator takes the replies waiting together and folds them in one pass.
///
/// Semantic rules the compiler cannot check:
///  - Every delivered task eventually yields exactly one message (reply or failure), unless
///    the transport is destroyed first; a message may arrive after its round is over, and the
///    coordinator recognises it by its round number.
///  - `send` never throws for a single unreachable learner: it reports a `failure` instead, so
///    one bad learner never takes down a round.
///  - Messages are returned on the calling thread; the coordinator needs no locking.
///
/// A minimal conforming type (a learner-less transport):
/// @code
/// struct nobody {
///   using parameters_type = my_parameters;
///   std::vector<flotilla::learner_id> available() const { return {}; }
///   void send(const flotilla::task<my_parameters>&, std::span<const flotilla::learner_id>) {}
///   std::optional<flotilla::message<my_parameters>> receive(flotilla::deadline_clock::time_point) {
///     return std::nullopt;
///   }
/// };
/// @endcode
template <class T>
concept Transport = ParameterSet<typename T::parameters_type> &&
    requires(T& t, const task<typename T::parameters_type>& work,
             std::span<const learner_id> learners, deadline_clock::time_point deadline) {
      { t.available() } -> std::same_as<std::vector<learner_id>>;
      t.send(work, learners);
      { t.receive(deadline) } -> std::same_as<std::optional<message<typename T::parameters_type>>>;
    };

/// @brief A transport that knows what its learners reported when they joined (optional).
///
/// Requirement: `t.properties(id)` returns the `settings` learner `id` reported (examples held,
/// device class, version...), empty for a learner that reported none or is unknown. Selection
/// can filter and weight by them, and configure_fit receives them.
template <class T>
concept ReportsProperties = requires(const T& t, learner_id id) {
  { t.properties(id) } -> std::convertible_to<settings>;
};

namespace detail {
// See explain_parameter_set: one error naming the first unmet requirement.
template <class T>
consteval bool explain_transport() {
  if constexpr (Transport<T>) return true;
  else if constexpr (!requires { typename T::parameters_type; })
    static_assert(unmet_requirement<T>, "Transport requirement 1: T::parameters_type is missing; name the ParameterSet it carries");
  else if constexpr (!ParameterSet<typename T::parameters_type>)
    return explain_parameter_set<typename T::parameters_type>();
  else if constexpr (!requires(T& t) { { t.available() } -> std::same_as<std::vector<learner_id>>; })
    static_assert(unmet_requirement<T>, "Transport requirement 2: t.available() must return std::vector<flotilla::learner_id>");
  else if constexpr (!requires(T& t, const task<typename T::parameters_type>& work, std::span<const learner_id> to) { t.send(work, to); })
    static_assert(unmet_requirement<T>, "Transport requirement 3: t.send(task, learners) is missing (const task<P>&, std::span<const learner_id>)");
  else
    static_assert(unmet_requirement<T>, "Transport requirement 4: t.receive(deadline) must return std::optional<flotilla::message<P>>");
  return false;
}
}  // namespace detail

}  // namespace flotilla
