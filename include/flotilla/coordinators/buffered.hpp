#pragma once
// The buffered asynchronous coordinator (FedBuff, Nguyen et al. 2022): up to `concurrency`
// learners train at once, a learner gets a new task as soon as it replies, each reply's update
// is folded into a buffer, and every `buffer_size` replies the buffer is applied to the global
// model, which then has a new version. Fast learners never wait for slow ones.
//
// A task carries the version it was made from in its round field. A reply trained from version
// v when the model is at version u is s = u - v versions stale: its update (its parameters less
// version v's) enters the buffer weighed by staleness_weight(s) times its examples, and the
// buffer's step is that weighted sum over the buffer's examples:
//   x <- x + server_learning_rate * m,  m <- server_momentum * m + sum_i w(s_i) e_i D_i / sum_i e_i.
// With constant weights, one version, a learning rate of 1 and no momentum, that is FedAvg.
// Version v's parameters are kept only while a task made from them is out: each task holds them.

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "flotilla/arithmetic.hpp"
#include "flotilla/concepts/transport.hpp"
#include "flotilla/detail/text.hpp"
#include "flotilla/errors.hpp"
#include "flotilla/messages.hpp"
#include "flotilla/random.hpp"
#include "flotilla/round/door.hpp"
#include "flotilla/round/history.hpp"
#include "flotilla/round/metric_reducers.hpp"
#include "flotilla/round/reply_collector.hpp"
#include "flotilla/round/snapshot.hpp"
#include "flotilla/round/stopping.hpp"
#include "flotilla/wire/codec.hpp"

namespace flotilla {

/// How much a reply counts given how many versions stale it is.
namespace staleness {
/// 1 / sqrt(1 + s): FedBuff's default.
[[nodiscard]] inline double inverse_sqrt(std::uint64_t s) { return 1 / std::sqrt(1 + double(s)); }
/// 1 whatever the staleness.
[[nodiscard]] inline double constant(std::uint64_t) { return 1; }
/// 1 / (1 + s)^a (FedAsync's polynomial weights). @throws configuration_error unless a >= 0.
[[nodiscard]] inline std::function<double(std::uint64_t)> polynomial(double a) {
  if (!(a >= 0) || !std::isfinite(a)) throw configuration_error("the polynomial staleness exponent must be non-negative");
  return [a](std::uint64_t s) { return std::pow(1 + double(s), -a); };
}
}  // namespace staleness

/// What a buffered coordinator keeps between updates beside its global parameters, version,
/// generator and history: the server momentum and how many tasks it has made (they seed the
/// learners' shuffling). A checkpoint holds it as a coordinator's rule state.
struct buffered_state {
  std::vector<double> momentum{};
  std::uint64_t tasks = 0;

  template <std::same_as<wire_writer> Writer>
  void save_state(Writer& out) const {
    out.write(tasks);
    out.write(static_cast<std::uint64_t>(momentum.size()));
    for (const double value : momentum) out.write(value);
  }
  template <std::same_as<wire_reader> Reader>
  void load_state(Reader& in) {
    tasks = in.template read<std::uint64_t>("tasks made");
    momentum.resize(in.read_count(in.limits().max_scalars, sizeof(double), "momentum count"));
    for (auto& value : momentum) value = in.template read<double>("momentum");
  }
};

/// The buffered coordinator's settings.
struct buffered_options {
  std::size_t concurrency = 10;  ///< C: learners training at once
  std::size_t buffer_size = 10;  ///< K: replies folded before each update of the global model
  double server_learning_rate = 1.0;
  double server_momentum = 0;    ///< in [0, 1); 0: no momentum
  std::function<double(std::uint64_t staleness)> staleness_weight = staleness::inverse_sqrt;
  std::uint64_t max_staleness = 100;  ///< replies staler than this are rejected with the reason
  /// True when learners reply with their update itself (delta_learner in round/learner.hpp): the
  /// coordinator then keeps no version of the model for a task that is out.
  bool learners_send_deltas = false;
  /// A learner that has not replied this long after its task is given up on, and its slot given
  /// to another (a reply after that is rejected).
  std::chrono::duration<double> task_timeout = std::chrono::minutes(10);
  std::uint64_t seed = 0;           ///< drives who gets the next task and learners' shuffling
  settings fit_settings{};          ///< sent to learners as fit_config::values
  std::int64_t max_examples_per_reply = 1'000'000'000;
  std::map<std::string, metric_reducer> metric_reducers{};
  /// Rejections recorded one by one per learner and update; the rest are counted in one entry.
  std::size_t max_rejections_per_learner = 8;

  /// @throws configuration_error naming the setting that cannot work.
  void validate() const {
    if (max_rejections_per_learner < 1) throw configuration_error("max_rejections_per_learner must be at least one");
    if (concurrency == 0) throw configuration_error("concurrency must be at least one learner");
    if (buffer_size == 0) throw configuration_error("buffer_size must be at least one reply");
    if (!(server_learning_rate > 0) || !std::isfinite(server_learning_rate))
      throw configuration_error("server_learning_rate must be positive");
    if (!(server_momentum >= 0 && server_momentum < 1)) throw configuration_error("server_momentum must be in [0, 1)");
    if (!staleness_weight) throw configuration_error("staleness_weight is empty");
    if (!(task_timeout.count() > 0)) throw configuration_error("task_timeout must be positive");
    if (max_examples_per_reply < 1) throw configuration_error("max_examples_per_reply must be at least one");
  }
};

/// @brief Runs FedBuff over transport `T`: one history record per update of the global model.
///
/// Each record's `round` is the version it made, `participants` the learners whose replies were
/// in the buffer (a learner may appear once per reply), `examples` their examples,
/// `fit_metrics` their metrics, and `central_metrics` "staleness.mean", "staleness.max" and
/// "staleness.<s>", how many replies were s versions stale. Rejections and learners given up on
/// are recorded in the record of the update during which they happened.
template <Transport T>
class buffered_coordinator {
 public:
  using parameters_type = typename T::parameters_type;
  using round_observer = std::function<void(const round_record&)>;

  buffered_coordinator(T& transport, parameters_type initial, buffered_options options = {})
      : transport_(transport),
        global_(std::make_shared<const parameters_type>(std::move(initial))),
        options_(validated(std::move(options))),
        engine_(options_.seed),
        sum_(global_->values().size(), 0.0),
        state_{.momentum = std::vector<double>(options_.server_momentum > 0 ? global_->values().size() : 0, 0.0)} {}

  /// Adds an observer called after every update of the global model.
  void on_round(round_observer observer) { observers_.push_back(std::move(observer)); }

  using rule_type = buffered_state;
  /// The state between updates, read in place: what a checkpoint saves (persistence/checkpoint.hpp).
  /// Tasks still out are not in it: a resumed run asks learners afresh, and the replies in an
  /// unfinished buffer are lost.
  [[nodiscard]] coordinator_snapshot<parameters_type, buffered_state> snapshot() const {
    return {version_, engine_, *global_, state_, history_};
  }
  /// Continues from a saved state. @throws layout_error, changing nothing, if its model's layout
  /// differs, and configuration_error if its momentum does not fit this model and settings.
  void restore(coordinator_state<parameters_type, buffered_state> state) {
    if (!state.global) throw configuration_error("a restored state needs global parameters");
    require_same_layout(*state.global, *global_, "the restored model", "this coordinator's model");
    if (state.rule.momentum.size() != state_.momentum.size())
      throw configuration_error("the restored server momentum holds " + std::to_string(state.rule.momentum.size()) +
                                " values; this coordinator keeps " + std::to_string(state_.momentum.size()));
    version_ = state.round;
    engine_ = state.engine;
    global_ = std::move(state.global);
    state_ = std::move(state.rule);
    history_ = std::move(state.history);
    out_.clear();
    std::fill(sum_.begin(), sum_.end(), 0.0);
    examples_ = 0;
  }
  [[nodiscard]] const buffered_state& rule() const { return state_; }

  /// Updates the global model until `stop` fires (checked before each update); its reason is
  /// recorded. Learners still training then are not waited for: if the run goes on, their
  /// replies count then, as staler ones.
  const flotilla::history& run(const stopping_rule& stop) {
    if (!started_) started_ = deadline_clock::now();
    return run_until(stop, history_, [this] { update(); });
  }

  /// Gathers one buffer of replies and applies it; returns its record.
  const round_record& update();

  [[nodiscard]] const parameters_type& global() const { return *global_; }
  [[nodiscard]] std::uint64_t version() const { return version_; }
  [[nodiscard]] const flotilla::history& history() const { return history_; }
  [[nodiscard]] std::size_t in_flight() const { return out_.size(); }

 private:
  struct outstanding {
    reply_door<parameters_type> door;
    std::shared_ptr<const parameters_type> from;  // the version it was trained from (null: replies are deltas)
    deadline_clock::time_point deadline;
  };

  static buffered_options validated(buffered_options options) {
    options.validate();
    return options;
  }

  // Gives tasks to idle learners until `concurrency` are at work or none is idle.
  void fill() {
    while (out_.size() < options_.concurrency) {
      std::vector<learner_id> idle;
      for (const auto id : transport_.available())
        if (!out_.contains(id)) idle.push_back(id);
      if (idle.empty()) return;
      const auto learner = idle[uniform_below(engine_, idle.size())];
      task<parameters_type> work{.kind = task_kind::fit, .round = version_, .parameters = global_,
                                 .config = {.round = version_, .seed = mix_seed(options_.seed, ++state_.tasks),
                                            .values = options_.fit_settings}};
      out_.emplace(learner, outstanding{reply_door<parameters_type>(work, std::span(&learner, 1), reply_parameters::required,
                                                                    options_.max_examples_per_reply),
                                        options_.learners_send_deltas ? nullptr : global_,
                                        deadline_clock::now() + timeout()});
      transport_.send(work, std::span(&learner, 1));
    }
  }

  deadline_clock::duration timeout() const {
    return std::chrono::duration_cast<deadline_clock::duration>(options_.task_timeout);
  }

  // One message: a reply folded into the buffer, or the reason it was not.
  void take(message<parameters_type>& next, round_record& record, rejection_log& log,
            std::map<std::string, std::vector<metric_sample>>& samples, std::vector<std::uint64_t>& stalenesses) {
    if (auto* failed = std::get_if<failure>(&next)) {
      if (const auto found = out_.find(failed->learner);
          found != out_.end() && found->second.door.answers(failed->learner, failed->kind, failed->round))
        out_.erase(found);
      log.record(failed->learner, failed->kind, failed->round, std::move(failed->reason));
      return;
    }
    auto& answer = std::get<reply<parameters_type>>(next);
    const auto found = out_.find(answer.learner);
    if (found == out_.end()) {
      log.record(answer.learner, answer.kind, answer.round, "reply matches no task out (late, or never asked)");
      return;
    }
    auto problem = found->second.door.admit(answer);
    const auto from = found->second.from;
    const bool released = found->second.door.pending().empty();
    if (released) out_.erase(found);
    if (problem) return log.record(answer.learner, answer.kind, answer.round, std::move(*problem));
    const auto stale = version_ - answer.round;
    if (stale > options_.max_staleness)
      return log.record(answer.learner, answer.kind, answer.round,
                        "reply is " + std::to_string(stale) + " versions stale; the limit is " +
                            std::to_string(options_.max_staleness) + " (max_staleness)");
    const double weight = options_.staleness_weight(stale) * double(answer.result.examples);
    const auto trained = answer.parameters->values();
    if (from) {
      const auto base = from->values();
      for (std::size_t i = 0; i < sum_.size(); ++i) sum_[i] += weight * (double(trained[i]) - double(base[i]));
    } else {  // the reply is the update itself
      for (std::size_t i = 0; i < sum_.size(); ++i) sum_[i] += weight * double(trained[i]);
    }
    examples_ += answer.result.examples;
    record.participants.push_back(answer.learner);
    record.examples += answer.result.examples;
    for (const auto& [name, value] : answer.result.metrics) samples[name].push_back({value, answer.result.examples});
    stalenesses.push_back(stale);
  }

  // Learners past their deadline free their slots.
  void expire(rejection_log& log) {
    const auto now = deadline_clock::now();
    for (auto at = out_.begin(); at != out_.end();) {
      if (at->second.deadline > now) {
        ++at;
        continue;
      }
      log.record_no_reply(at->first, task_kind::fit, at->second.door.round(),
                          "no reply within the task timeout of " + detail::number(options_.task_timeout.count()) + " s");
      at = out_.erase(at);
    }
  }

  void apply(round_record& record) {
    auto next = *global_;
    auto values = next.values();
    const double scale = 1 / double(examples_);
    for (std::size_t i = 0; i < sum_.size(); ++i) {
      double step = sum_[i] * scale;
      if (!state_.momentum.empty()) step = state_.momentum[i] = options_.server_momentum * state_.momentum[i] + step;
      values[i] = static_cast<typename parameters_type::scalar_type>(double(values[i]) + options_.server_learning_rate * step);
    }
    const auto bad = first_non_finite(next);
    if (bad != values.size()) {
      record.note = "the update holds a non-finite value at parameter index " + std::to_string(bad) +
                    "; global parameters kept";
    } else {
      global_ = std::make_shared<const parameters_type>(std::move(next));
      record.status = round_status::aggregated;
    }
    ++version_;
    std::fill(sum_.begin(), sum_.end(), 0.0);
    examples_ = 0;
  }

  T& transport_;
  std::shared_ptr<const parameters_type> global_;
  buffered_options options_;
  random_engine engine_;
  std::vector<double> sum_;       // the buffer: sum of weighted updates
  buffered_state state_;          // the momentum (empty without it) and the tasks made
  std::int64_t examples_ = 0;     // examples behind the buffer
  std::uint64_t version_ = 0;
  std::map<learner_id, outstanding> out_;
  flotilla::history history_;
  std::optional<deadline_clock::time_point> started_;
  std::vector<round_observer> observers_;
};

template <Transport T>
const round_record& buffered_coordinator<T>::update() {
  if (!started_) started_ = deadline_clock::now();
  const auto start = deadline_clock::now();
  round_record record;
  record.round = version_ + 1;
  rejection_log log(record.rejections, options_.max_rejections_per_learner);
  std::map<std::string, std::vector<metric_sample>> samples;
  std::vector<std::uint64_t> stalenesses;
  while (stalenesses.size() < options_.buffer_size) {
    fill();
    if (out_.empty()) {  // no learner available at all: wait a little for one
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    auto earliest = out_.begin()->second.deadline;
    for (const auto& [id, task] : out_) earliest = std::min(earliest, task.deadline);
    if (auto next = transport_.receive(earliest)) take(*next, record, log, samples, stalenesses);
    expire(log);
  }
  apply(record);
  std::ranges::sort(record.participants);
  record.selected = record.participants;
  for (const auto& [name, values] : samples) {
    const auto custom = options_.metric_reducers.find(name);
    record.fit_metrics[name] = custom != options_.metric_reducers.end() ? custom->second(values) : reduce::weighted_mean(values);
  }
  double total = 0;
  std::uint64_t most = 0;
  for (const auto s : stalenesses) {
    total += double(s);
    most = std::max(most, s);
    record.central_metrics["staleness." + std::to_string(s)] += 1;
  }
  record.central_metrics["staleness.mean"] = total / double(stalenesses.size());
  record.central_metrics["staleness.max"] = double(most);
  const auto now = deadline_clock::now();
  record.fit_seconds = record.round_seconds = std::chrono::duration<double>(now - start).count();
  record.elapsed_seconds = std::chrono::duration<double>(now - *started_).count();
  history_.rounds.push_back(std::move(record));
  for (const auto& observer : observers_) observer(history_.rounds.back());
  return history_.rounds.back();
}

}  // namespace flotilla
