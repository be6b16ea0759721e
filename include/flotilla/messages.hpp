#pragma once
// The messages of one round: a task goes out to a learner, a reply or a failure comes back.

#include <cstdint>
#include <memory>    // std::shared_ptr: one global parameter set shared by every task
#include <optional>
#include <string>
#include <vector>

#include "flotilla/compression/codec.hpp"
#include "flotilla/fwd.hpp"

namespace flotilla {

/// A unit of work for learners. The parameters are shared, not copied, by every recipient.
template <class P>
struct task {
  task_kind kind = task_kind::fit;
  std::uint64_t round = 0;
  std::shared_ptr<const P> parameters{};
  fit_config config{};
  /// What a round with stages of its own tells this learner beside the parameters (secure
  /// aggregation's keys and shares); empty for fit and evaluate. Opaque to transports.
  std::vector<std::uint8_t> payload{};
  /// How the learner should code its fit reply (coordinator_options::compression); none asks
  /// for its parameters as they are. A learner that cannot may still send them so.
  compression::codec_spec reply_codec{};
  /// The parameters as they travel when the round codes them (compression.to_learners):
  /// `parameters` then holds these values decoded, so a learner in memory trains from exactly
  /// what a remote one receives. Null: the parameters travel as they are.
  std::shared_ptr<const compression::coded_values> coded_parameters{};
};

/// A learner's answer to a task. `parameters` holds the trained parameters for a fit task and
/// is empty for an evaluate task.
template <class P>
struct reply {
  learner_id learner = 0;
  task_kind kind = task_kind::fit;
  std::uint64_t round = 0;
  local_result result{};
  std::optional<P> parameters{};
  /// What a stage of a multi-stage round answers beside metrics (a masked update, keys);
  /// empty for fit and evaluate.
  std::vector<std::uint8_t> payload{};
  /// A fit reply in the codec its task named (task::reply_codec): the learner's change to the
  /// task's parameters, in place of `parameters`, decoded only as it is folded in.
  std::optional<compression::coded_values> coded_update{};
};

/// A task that produced no reply: the learner threw, was unreachable, or was busy.
struct failure {
  learner_id learner = 0;
  task_kind kind = task_kind::fit;
  std::uint64_t round = 0;
  std::string reason{};
};

}  // namespace flotilla
