#pragma once
// The synchronous coordinator runs rounds over any Transport: select learners, then its phases
// in order (round/phases.hpp): fit, which folds each admitted reply into the aggregation rule as
// it arrives and aggregates, and evaluate; then record, and decide whether to stop. It never
// trains, and it writes no files: persistence/checkpoint.hpp saves and restores its snapshot.

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "flotilla/aggregators/mean.hpp"
#include "flotilla/arithmetic.hpp"
#include "flotilla/compression/codec.hpp"
#include "flotilla/concepts/aggregator.hpp"
#include "flotilla/concepts/transport.hpp"
#include "flotilla/errors.hpp"
#include "flotilla/messages.hpp"
#include "flotilla/random.hpp"
#include "flotilla/round/history.hpp"
#include "flotilla/round/metric_reducers.hpp"
#include "flotilla/round/phases.hpp"
#include "flotilla/round/reply_collector.hpp"
#include "flotilla/round/selection.hpp"
#include "flotilla/round/snapshot.hpp"
#include "flotilla/round/stages.hpp"
#include "flotilla/round/stopping.hpp"

namespace flotilla {

struct coordinator_options {
  selection_options selection{};       ///< who is asked to fit each round
  std::size_t quorum = 1;              ///< accepted fit replies needed to aggregate a round
  std::chrono::duration<double> round_timeout = std::chrono::minutes(10);  ///< per phase
  std::chrono::duration<double> wait_for_learners{0};  ///< how long to wait for enough learners
  double evaluation_fraction = 0;      ///< share of learners asked to evaluate; 0 turns it off
  std::uint64_t seed = 0;              ///< drives selection and learners' shuffling
  settings fit_settings{};             ///< sent to learners as fit_config::values
  /// Settings that change with the round, e.g. a decaying learning rate: called with each
  /// round's number, its values override `fit_settings` of the same name. Unlike the rest of
  /// these options it is not in a checkpoint; pass the same schedule when resuming.
  std::function<settings(std::uint64_t round)> fit_schedule{};
  /// Each selected learner's own settings for a fit task (Flower's configure_fit): called with
  /// the learner, the properties it reported when it joined and the round; its values override
  /// those above of the same name. The parameters are still shared: only the settings differ.
  std::function<settings(learner_id learner, const settings& properties, std::uint64_t round)> configure_fit{};
  /// How a metric is combined across replies, by name; any other metric is the mean weighted
  /// by examples (see metric_reducers.hpp).
  std::map<std::string, metric_reducer> metric_reducers{};
  /// The most examples one reply may claim. Counts are the learners' own word and weigh their
  /// updates in FedAvg, so a reply above this is rejected (robust rules ignore counts anyway).
  std::int64_t max_examples_per_reply = 1'000'000'000;
  /// Rejections recorded one by one per learner and round; the rest are counted in one entry,
  /// so a learner flooding bad messages cannot grow the history without bound.
  std::size_t max_rejections_per_learner = 8;
  /// Codecs for fit tasks' parameters and for learners' replies (compression/codec.hpp): none by
  /// default. Learners code their replies when wrapped in compressing_learner; a learner that
  /// is not still sends its parameters as they are, and they are accepted.
  flotilla::compression::options compression{};

  /// @throws configuration_error naming the setting that cannot work.
  void validate() const {
    selection.validate();
    compression.validate();
    if (quorum == 0) throw configuration_error("quorum must be at least one reply");
    if (max_examples_per_reply < 1) throw configuration_error("max_examples_per_reply must be at least one");
    if (max_rejections_per_learner < 1) throw configuration_error("max_rejections_per_learner must be at least one");
    if (!(round_timeout.count() > 0)) throw configuration_error("round_timeout must be positive");
    if (!(evaluation_fraction >= 0 && evaluation_fraction <= 1))
      throw configuration_error("evaluation_fraction must be in [0, 1]; got " + std::to_string(evaluation_fraction));
    for (const auto& [name, reducer] : metric_reducers)
      if (!reducer) throw configuration_error("metric '" + name + "' has an empty reducer");
  }
};

/// @brief Runs federated rounds with rule `Rule` (FedAvg by default) over transport `T`.
///
/// `T` must be a `Transport` and `Rule` an `Aggregator` of its parameters; they are checked in the
/// body rather than in the template head, so an error names the unmet requirement.
template <class T, class Rule = weighted_mean<typename T::parameters_type>>
class coordinator {
  static_assert(detail::explain_transport<T>());
  static_assert(detail::explain_aggregator<Rule, typename T::parameters_type>());

 public:
  using transport_type = T;
  using rule_type = Rule;
  using parameters_type = typename T::parameters_type;
  /// Centralized evaluation: the coordinator's own metrics for new global parameters.
  using evaluator = std::function<metrics(const parameters_type&)>;
  /// Called after every round, e.g. to print progress.
  using round_observer = std::function<void(const round_record&)>;
  /// Called before every round with its number, before learners are selected.
  using round_start_observer = std::function<void(std::uint64_t round)>;

  coordinator(T& transport, parameters_type initial, coordinator_options options = {}, Rule rule = {})
      : transport_(transport),
        global_(std::make_shared<const parameters_type>(std::move(initial))),
        options_(validated(std::move(options))),
        exchange_{.timeout = options_.round_timeout, .metric_reducers = options_.metric_reducers},
        rule_(std::move(rule)),
        engine_(options_.seed) {}

  /// A rule with the default options. (A template, so `coordinator(t, p, {})` still means options.)
  template <class R>
    requires std::same_as<std::remove_cvref_t<R>, Rule>
  coordinator(T& transport, parameters_type initial, R&& rule)
      : coordinator(transport, std::move(initial), coordinator_options{}, std::forward<R>(rule)) {}

  void evaluate_centrally(evaluator evaluate) { evaluator_ = std::move(evaluate); }
  /// Adds an observer called after every round, after those added before it.
  void on_round(round_observer observer) { observers_.push_back(std::move(observer)); }
  /// Adds an observer called before every round, after those added before it.
  void on_round_start(round_start_observer observer) { start_observers_.push_back(std::move(observer)); }

  /// Runs rounds until `stop` fires; its reason is recorded in the history.
  const flotilla::history& run(const stopping_rule& stop) {
    if (!started_) started_ = deadline_clock::now();
    return run_until(stop, history_, [this] { run_round(); });
  }

  /// Runs one round and returns its record (also appended to the history).
  const round_record& run_round();

  /// The state between rounds, read in place: what a checkpoint saves.
  [[nodiscard]] coordinator_snapshot<parameters_type, Rule> snapshot() const {
    return {round_, engine_, *global_, rule_, history_};
  }

  /// Continues from a saved state: a run interrupted after round k and restored here ends
  /// exactly as an uninterrupted one would, given deterministic learners and reply order.
  /// @throws layout_error, changing nothing, if the state's model has another layout.
  void restore(coordinator_state<parameters_type, Rule> state) {
    if (!state.global) throw configuration_error("a restored state needs global parameters");
    require_same_layout(*state.global, *global_, "the restored model", "this coordinator's model");
    round_ = state.round;
    engine_ = state.engine;
    global_ = std::move(state.global);
    rule_ = std::move(state.rule);
    history_ = std::move(state.history);
  }

  /// Continues from `global` instead of the current global parameters: an edge aggregator
  /// adopts its parent's at every outer round. @throws layout_error, changing nothing, if its
  /// layout differs.
  void set_global(parameters_type global) {
    require_same_layout(global, *global_, "the new global parameters", "this coordinator's model");
    global_ = std::make_shared<const parameters_type>(std::move(global));
  }

  [[nodiscard]] const parameters_type& global() const { return *global_; }
  [[nodiscard]] const flotilla::history& history() const { return history_; }
  [[nodiscard]] const Rule& rule() const { return rule_; }
  [[nodiscard]] std::uint64_t rounds_run() const { return round_; }
  [[nodiscard]] const coordinator_options& options() const { return options_; }
  [[nodiscard]] T& transport() { return transport_; }

 private:
  static coordinator_options validated(coordinator_options options) {
    options.validate();
    if (options.compression.any()) {
      if constexpr (StagedRule<Rule, T>)
        throw configuration_error("compression: this rule runs stages of its own (secure aggregation quantizes and masks "
                                  "updates itself); leave compression at none");
      if constexpr (!std::is_same_v<typename parameters_type::scalar_type, float>)
        throw configuration_error("compression codes 32-bit floats; this model holds " +
                                  std::to_string(8 * sizeof(typename parameters_type::scalar_type)) + "-bit scalars");
    }
    return options;
  }

  fit_config make_config(task_kind kind) const {
    fit_config config{.round = round_, .seed = mix_seed(options_.seed, round_), .values = options_.fit_settings};
    if (kind == task_kind::fit && options_.fit_schedule)
      for (auto& [name, value] : options_.fit_schedule(round_)) config.values.insert_or_assign(name, std::move(value));
    return config;
  }

  // A learner's fit settings: the round's, overridden by configure_fit's for this learner.
  fit_phase_configure configure_each() {
    if (!options_.configure_fit) return nullptr;
    return [this](learner_id learner, const fit_config& shared) {
      auto own = shared;
      for (auto& [name, value] : options_.configure_fit(learner, learner_properties(transport_, learner), round_))
        own.values.insert_or_assign(name, std::move(value));
      return own;
    };
  }

  T& transport_;
  std::shared_ptr<const parameters_type> global_;
  coordinator_options options_;
  exchange_options exchange_;
  Rule rule_;
  random_engine engine_;
  std::uint64_t round_ = 0;
  flotilla::history history_;
  std::optional<deadline_clock::time_point> started_;
  evaluator evaluator_;
  std::vector<round_observer> observers_;
  std::vector<round_start_observer> start_observers_;
};

/// `coordinator(transport, initial, rule)`: the rule's type is the coordinator's.
template <class T, class Rule>
  requires(!std::convertible_to<Rule, coordinator_options>)
coordinator(T&, typename T::parameters_type, Rule) -> coordinator<T, Rule>;

// Out of the class, so not inline: with FLOTILLA_SEPARATE_COMPILATION the common coordinators
// are compiled once in the library (see the end of this file).
template <class T, class Rule>
const round_record& coordinator<T, Rule>::run_round() {
  if (!started_) started_ = deadline_clock::now();
  // Before the round's clock starts: waiting is not the round's work.
  wait_for_learners(transport_, std::max(options_.quorum, options_.selection.minimum), options_.wait_for_learners);
  const auto round_start = deadline_clock::now();
  round_record record;
  record.round = ++round_;
  for (const auto& observer : start_observers_) observer(record.round);
  record.selected = select_learners(transport_, options_.selection, engine_);
  if (record.selected.size() < options_.quorum) {
    record.note = "only " + std::to_string(record.selected.size()) +
                  (options_.selection.draw == sampling::poisson ? " learners drawn by Poisson sampling; the quorum is "
                                                                 : " learners available; the quorum is ") +
                  std::to_string(options_.quorum);
  } else {
    rejection_log rejections(record.rejections, options_.max_rejections_per_learner);
    round_state<T> state{transport_, record, global_, engine_, rejections, exchange_, options_.max_examples_per_reply};
    if constexpr (StagedRule<Rule, T>) {
      const auto start = deadline_clock::now();
      staged_round<T> stages(state);
      rule_.run_fit(stages, make_config(task_kind::fit), options_.quorum, configure_each());
      record.fit_seconds = detail::seconds_since(start);
    } else {
      fit_phase<Rule>(rule_, options_.quorum, configure_each(), options_.compression).run(state, make_config(task_kind::fit));
    }
    if (record.status == round_status::aggregated)
      evaluate_phase<parameters_type>(evaluator_, options_.evaluation_fraction)
          .run(state, make_config(task_kind::evaluate));
  }
  const auto now = deadline_clock::now();
  record.round_seconds = std::chrono::duration<double>(now - round_start).count();
  record.elapsed_seconds = std::chrono::duration<double>(now - *started_).count();
  history_.rounds.push_back(std::move(record));
  for (const auto& observer : observers_) observer(history_.rounds.back());
  return history_.rounds.back();
}

}  // namespace flotilla
