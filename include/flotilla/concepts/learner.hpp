#pragma once
// The Learner contract: what an in-process transport needs of the learners it hosts.

#include <concepts>

#include "flotilla/concepts/parameter_set.hpp"
#include "flotilla/fwd.hpp"

namespace flotilla {

/// @brief A party that answers tasks with its own local logic.
///
/// Requirements, each with its reason:
///  1. `L::parameters_type` names the `ParameterSet` it exchanges: tasks and replies carry it.
///  2. `cl.id()` returns its `learner_id`, stable for the whole run: selection, replies and the
///     history name learners by it.
///  3. `l.handle(task)` does the task and returns the reply, or throws when it cannot: the
///     transport turns the exception into a failure of this learner alone.
///
/// Semantic rules the compiler cannot check:
///  - `handle` is called for one task at a time per learner (the transport guarantees it), so a
///    learner needs no locking of its own state.
///  - A reply names this learner, the task's round and the task's kind.
///
/// `flotilla::learner<Model, Data>` models it for any model trainable on `Data`. A minimal type:
/// @code
/// struct echo {
///   using parameters_type = my_parameters;
///   flotilla::learner_id id() const { return 1; }
///   flotilla::reply<my_parameters> handle(const flotilla::task<my_parameters>& work) {
///     return {1, work.kind, work.round, {1, {}}, *work.parameters};
///   }
/// };
/// @endcode
template <class L>
concept Learner = ParameterSet<typename L::parameters_type> &&
    requires(L& l, const L& cl, const task<typename L::parameters_type>& work) {
      { cl.id() } -> std::same_as<learner_id>;
      { l.handle(work) } -> std::same_as<reply<typename L::parameters_type>>;
    };

namespace detail {
// See explain_parameter_set: one error naming the first unmet requirement.
template <class L>
consteval bool explain_learner() {
  if constexpr (Learner<L>) return true;
  else if constexpr (!requires { typename L::parameters_type; })
    static_assert(unmet_requirement<L>, "Learner requirement 1: L::parameters_type is missing; name the ParameterSet it exchanges");
  else if constexpr (!ParameterSet<typename L::parameters_type>)
    return explain_parameter_set<typename L::parameters_type>();
  else if constexpr (!requires(const L& l) { { l.id() } -> std::same_as<learner_id>; })
    static_assert(unmet_requirement<L>, "Learner requirement 2: cl.id() on a const learner must return flotilla::learner_id");
  else
    static_assert(unmet_requirement<L>, "Learner requirement 3: l.handle(task) must return flotilla::reply<parameters_type>");
  return false;
}
}  // namespace detail

}  // namespace flotilla
