#pragma once
// A fit phase made of stages of its own (secure aggregation's four): a rule that runs the fit
// phase itself (StagedRule) is handed a staged_round, which sends each learner a task of its own
// per stage, passes every reply through a door and then the rule's own check of its payload, and
// lets the rule fill in the round's outcome. The rule needs nothing else of the round's pieces.

#include <cstddef>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "flotilla/concepts/transport.hpp"
#include "flotilla/messages.hpp"
#include "flotilla/round/door.hpp"
#include "flotilla/round/history.hpp"
#include "flotilla/round/metric_reducers.hpp"
#include "flotilla/round/phases.hpp"
#include "flotilla/round/reply_collector.hpp"

namespace flotilla {

/// @brief One round as a rule with stages of its own sees it.
template <Transport T>
class staged_round {
 public:
  using parameters_type = typename T::parameters_type;

  explicit staged_round(round_state<T>& state) : state_(state) {}

  [[nodiscard]] std::uint64_t round() const { return state_.record.round; }
  /// The learners selected for the round, sorted.
  [[nodiscard]] const std::vector<learner_id>& selected() const { return state_.record.selected; }
  [[nodiscard]] const std::shared_ptr<const parameters_type>& global() const { return state_.global; }

  /// What a stage yielded: the learners whose replies passed the door and the rule's check.
  struct outcome {
    std::vector<learner_id> accepted{};
    flotilla::metrics metrics{};  ///< theirs, combined as the coordinator's reducers say
  };

  /// @brief One stage: `make(learner)` gives each of `asked` its task (its kind and round are
  /// set here), replies pass the door (round, kind, learner, metrics), then `take(reply)` returns
  /// the reason to reject it or nothing; an exception from `take` (a payload that does not
  /// decode) rejects it with its message. Rejections and silence go to the round's history.
  template <class Make, class Take>
  outcome run_stage(task_kind kind, std::span<const learner_id> asked, Make&& make, Take&& take) {
    using P = parameters_type;
    outcome result;
    if (asked.empty()) return result;
    const task<P> like{.kind = kind, .round = round()};
    reply_door<P> door(like, asked, reply_parameters::none, state_.max_examples_per_reply);
    for (const auto learner : asked) {
      task<P> own = make(learner);
      own.kind = kind;
      own.round = round();
      state_.transport.send(own, std::span(&learner, 1));
    }
    std::map<std::string, std::vector<metric_sample>> samples;
    collect_replies(state_.transport, door, state_.exchange, state_.rejections, [&](std::span<reply<P>> replies) {
      for (auto& answer : replies) {
        std::optional<std::string> problem;
        try {
          problem = take(static_cast<const reply<P>&>(answer));
        } catch (const std::exception& error) {
          problem = error.what();
        }
        if (problem) {
          state_.rejections.record(answer.learner, answer.kind, answer.round, std::move(*problem));
          continue;
        }
        result.accepted.push_back(answer.learner);
        for (const auto& [name, value] : answer.result.metrics) samples[name].push_back({value, answer.result.examples});
      }
    });
    std::ranges::sort(result.accepted);
    for (const auto& [name, values] : samples) {
      const auto custom = state_.exchange.metric_reducers.find(name);
      result.metrics[name] =
          custom != state_.exchange.metric_reducers.end() ? custom->second(values) : reduce::weighted_mean(values);
    }
    return result;
  }

  /// The round aggregated: new global parameters, whose updates they hold, their examples and
  /// training metrics.
  void aggregated(parameters_type next, std::vector<learner_id> participants, std::int64_t examples, metrics fit_metrics) {
    state_.global = std::make_shared<const parameters_type>(std::move(next));
    state_.record.status = round_status::aggregated;
    state_.record.participants = std::move(participants);
    state_.record.examples = examples;
    state_.record.fit_metrics = std::move(fit_metrics);
  }
  /// The round did not aggregate, and why; the global parameters stay.
  void discarded(std::string note) { state_.record.note = std::move(note); }
  /// Figures for the round's central metrics (a rule's own, such as the privacy spent).
  void report(const metrics& figures) {
    for (const auto& [name, value] : figures) state_.record.central_metrics.insert_or_assign(name, value);
  }

 private:
  round_state<T>& state_;
};

/// @brief A rule that runs the fit phase itself, over stages of its own (secure aggregation:
/// secure_aggregation::secure_mean): where the coordinator would run fit_phase it calls
/// `rule.run_fit(round, config, quorum, configure)` with a staged_round.
template <class Rule, class T>
concept StagedRule = Transport<T> && requires(Rule& rule, staged_round<T>& round, fit_config config, std::size_t quorum,
                                              const fit_phase_configure& configure) {
  rule.run_fit(round, config, quorum, configure);
};

}  // namespace flotilla
