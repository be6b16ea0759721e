#pragma once
// When a run ends: after a number of rounds, after a time budget, when a metric reaches a target,
// when it has stopped improving, or before it spends more privacy than its budget. Criteria
// compose with ||, and the first to fire names itself in the history.

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <utility>

#include "flotilla/algorithms/privacy/accountant.hpp"
#include "flotilla/detail/text.hpp"
#include "flotilla/errors.hpp"
#include "flotilla/round/history.hpp"

namespace flotilla {

/// A criterion checked before every round: an empty optional to go on, or the reason to stop.
class stopping_rule {
 public:
  using check_function = std::function<std::optional<std::string>(const history&)>;

  explicit stopping_rule(check_function check) : check_(std::move(check)) {}

  [[nodiscard]] std::optional<std::string> operator()(const history& so_far) const { return check_(so_far); }

  /// Stops when either criterion does; the left one is asked first.
  friend stopping_rule operator||(stopping_rule a, stopping_rule b) {
    return stopping_rule([a = std::move(a), b = std::move(b)](const history& so_far) {
      if (auto reason = a(so_far)) return reason;
      return b(so_far);
    });
  }

 private:
  check_function check_;
};

/// Calls `step()` (one round, one update) until `stop` fires on `past`, and records its reason:
/// the loop every coordinator's run() is.
template <class Step>
const history& run_until(const stopping_rule& stop, history& past, Step&& step) {
  for (;;) {
    if (auto reason = stop(past)) {
      past.stop_reason = *reason;
      return past;
    }
    step();
  }
}

/// Whether a larger or a smaller value of a metric is better.
enum class better : std::uint8_t { higher, lower };

namespace stop {

/// After `rounds` rounds (discarded rounds count: they took the time).
[[nodiscard]] inline stopping_rule after_rounds(std::size_t rounds) {
  return stopping_rule([rounds](const history& so_far) -> std::optional<std::string> {
    if (so_far.rounds.size() < rounds) return std::nullopt;
    return "reached the round budget of " + std::to_string(rounds);
  });
}

/// Once the run has taken at least `budget` of wall-clock time (checked between rounds).
[[nodiscard]] inline stopping_rule after_time(std::chrono::duration<double> budget) {
  return stopping_rule([budget](const history& so_far) -> std::optional<std::string> {
    if (so_far.rounds.empty() || so_far.rounds.back().elapsed_seconds < budget.count()) return std::nullopt;
    return "reached the time budget of " + detail::number(budget.count()) + " s";
  });
}

/// When the latest round's `metric` (see round_record::metric) is at least as good as `target`.
[[nodiscard]] inline stopping_rule when_metric_reaches(std::string metric, double target, better direction) {
  return stopping_rule([metric = std::move(metric), target, direction](const history& so_far)
                           -> std::optional<std::string> {
    if (so_far.rounds.empty()) return std::nullopt;
    const auto value = so_far.rounds.back().metric(metric);
    if (!value) return std::nullopt;
    const bool reached = direction == better::higher ? *value >= target : *value <= target;
    if (!reached) return std::nullopt;
    return metric + " reached " + detail::number(*value) + " (target " + detail::number(target) + ")";
  });
}

/// When `metric` has not improved on its best by more than `min_delta` for `patience` rounds in
/// a row. Rounds without the metric (e.g. discarded ones) count as not improving.
[[nodiscard]] inline stopping_rule when_no_improvement(std::string metric, std::size_t patience, better direction,
                                                       double min_delta = 0.0) {
  if (patience == 0) throw configuration_error("patience must be at least one round");
  return stopping_rule([metric = std::move(metric), patience, direction, min_delta](const history& so_far)
                           -> std::optional<std::string> {
    std::optional<double> best;
    std::size_t since_best = 0;
    for (const auto& r : so_far.rounds) {
      const auto value = r.metric(metric);
      const bool improved = value && (!best || (direction == better::higher ? *value > *best + min_delta
                                                                            : *value < *best - min_delta));
      if (improved) {
        best = value;
        since_best = 0;
      } else {
        ++since_best;
      }
    }
    if (since_best < patience) return std::nullopt;
    return metric + " did not improve for " + std::to_string(patience) + " rounds (best " +
           (best ? detail::number(*best) : std::string("none")) + ")";
  });
}

/// @brief Before a round that would take the privacy spent past `epsilon`, as `accountant`
/// counts it (at its delta). Every round of the history counts, aggregated or not, so this
/// never stops later than the rule's own "privacy.epsilon" says it should.
/// @throws configuration_error for an epsilon that is not positive.
[[nodiscard]] inline stopping_rule when_privacy_budget_spent(double epsilon, privacy::accountant accountant) {
  const auto rounds = accountant.rounds_within(epsilon);  // checks epsilon
  return stopping_rule([epsilon, rounds, accountant = std::move(accountant)](const history& so_far)
                           -> std::optional<std::string> {
    if (so_far.rounds.size() < rounds) return std::nullopt;
    const auto done = static_cast<std::uint64_t>(so_far.rounds.size());
    return "the privacy budget: round " + std::to_string(done + 1) + " would spend epsilon " +
           detail::number(accountant.epsilon(done + 1)) + " (budget " + detail::number(epsilon) + ", delta " +
           detail::number(accountant.delta()) + "); spent " + detail::number(accountant.epsilon(done)) + " in " +
           std::to_string(done) + " rounds";
  });
}

}  // namespace stop
}  // namespace flotilla
