#pragma once
// The messages of one round: a task goes out to a learner, a reply or a failure comes back.

#include <cstdint>
#include <memory>    // std::shared_ptr: one global parameter set shared by every task
#include <optional>
#include <string>
#include <variant>

#include "flotilla/concepts/model.hpp"
#include "flotilla/concepts/parameter_set.hpp"

namespace flotilla {

/// Identifies a learner for as long as the federation runs.
using learner_id = std::uint64_t;

/// What a learner is asked to do.
enum class task_kind : std::uint8_t { fit = 1, evaluate = 2 };

[[nodiscard]] inline const char* to_string(task_kind kind) {
  return kind == task_kind::fit ? "fit" : kind == task_kind::evaluate ? "evaluate" : "unknown";
}

/// A unit of work for learners. The parameters are shared, not copied, by every recipient.
template <ParameterSet P>
struct task {
  task_kind kind = task_kind::fit;
  std::uint64_t round = 0;
  std::shared_ptr<const P> parameters;
  fit_config config;
};

/// A learner's answer to a task. `parameters` holds the trained parameters for a fit task and
/// is empty for an evaluate task.
template <ParameterSet P>
struct reply {
  learner_id learner = 0;
  task_kind kind = task_kind::fit;
  std::uint64_t round = 0;
  local_result result;
  std::optional<P> parameters;
};

/// A task that produced no reply: the learner threw, was unreachable, or was busy.
struct failure {
  learner_id learner = 0;
  task_kind kind = task_kind::fit;
  std::uint64_t round = 0;
  std::string reason;
};

/// What a transport hands back for each task it delivered.
template <ParameterSet P>
using message = std::variant<reply<P>, failure>;

}  // namespace flotilla
