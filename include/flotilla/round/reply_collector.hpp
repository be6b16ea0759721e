#pragma once
// Gathering one exchange's replies: everything that comes back for a task goes through the door
// once; admitted replies are handed on in batches as they arrive, the rest recorded with a
// reason, until every asked learner has answered or the deadline passes.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <map>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "flotilla/concepts/transport.hpp"
#include "flotilla/detail/text.hpp"
#include "flotilla/messages.hpp"
#include "flotilla/round/door.hpp"
#include "flotilla/round/history.hpp"
#include "flotilla/round/metric_reducers.hpp"

namespace flotilla {

/// @brief Where a round's rejections go: each one with its reason, up to a number per learner,
/// then one "and N more" entry, so a learner flooding bad messages cannot grow the history
/// without bound.
class rejection_log {
 public:
  rejection_log(std::vector<rejection>& into, std::size_t per_learner) : into_(into), per_learner_(per_learner) {}

  void record(learner_id learner, task_kind kind, std::uint64_t round, std::string reason) {
    const auto count = ++counts_[learner];
    if (count <= per_learner_) {
      into_.push_back({learner, kind, round, std::move(reason)});
      return;
    }
    auto more = "and " + std::to_string(count - per_learner_) +
                " more messages from this learner rejected, not recorded one by one";
    if (auto found = summary_at_.find(learner); found != summary_at_.end()) {
      into_[found->second].reason = std::move(more);
    } else {
      summary_at_[learner] = into_.size();
      into_.push_back({learner, kind, round, std::move(more)});
    }
  }

  /// A learner that never answered: recorded outside the cap, as it happens once per exchange.
  void record_no_reply(learner_id learner, task_kind kind, std::uint64_t round, std::string reason) {
    into_.push_back({learner, kind, round, std::move(reason)});
  }

 private:
  std::vector<rejection>& into_;
  std::size_t per_learner_;
  std::map<learner_id, std::size_t> counts_;     // rejections per learner so far
  std::map<learner_id, std::size_t> summary_at_;  // where a learner's "and N more" entry is
};

/// What an exchange yielded: who was admitted (sorted), their metrics combined, their examples.
struct exchange_outcome {
  std::vector<learner_id> accepted{};
  flotilla::metrics metrics{};
  std::int64_t examples = 0;
};

/// How one exchange waits and combines.
struct exchange_options {
  std::chrono::duration<double> timeout = std::chrono::minutes(10);  ///< from when collecting starts
  /// How a metric is combined across replies, by name; any other is the mean weighted by examples.
  std::map<std::string, metric_reducer> metric_reducers{};
};

/// One admitted reply as the round records it: who, on how many examples, and its metrics.
struct admitted_reply {
  learner_id learner{};
  std::int64_t examples = 0;
  flotilla::metrics metrics{};
};

/// @brief What one exchange has taken in so far: every message goes through the door once;
/// failures and rejected replies go to the log; admitted replies wait in `batch()` for the rule,
/// and are remembered (learner, examples, metrics) until `finish` combines them.
template <ParameterSet P>
class reply_tally {
 public:
  reply_tally(reply_door<P>& door, rejection_log& log) : door_(door), log_(log) {}

  void take(message<P>& next) {
    if (auto* failed = std::get_if<failure>(&next)) {
      if (door_.answers(failed->learner, failed->kind, failed->round)) door_.release(failed->learner);
      log_.record(failed->learner, failed->kind, failed->round, std::move(failed->reason));
      return;
    }
    auto& answer = std::get<reply<P>>(next);
    if (auto problem = door_.admit(answer)) {
      log_.record(answer.learner, answer.kind, answer.round, std::move(*problem));
      return;
    }
    admitted_.push_back({answer.learner, answer.result.examples, answer.result.metrics});
    batch_.push_back(std::move(answer));
  }

  /// A reply admitted and folded elsewhere (see reply_door::admit_checked); the reason, with
  /// nothing counted, if this door cannot admit it.
  [[nodiscard]] std::optional<std::string> take_checked(admitted_reply answer) {
    if (auto problem = door_.admit_checked(answer.learner, answer.examples)) return problem;
    admitted_.push_back(std::move(answer));
    return std::nullopt;
  }

  /// A rejection recorded elsewhere for (learner, kind, round): releases the learner when it
  /// answers this task, as a failure would.
  void release(learner_id learner, task_kind kind, std::uint64_t round) {
    if (door_.answers(learner, kind, round)) door_.release(learner);
  }

  /// Admitted replies not yet handed to the rule.
  [[nodiscard]] std::vector<reply<P>>& batch() { return batch_; }
  [[nodiscard]] const std::vector<admitted_reply>& admitted() const { return admitted_; }

  /// Records the learners still pending as not having replied within `options.timeout`, and
  /// combines the admitted replies: who (sorted), their metrics, their examples.
  exchange_outcome finish(const exchange_options& options) {
    for (auto learner : door_.pending())
      log_.record_no_reply(learner, door_.kind(), door_.round(),
                           "no reply within the phase deadline of " + detail::number(options.timeout.count()) + " s");
    exchange_outcome outcome;
    // In learner order, not arrival order: the combined metrics' bits then do not depend on timing.
    std::ranges::sort(admitted_, {}, &admitted_reply::learner);
    std::map<std::string, std::vector<metric_sample>> samples;  // a value per learner and metric
    for (const auto& answer : admitted_) {
      outcome.accepted.push_back(answer.learner);
      for (const auto& [name, value] : answer.metrics) samples[name].push_back({value, answer.examples});
    }
    outcome.examples = door_.examples();
    for (const auto& [name, values] : samples) {
      const auto custom = options.metric_reducers.find(name);
      outcome.metrics[name] = custom != options.metric_reducers.end() ? custom->second(values) : reduce::weighted_mean(values);
    }
    return outcome;
  }

 private:
  reply_door<P>& door_;
  rejection_log& log_;
  std::vector<reply<P>> batch_;
  std::vector<admitted_reply> admitted_;
};

/// At most this many admitted replies are folded in one pass: folding them together reads the
/// rule's state once.
inline constexpr std::size_t largest_fold_batch = 16;

/// @brief Receives from `transport` until the door has no learner pending or the timeout passes.
///
/// Admitted replies are handed to `consume(std::span<reply<P>>)` as soon as they arrive,
/// together with any others already waiting (up to largest_fold_batch), and then dropped;
/// failures and rejected replies go to `log`. Learners still pending at the deadline are
/// recorded as not having replied.
template <Transport T, class Consume>
exchange_outcome collect_replies(T& transport, reply_door<typename T::parameters_type>& door,
                                 const exchange_options& options, rejection_log& log, Consume&& consume) {
  reply_tally<typename T::parameters_type> tally(door, log);
  auto& batch = tally.batch();
  const auto deadline = deadline_clock::now() + std::chrono::duration_cast<deadline_clock::duration>(options.timeout);
  while (!door.pending().empty()) {
    auto next = transport.receive(deadline);
    if (!next) break;
    tally.take(*next);
    while (batch.size() < largest_fold_batch && !door.pending().empty() &&
           (next = transport.receive(deadline_clock::now())))
      tally.take(*next);
    if (!batch.empty()) consume(std::span(batch));
    batch.clear();
  }
  return tally.finish(options);
}

/// @brief One request/response stage: sends `work` to `asked` and collects the replies through
/// a door of its own. The piece every phase is built from, and what a round with stages of its
/// own (custom_task_kind) uses directly.
template <Transport T, class Consume>
exchange_outcome exchange(T& transport, const task<typename T::parameters_type>& work,
                          std::span<const learner_id> asked, reply_parameters expected, std::int64_t max_examples,
                          const exchange_options& options, rejection_log& log, Consume&& consume) {
  reply_door<typename T::parameters_type> door(work, asked, expected, max_examples);
  transport.send(work, asked);
  return collect_replies(transport, door, options, log, consume);
}

}  // namespace flotilla
