#pragma once
// The one door for validation: every reply a phase receives passes here once, whatever
// transport brought it. Transports check only their protocol (framing, checksums, identity);
// the door checks content: round, phase, learner, examples, metrics, layout and finiteness,
// then whatever the rule screens for (a differentially private rule: the update's norm).

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <type_traits>

#include "flotilla/arithmetic.hpp"
#include "flotilla/concepts/parameter_set.hpp"
#include "flotilla/detail/text.hpp"
#include "flotilla/errors.hpp"
#include "flotilla/fwd.hpp"
#include "flotilla/messages.hpp"
#include "flotilla/round/subtree.hpp"

namespace flotilla {

/// Whether the replies to a task carry parameters.
enum class reply_parameters : std::uint8_t {
  none,      ///< metrics only (evaluate, a probe): parameters in a reply are ignored
  required,  ///< the task's layout, every value finite (fit, and stages that send models back)
};

/// `base` plus a checked coded change, as a whole parameter set: for rules (and screens) that
/// take updates whole.
template <ParameterSet P>
[[nodiscard]] P decoded_update(const P& base, const compression::coded_values& change) {
  P update = base;
  if constexpr (std::is_same_v<typename P::scalar_type, float>) compression::add_decoded(change, 0, update.values(), 1.0f);
  else throw usage_error("coded updates decode to 32-bit floats; these parameters hold other scalars");
  return update;
}

/// @brief Admits the replies to one task sent to some learners, or says why not.
///
/// A learner is pending until its reply is admitted, or a failure or a rejected reply of its own
/// for this task releases it. Examples are summed over admitted replies.
template <ParameterSet P>
class reply_door {
 public:
  /// @param work the task that went out; replies must answer its round and kind, and, when
  ///   `expected` is `required`, carry parameters of its layout.
  /// @param asked the learners it went to.
  /// @param expected whether replies carry parameters (fit) or metrics only (evaluate, a probe).
  /// @param max_examples the most examples one reply may claim (counts weigh updates in FedAvg).
  /// @param screen the rule's own check of an update that passed every other (see
  ///   ScreeningAggregator): the reason to reject it, or nothing.
  /// @param base what a coded reply's change is added to (the coordinator's global parameters,
  ///   which the task's may only approximate when they travel coded); the task's by default.
  reply_door(const task<P>& work, std::span<const learner_id> asked, reply_parameters expected,
             std::int64_t max_examples, std::function<std::optional<std::string>(const P&)> screen = {},
             std::shared_ptr<const P> base = nullptr)
      : screen_(std::move(screen)),
        round_(work.round),
        kind_(work.kind),
        like_(base ? std::move(base) : work.parameters),
        reply_codec_(work.reply_codec),
        expected_(expected),
        max_examples_(max_examples),
        pending_(asked.begin(), asked.end()) {
    if (expected_ == reply_parameters::required && !like_)
      throw configuration_error("a task whose replies must carry parameters must carry parameters itself");
  }

  /// Whether a message about (learner, kind, round) answers this task for a pending learner:
  /// only then may a failure or rejection release that learner.
  [[nodiscard]] bool answers(learner_id learner, task_kind kind, std::uint64_t round) const {
    return round == round_ && kind == kind_ && pending_.contains(learner);
  }

  /// A failure for this task: the learner is no longer awaited.
  void release(learner_id learner) { pending_.erase(learner); }

  /// The reason `answer` cannot be used, or nothing when it is admitted. An admitted learner is
  /// no longer pending and its examples are counted; a rejected one is released when the reply
  /// answers this task (a stray, late or duplicate reply never releases anyone).
  [[nodiscard]] std::optional<std::string> admit(const reply<P>& answer) {
    auto problem = check(answer);
    if (!problem) examples_ += answer.result.examples;
    if (!problem || answers(answer.learner, answer.kind, answer.round)) pending_.erase(answer.learner);
    return problem;
  }

  /// A reply that another door of the same task admitted (an MPI rank checks its own learners'
  /// replies and sends on what it folded): counted as admitted here, or the reason it cannot be.
  [[nodiscard]] std::optional<std::string> admit_checked(learner_id learner, std::int64_t examples) {
    if (!pending_.contains(learner)) return "learner was not asked for this task or has already answered it";
    if (examples <= 0 || examples > max_examples_)
      return "reply claims " + std::to_string(examples) + " examples; the limit is " + std::to_string(max_examples_);
    if (examples_ > std::numeric_limits<std::int64_t>::max() - examples) return "the round's example count would overflow";
    pending_.erase(learner);
    examples_ += examples;
    return std::nullopt;
  }

  [[nodiscard]] const std::set<learner_id>& pending() const { return pending_; }
  [[nodiscard]] std::int64_t max_examples() const { return max_examples_; }
  [[nodiscard]] std::int64_t examples() const { return examples_; }
  [[nodiscard]] task_kind kind() const { return kind_; }
  [[nodiscard]] std::uint64_t round() const { return round_; }

 private:
  std::optional<std::string> check(const reply<P>& answer) const {
    if (answer.round != round_)
      return to_string(answer.kind) + " reply belongs to round " + std::to_string(answer.round) +
             "; the current round is " + std::to_string(round_);
    if (answer.kind != kind_) return to_string(answer.kind) + " reply arrived during the " + to_string(kind_) + " phase";
    if (!pending_.contains(answer.learner)) return "learner was not asked for this task or has already answered it";
    if (answer.result.examples <= 0)
      return "reply claims " + std::to_string(answer.result.examples) + " examples; at least one is required";
    if (answer.result.examples > max_examples_)
      return "reply claims " + std::to_string(answer.result.examples) + " examples; the limit is " +
             std::to_string(max_examples_) + " (max_examples_per_reply)";
    if (examples_ > std::numeric_limits<std::int64_t>::max() - answer.result.examples)
      return "the round's example count would overflow";
    for (const auto& [name, value] : answer.result.metrics)
      if (!std::isfinite(value)) return "metric '" + name + "' is " + detail::number(value);
    if (expected_ == reply_parameters::none) return std::nullopt;
    if (answer.coded_update) return check_coded(answer);
    if (!answer.parameters) return to_string(answer.kind) + " reply carries no parameters";
    try {
      require_same_layout(*answer.parameters, *like_);
    } catch (const layout_error& error) {
      return error.what();
    }
    // The only scan of a reply's values on its way in.
    const auto bad = first_non_finite(*answer.parameters);
    if (bad != answer.parameters->values().size())
      return "update holds a non-finite value (" + detail::number(double(answer.parameters->values()[bad])) +
             ") at parameter index " + std::to_string(bad);
    if (auto problem = check_edge_report(answer)) return problem;
    if (screen_) return screen_(*answer.parameters);
    return std::nullopt;
  }

  // A reply in the task's reply codec: every byte checked before the fold trusts it.
  std::optional<std::string> check_coded(const reply<P>& answer) const {
    if (answer.parameters) return to_string(answer.kind) + " reply carries both parameters and a coded update";
    if constexpr (!std::is_same_v<typename P::scalar_type, float>) {
      return "coded updates decode to 32-bit floats; this model holds " + std::to_string(8 * sizeof(typename P::scalar_type)) +
             "-bit scalars";
    } else {
      if (reply_codec_.kind == compression::codec::none)
        return "update is coded as " + answer.coded_update->spec.name() + "; the round asked for parameters as they are";
      if (auto problem = compression::check(*answer.coded_update, reply_codec_, like_->values().size()))
        return "coded update: " + *problem;
      if (auto problem = check_edge_report(answer)) return problem;
      if (screen_) return screen_(decoded_update(*like_, *answer.coded_update));
      return std::nullopt;
    }
  }

  // An edge aggregator's report of its subtree, when a fit reply carries one.
  std::optional<std::string> check_edge_report(const reply<P>& answer) const {
    if (answer.payload.empty() || kind_ != task_kind::fit) return std::nullopt;
    try {
      (void)decode_subtree(answer.payload);
    } catch (const decode_error& error) {
      return std::string("edge report: ") + error.what();
    }
    return std::nullopt;
  }

  std::function<std::optional<std::string>(const P&)> screen_;
  std::uint64_t round_;
  task_kind kind_;
  std::shared_ptr<const P> like_;
  compression::codec_spec reply_codec_;
  reply_parameters expected_;
  std::int64_t max_examples_;
  std::set<learner_id> pending_;
  std::int64_t examples_ = 0;
};

}  // namespace flotilla
