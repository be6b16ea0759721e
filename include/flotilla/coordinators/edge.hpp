#pragma once
// An edge aggregator: a learner towards its parent that runs a coordinator over its own
// transport (hierarchical FL, as Oakestra FLOps and HierFAVG run it). A fit task from the parent
// becomes inner rounds over the edge's learners, starting from the parent's parameters; the
// reply is the edge's new global parameters with the examples behind them, so a parent running
// FedAvg over edges computes FedAvg over all their learners (one inner round a task: pass
// through). An evaluate task asks the edge's learners and returns their combined metrics.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "flotilla/aggregators/mean.hpp"
#include "flotilla/coordinators/synchronous.hpp"
#include "flotilla/errors.hpp"
#include "flotilla/messages.hpp"
#include "flotilla/random.hpp"
#include "flotilla/round/reply_collector.hpp"
#include "flotilla/round/selection.hpp"
#include "flotilla/round/stopping.hpp"
#include "flotilla/round/subtree.hpp"

namespace flotilla {

/// An edge aggregator's settings.
struct edge_options {
  /// Inner rounds per fit task from the parent: 1 passes the round through; more is HierFAVG's
  /// edge aggregations per cloud aggregation (FLOps's rounds per cluster round).
  std::size_t rounds_per_fit = 1;
  /// Ends a fit task's inner rounds early when it fires (e.g. stop::when_no_improvement); the
  /// edge's whole history is what it sees.
  std::optional<stopping_rule> stop{};
  /// The edge's own round: selection, quorum, timeouts, its learners' settings. The parent's fit
  /// settings reach the learners too, overriding the edge's of the same name.
  coordinator_options coordinator{};
  /// Share of the edge's learners asked when the parent asks the edge to evaluate.
  double evaluation_fraction = 1;

  /// @throws configuration_error naming the setting that cannot work.
  void validate() const {
    if (rounds_per_fit == 0) throw configuration_error("an edge must run at least one inner round per fit task");
    if (!(evaluation_fraction > 0 && evaluation_fraction <= 1))
      throw configuration_error("an edge's evaluation_fraction must be in (0, 1]");
    coordinator.validate();
  }
};

/// @brief A Learner whose fit runs a federation of its own over `T` with rule `Rule`.
///
/// The reply to a fit task carries the edge's global parameters after its inner rounds, the
/// examples of the last one that aggregated, its learners' fit metrics, "edge.rounds",
/// "edge.learners" (who were aggregated) and "edge.rejections" (failures and rejected replies
/// in those rounds), and as its payload a subtree_record of who, what was rejected and the
/// edges below, which the parent's round keeps in round_record::edges. A task none of whose
/// inner rounds aggregated fails with the last round's note, so the parent records why. The
/// edge's own history keeps every inner round.
template <class T, class Rule = weighted_mean<typename T::parameters_type>>
class edge_aggregator {
 public:
  using parameters_type = typename T::parameters_type;
  using transport_type = T;

  edge_aggregator(learner_id id, T& transport, parameters_type initial, edge_options options = {}, Rule rule = {})
      : id_(id),
        options_(validated(std::move(options))),
        coordinator_(transport, std::move(initial), with_parent_settings(options_.coordinator), std::move(rule)) {}

  [[nodiscard]] learner_id id() const { return id_; }
  [[nodiscard]] const flotilla::history& history() const { return coordinator_.history(); }
  [[nodiscard]] coordinator<T, Rule>& inner() { return coordinator_; }

  reply<parameters_type> handle(const task<parameters_type>& work) {
    if (!work.parameters) throw task_error("task for round " + std::to_string(work.round) + " carries no parameters");
    if (work.kind == task_kind::fit) return fit(work);
    if (work.kind == task_kind::evaluate) return evaluate(work);
    throw task_error("edge " + std::to_string(id_) + " does not handle " + to_string(work.kind) + " tasks");
  }

 private:
  static edge_options validated(edge_options options) {
    options.validate();
    return options;
  }

  // The coordinator's configure_fit, with the parent's settings first: the edge's own
  // per-learner settings still override them.
  coordinator_options with_parent_settings(coordinator_options options) {
    auto own = std::move(options.configure_fit);
    options.configure_fit = [parent = parent_settings_, own = std::move(own)](learner_id learner, const settings& properties,
                                                                              std::uint64_t round) {
      settings combined = *parent;
      if (own)
        for (auto& [name, value] : own(learner, properties, round)) combined.insert_or_assign(name, std::move(value));
      return combined;
    };
    return options;
  }

  reply<parameters_type> fit(const task<parameters_type>& work) {
    coordinator_.set_global(*work.parameters);
    *parent_settings_ = work.config.values;
    const auto first = coordinator_.history().rounds.size();
    std::optional<std::size_t> aggregated;  // an index: the history grows while the rounds run
    for (std::size_t round = 0; round < options_.rounds_per_fit; ++round) {
      if (options_.stop && (*options_.stop)(coordinator_.history())) break;
      if (coordinator_.run_round().status == round_status::aggregated) aggregated = coordinator_.history().rounds.size() - 1;
    }
    const auto& rounds = coordinator_.history().rounds;
    if (!aggregated)
      throw task_error("edge " + std::to_string(id_) + ": no inner round aggregated" +
                       (rounds.size() > first ? " (" + rounds.back().note + ")" : std::string()));
    subtree_record tree{.edge = id_};  // what this task did below: into the reply's payload
    for (auto at = first; at < rounds.size(); ++at) {
      tree.learners.insert(tree.learners.end(), rounds[at].participants.begin(), rounds[at].participants.end());
      tree.rejections.insert(tree.rejections.end(), rounds[at].rejections.begin(), rounds[at].rejections.end());
      tree.below.insert(tree.below.end(), rounds[at].edges.begin(), rounds[at].edges.end());
    }
    std::ranges::sort(tree.learners);
    tree.learners.erase(std::unique(tree.learners.begin(), tree.learners.end()), tree.learners.end());
    reply<parameters_type> answer{.learner = id_, .kind = work.kind, .round = work.round,
                                  .result = {.examples = rounds[*aggregated].examples,
                                             .metrics = rounds[*aggregated].fit_metrics},
                                  .parameters = coordinator_.global()};
    answer.result.metrics["edge.rounds"] = double(rounds.size() - first);
    answer.result.metrics["edge.learners"] = double(tree.learners.size());
    answer.result.metrics["edge.rejections"] = double(tree.rejections.size());
    answer.payload = encode_subtree(tree);
    return answer;
  }

  reply<parameters_type> evaluate(const task<parameters_type>& work) {
    auto& transport = coordinator_.transport();
    const auto asked = select_learners(transport.available(), {.fraction = options_.evaluation_fraction, .minimum = 1}, engine_);
    std::vector<rejection> rejected;
    rejection_log log(rejected, options_.coordinator.max_rejections_per_learner);
    // Numbered as the last inner round: a late fit reply of that round is then told apart by kind.
    const task<parameters_type> own{.kind = task_kind::evaluate, .round = coordinator_.rounds_run(),
                                    .parameters = work.parameters, .config = work.config};
    const exchange_options timing{.timeout = options_.coordinator.round_timeout,
                                  .metric_reducers = options_.coordinator.metric_reducers};
    auto outcome = exchange(transport, own, asked, reply_parameters::none, options_.coordinator.max_examples_per_reply,
                            timing, log, [](std::span<reply<parameters_type>>) {});
    if (outcome.accepted.empty())
      throw task_error("edge " + std::to_string(id_) + ": none of its " + std::to_string(asked.size()) + " learners evaluated");
    return {.learner = id_, .kind = work.kind, .round = work.round,
            .result = {.examples = outcome.examples, .metrics = std::move(outcome.metrics)}};
  }

  learner_id id_;
  edge_options options_;
  std::shared_ptr<settings> parent_settings_ = std::make_shared<settings>();  // shared with configure_fit
  coordinator<T, Rule> coordinator_;
  random_engine engine_{mix_seed(options_.coordinator.seed, id_)};  // who evaluates
};

}  // namespace flotilla
