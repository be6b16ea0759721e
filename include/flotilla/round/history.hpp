#pragma once
// The record of a run: one entry per round with who took part, every failure and rejection with
// its reason, aggregated metrics and durations. persistence/history_export.hpp writes it as
// CSV or JSON.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "flotilla/fwd.hpp"

namespace flotilla {

/// A task that did not contribute: the learner failed, or its reply was rejected at the door.
struct rejection {
  learner_id learner = 0;
  task_kind kind = task_kind::fit;
  std::uint64_t round = 0;  ///< the round the message belonged to (may be an earlier one)
  std::string reason{};
};

/// What an edge aggregator did for one task of its parent's round (hierarchical FL): whose
/// updates its reply holds, what it rejected, and the same for the edges among its learners.
struct subtree_record {
  learner_id edge = 0;
  std::vector<learner_id> learners{};   ///< aggregated into its reply, over its inner rounds
  std::vector<rejection> rejections{};  ///< failures and rejected replies at its level
  std::vector<subtree_record> below{};  ///< the edges among its learners, the same way
};

enum class round_status : std::uint8_t {
  aggregated,  ///< a quorum replied; the global parameters were replaced
  discarded,   ///< the quorum was not met; the global parameters were kept
};

[[nodiscard]] inline const char* to_string(round_status status) {
  return status == round_status::aggregated ? "aggregated" : "discarded";
}

struct round_record {
  std::uint64_t round = 0;
  round_status status = round_status::discarded;
  std::string note{};                      ///< why a round was discarded; empty otherwise
  std::vector<learner_id> selected{};      ///< asked to fit
  std::vector<learner_id> participants{};  ///< whose fit replies were aggregated
  std::vector<learner_id> evaluated{};     ///< whose evaluation replies were used
  std::vector<rejection> rejections{};     ///< failures and rejected replies, with reasons
  std::vector<subtree_record> edges{};     ///< what the edge aggregators among the participants did below
  std::int64_t examples = 0;               ///< examples behind the aggregated update
  metrics fit_metrics{};                   ///< learners' training metrics, weighted by examples
  metrics federated_metrics{};             ///< learners' evaluation metrics, weighted by examples
  metrics central_metrics{};               ///< the coordinator's own evaluation, and its rule's
                                           ///< figures (e.g. "privacy.epsilon" spent so far)
  double fit_seconds = 0;
  double evaluate_seconds = 0;
  double round_seconds = 0;
  double elapsed_seconds = 0;              ///< since the run started, at the end of this round

  /// A metric by name. "central.x", "federated.x" and "fit.x" name one source; a bare "x" is
  /// looked up in central, then federated, then fit metrics.
  [[nodiscard]] std::optional<double> metric(std::string_view name) const {
    const auto from = [](const metrics& source, std::string_view key) -> std::optional<double> {
      auto found = source.find(std::string(key));
      return found == source.end() ? std::nullopt : std::optional<double>(found->second);
    };
    for (auto [prefix, source] : {std::pair{std::string_view("central."), &central_metrics},
                                  std::pair{std::string_view("federated."), &federated_metrics},
                                  std::pair{std::string_view("fit."), &fit_metrics}})
      if (name.starts_with(prefix)) return from(*source, name.substr(prefix.size()));
    if (auto value = from(central_metrics, name)) return value;
    if (auto value = from(federated_metrics, name)) return value;
    return from(fit_metrics, name);
  }
};

/// Every round of a run and the reason it stopped.
struct history {
  std::vector<round_record> rounds{};
  std::string stop_reason{};  ///< the stopping criterion that ended the run

};

}  // namespace flotilla
