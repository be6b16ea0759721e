#pragma once
// The phases of the classic round as types a coordinator runs in order: fit (send the global
// parameters, fold each admitted reply into the rule as it arrives, aggregate) and evaluate
// (centrally and on learners). Each is one exchange (reply_collector.hpp) plus what it does with
// the replies; a round with stages of its own builds them from the same exchange.

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "flotilla/arithmetic.hpp"
#include "flotilla/compression/codec.hpp"
#include "flotilla/concepts/aggregator.hpp"
#include "flotilla/concepts/transport.hpp"
#include "flotilla/detail/text.hpp"
#include "flotilla/messages.hpp"
#include "flotilla/random.hpp"
#include "flotilla/round/door.hpp"
#include "flotilla/round/history.hpp"
#include "flotilla/round/reply_collector.hpp"
#include "flotilla/round/selection.hpp"
#include "flotilla/round/subtree.hpp"

namespace flotilla {

/// What every phase of one round works on.
template <Transport T>
struct round_state {
  using parameters_type = typename T::parameters_type;
  T& transport;
  round_record& record;                             ///< the phases fill it in
  std::shared_ptr<const parameters_type>& global;   ///< replaced when the round aggregates
  random_engine& engine;                            ///< selection draws from it
  rejection_log& rejections;
  const exchange_options& exchange;
  std::int64_t max_examples_per_reply;
};

/// Folds admitted fit replies into `rule`: in one pass when the rule can take a batch. A coded
/// reply is `base` (the global parameters) plus its decoded change: decoded slice by slice inside
/// a CodedAggregator, whole for any other rule. Replies are dropped after folding, so a rule that
/// offers `accept(P&&, examples)` receives their parameters by move.
template <class Rule, ParameterSet P>
void fold_replies(Rule& rule, std::span<reply<P>> replies, const P& base) {
  if (std::ranges::any_of(replies, [](const reply<P>& answer) { return answer.coded_update.has_value(); })) {
    if constexpr (CodedAggregator<Rule, P>) {
      std::vector<coded_update<P>> updates;
      updates.reserve(replies.size());
      for (const auto& answer : replies)
        updates.push_back(answer.coded_update ? coded_update<P>{&base, &*answer.coded_update, answer.result.examples}
                                              : coded_update<P>{&*answer.parameters, nullptr, answer.result.examples});
      rule.accept_coded(std::span<const coded_update<P>>(updates));
    } else {
      for (const auto& answer : replies) {
        if (answer.coded_update) rule.accept(decoded_update(base, *answer.coded_update), answer.result.examples);
        else rule.accept(*answer.parameters, answer.result.examples);
      }
    }
    return;
  }
  if constexpr (BatchAggregator<Rule, P>) {
    std::vector<weighted_update<P>> updates;
    updates.reserve(replies.size());
    for (const auto& answer : replies) updates.push_back({&*answer.parameters, answer.result.examples});
    rule.accept_batch(std::span<const weighted_update<P>>(updates));
  } else {  // a rule that keeps updates (the robust ones) takes each reply's parameters over
    for (auto& answer : replies) rule.accept(std::move(*answer.parameters), answer.result.examples);
  }
}

/// @brief A transport that folds fit replies where they arise: `t.fold_exchange(work, door, rule,
/// options, log, consume)` sends `work` to the door's pending learners, hands the replies that
/// reach this process to `consume` through `door`, merges into `rule` the partial states other
/// processes folded from their own learners' replies (see PartialAggregator), and returns the
/// exchange's outcome. The MPI transport is one: rank 0 receives a model per rank, not per learner.
template <class T, class Rule>
concept FoldingTransport =
    Transport<T> && requires(T& t, const task<typename T::parameters_type>& work,
                             reply_door<typename T::parameters_type>& door, Rule& rule, const exchange_options& options,
                             rejection_log& log,
                             const std::function<void(std::span<reply<typename T::parameters_type>>)>& consume) {
      { t.fold_exchange(work, door, rule, options, log, consume) } -> std::same_as<exchange_outcome>;
    };

namespace detail {
inline double seconds_since(deadline_clock::time_point start) {
  return std::chrono::duration<double>(deadline_clock::now() - start).count();
}
}  // namespace detail

/// A learner's own settings for a fit task, given the round's (coordinator_options::configure_fit).
using fit_phase_configure = std::function<fit_config(learner_id, const fit_config&)>;

/// @brief The fit phase: asks `record.selected` to train from the global parameters, streams
/// their replies into the rule, and replaces the global parameters with the rule's result when
/// at least `quorum` replies were admitted and the result is finite. With `configure`, each
/// learner gets a task of its own settings (the parameters are still shared). With `codecs`, the
/// parameters travel coded and learners are asked to code their replies (compression/codec.hpp).
template <class Rule>
class fit_phase {
 public:
  fit_phase(Rule& rule, std::size_t quorum, fit_phase_configure configure = nullptr, compression::options codecs = {})
      : rule_(rule), quorum_(quorum), configure_(std::move(configure)), codecs_(codecs) {}

  template <Transport T>
    requires Aggregator<Rule, typename T::parameters_type>
  void run(round_state<T>& state, fit_config config) {
    using P = typename T::parameters_type;
    const auto start = deadline_clock::now();
    auto& record = state.record;
    rule_.start(*state.global);
    task<P> work{.kind = task_kind::fit, .round = record.round, .parameters = state.global,
                 .config = std::move(config), .payload = {}, .reply_codec = codecs_.to_aggregator};
    if (codecs_.to_learners.kind != compression::codec::none) code_parameters(work, *state.global);
    const std::function<void(std::span<reply<P>>)> fold = [&](std::span<reply<P>> replies) {
      fold_replies(rule_, replies, *state.global);
      for (const auto& answer : replies)  // edge aggregators report what happened below them
        if (!answer.payload.empty()) record.edges.push_back(decode_subtree(answer.payload));
    };
    std::function<std::optional<std::string>(const P&)> screen;
    if constexpr (ScreeningAggregator<Rule, P>) screen = [this](const P& update) { return rule_.screen(update); };
    reply_door<P> door(work, record.selected, reply_parameters::required, state.max_examples_per_reply, std::move(screen),
                       state.global);
    auto outcome = [&] {
      if constexpr (FoldingTransport<T, Rule>)  // one task for all: settings of their own go one by one
        if (!configure_) return state.transport.fold_exchange(work, door, rule_, state.exchange, state.rejections, fold);
      if (configure_) {
        for (const auto learner : record.selected) {
          auto own = work;
          own.config = configure_(learner, work.config);
          state.transport.send(own, std::span(&learner, 1));
        }
      } else {
        state.transport.send(work, record.selected);
      }
      return collect_replies(state.transport, door, state.exchange, state.rejections, fold);
    }();
    record.participants = std::move(outcome.accepted);
    record.fit_metrics = std::move(outcome.metrics);
    record.examples = outcome.examples;
    if (record.participants.size() >= quorum_) {
      auto result = rule_.result();
      const auto bad = first_non_finite(result);
      if (bad == result.values().size()) {
        state.global = std::make_shared<const P>(std::move(result));
        record.status = round_status::aggregated;
      } else {  // finite updates can still overflow: keep a model the next round can use
        record.note = "the aggregate holds a non-finite value (" + detail::number(double(result.values()[bad])) +
                      ") at parameter index " + std::to_string(bad) + "; global parameters kept";
      }
    } else {
      record.note = "quorum not met: " + std::to_string(record.participants.size()) + " accepted replies, " +
                    std::to_string(quorum_) + " required; global parameters kept";
    }
    if constexpr (ReportingAggregator<Rule, P>)
      for (auto& [name, value] : rule_.round_metrics()) record.central_metrics.insert_or_assign(name, value);
    record.fit_seconds = detail::seconds_since(start);
  }

 private:
  // The global parameters coded once for every learner, and decoded again as the task's
  // parameters: a learner in memory trains from what a remote one receives.
  template <ParameterSet P>
  void code_parameters(task<P>& work, const P& global) const {
    if constexpr (!std::is_same_v<typename P::scalar_type, float>) {
      throw configuration_error("compression codes 32-bit floats; this model holds other scalars");
    } else {
      auto coded = std::make_shared<const compression::coded_values>(
          compression::encode(global.values(), codecs_.to_learners, mix_seed(work.config.seed, 0x636F646563)));
      auto received = std::make_shared<P>(global);
      compression::decode(*coded, received->values());
      work.parameters = std::move(received);
      work.coded_parameters = std::move(coded);
    }
  }

  Rule& rule_;
  std::size_t quorum_;
  fit_phase_configure configure_;
  compression::options codecs_;
};

/// @brief The evaluate phase: the coordinator's own metrics for the global parameters (when
/// `central` is set), then a `fraction` of the available learners evaluating them on their data.
template <ParameterSet P>
class evaluate_phase {
 public:
  using evaluator = std::function<metrics(const P&)>;

  evaluate_phase(const evaluator& central, double fraction) : central_(central), fraction_(fraction) {}

  template <Transport T>
    requires std::same_as<typename T::parameters_type, P>
  void run(round_state<T>& state, fit_config config) {
    const auto start = deadline_clock::now();
    auto& record = state.record;
    if (central_)  // beside what the rule reported in the fit phase
      for (auto& [name, value] : central_(*state.global)) record.central_metrics.insert_or_assign(name, value);
    if (fraction_ > 0) {
      const auto asked = select_learners(state.transport.available(), {.fraction = fraction_, .minimum = 1}, state.engine);
      const task<P> work{.kind = task_kind::evaluate, .round = record.round, .parameters = state.global,
                         .config = std::move(config)};
      auto outcome = exchange(state.transport, work, asked, reply_parameters::none, state.max_examples_per_reply,
                              state.exchange, state.rejections, [](std::span<reply<P>>) {});
      record.evaluated = std::move(outcome.accepted);
      record.federated_metrics = std::move(outcome.metrics);
    }
    record.evaluate_seconds = detail::seconds_since(start);
  }

 private:
  const evaluator& central_;
  double fraction_;
};

/// Waits until `transport` has at least `count` learners available, or `timeout` passes;
/// true if they are there.
template <Transport T>
bool wait_for_learners(T& transport, std::size_t count, std::chrono::duration<double> timeout) {
  const auto until = deadline_clock::now() + std::chrono::duration_cast<deadline_clock::duration>(timeout);
  for (;;) {
    if (transport.available().size() >= count) return true;
    if (deadline_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace flotilla
