#pragma once
// The coordinator runs rounds over any Transport: select learners, send the global parameters,
// fold each valid reply into the aggregation rule as it arrives, apply, evaluate, record, and
// decide whether to stop. It never trains.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "flotilla/aggregators/mean.hpp"
#include "flotilla/arithmetic.hpp"
#include "flotilla/checkpoint.hpp"
#include "flotilla/concepts/aggregator.hpp"
#include "flotilla/concepts/transport.hpp"
#include "flotilla/errors.hpp"
#include "flotilla/history.hpp"
#include "flotilla/messages.hpp"
#include "flotilla/metric_reducers.hpp"
#include "flotilla/random.hpp"
#include "flotilla/selection.hpp"
#include "flotilla/stopping.hpp"

namespace flotilla {

struct coordinator_options {
  selection_options selection{};       ///< who is asked to fit each round
  std::size_t quorum = 1;              ///< accepted fit replies needed to aggregate a round
  std::chrono::duration<double> round_timeout = std::chrono::minutes(10);  ///< per phase
  std::chrono::duration<double> wait_for_learners{0};  ///< how long to wait for enough learners
  double evaluation_fraction = 0;      ///< share of learners asked to evaluate; 0 turns it off
  std::uint64_t seed = 0;              ///< drives selection and learners' shuffling
  std::map<std::string, double> fit_settings;  ///< sent to learners as fit_config::values
  /// Settings that change with the round, e.g. a decaying learning rate: called with each
  /// round's number, its values override `fit_settings` of the same name. Unlike the rest of
  /// these options it is not in a checkpoint; pass the same schedule when resuming.
  std::function<std::map<std::string, double>(std::uint64_t round)> fit_schedule;
  /// How a metric is combined across replies, by name; any other metric is the mean weighted
  /// by examples (see metric_reducers.hpp).
  std::map<std::string, metric_reducer> metric_reducers;
  /// When set, the coordinator's state is written here after every round (see save_checkpoint).
  std::filesystem::path checkpoint_path;
  /// The most examples one reply may claim. Counts are the learners' own word and weigh their
  /// updates in FedAvg, so a reply above this is rejected (robust rules ignore counts anyway).
  std::int64_t max_examples_per_reply = 1'000'000'000;
  /// Rejections recorded one by one per learner and round; the rest are counted in one entry,
  /// so a learner flooding bad messages cannot grow the history without bound.
  std::size_t max_rejections_per_learner = 8;

  /// @throws configuration_error naming the setting that cannot work.
  void validate() const {
    selection.validate();
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
template <Transport T, Aggregator<typename T::parameters_type> Rule = weighted_mean<typename T::parameters_type>>
class coordinator {
 public:
  using parameters_type = typename T::parameters_type;
  /// Centralized evaluation: the coordinator's own metrics for new global parameters.
  using evaluator = std::function<metrics(const parameters_type&)>;
  /// Called after every round, e.g. to print progress.
  using round_observer = std::function<void(const round_record&)>;

  coordinator(T& transport, parameters_type initial, coordinator_options options = {}, Rule rule = {})
      : transport_(transport),
        global_(std::make_shared<const parameters_type>(std::move(initial))),
        options_(validated(std::move(options))),
        rule_(std::move(rule)),
        engine_(options_.seed) {}

  void evaluate_centrally(evaluator evaluate) { evaluator_ = std::move(evaluate); }
  void on_round(round_observer observer) { observer_ = std::move(observer); }

  /// Runs rounds until `stop` fires; its reason is recorded in the history.
  const flotilla::history& run(const stopping_rule& stop) {
    if (!started_) started_ = deadline_clock::now();
    for (;;) {
      if (auto reason = stop(history_)) {
        history_.stop_reason = *reason;
        return history_;
      }
      run_round();
    }
  }

  /// Runs one round and returns its record (also appended to the history).
  const round_record& run_round() {
    if (!started_) started_ = deadline_clock::now();
    wait_for_learners();  // before the round's clock starts: waiting is not the round's work
    const auto round_start = deadline_clock::now();
    round_record record;
    record.round = ++round_;
    record.selected = select_learners(transport_.available(), options_.selection, engine_);
    if (record.selected.size() < options_.quorum) {
      record.note = "only " + std::to_string(record.selected.size()) + " learners available; the quorum is " +
                    std::to_string(options_.quorum);
    } else {
      fit_phase(record);
      if (record.participants.size() >= options_.quorum) {
        auto result = rule_.result();
        const auto bad = first_non_finite(result);
        if (bad == result.values().size()) {
          global_ = std::make_shared<const parameters_type>(std::move(result));
          record.status = round_status::aggregated;
          evaluate_phase(record);
        } else {  // finite updates can still overflow: keep a model the next round can use
          record.note = "the aggregate holds a non-finite value (" + detail::number(double(result.values()[bad])) +
                        ") at parameter index " + std::to_string(bad) + "; global parameters kept";
        }
      } else {
        record.note = "quorum not met: " + std::to_string(record.participants.size()) + " accepted replies, " +
                      std::to_string(options_.quorum) + " required; global parameters kept";
      }
    }
    const auto now = deadline_clock::now();
    record.round_seconds = seconds(now - round_start);
    record.elapsed_seconds = seconds(now - *started_);
    history_.rounds.push_back(std::move(record));
    if constexpr (requires { wire_codec<parameters_type>{}; })
      if (!options_.checkpoint_path.empty()) save_checkpoint(options_.checkpoint_path);
    if (observer_) observer_(history_.rounds.back());
    return history_.rounds.back();
  }

  /// Writes everything needed to continue the run (round number, selection generator, global
  /// parameters, the rule's state between rounds, history) to `path`, atomically. Needs a
  /// wire_codec for the parameters. @throws std::system_error if the file cannot be written.
  void save_checkpoint(const std::filesystem::path& path) const
    requires requires { wire_codec<parameters_type>{}; }
  {
    byte_buffer bytes;
    wire_writer out(bytes);
    detail::write_envelope(out, wire_content::checkpoint);
    out.write(round_);
    std::ostringstream engine;
    engine << engine_;
    out.write_string(engine.str());
    wire_codec<parameters_type>::write(out, *global_);
    detail::write_history(out, history_);
    out.write(static_cast<std::uint8_t>(CheckpointableRule<Rule> ? 1 : 0));
    if constexpr (CheckpointableRule<Rule>) rule_.save_state(out);
    write_file_atomically(path, bytes);
  }

  /// Continues from a checkpoint written by save_checkpoint with the same kind of rule and
  /// model: a run interrupted after round k and resumed here ends exactly as an uninterrupted
  /// one would, given deterministic learners and reply order. On any error nothing changes.
  /// @throws std::system_error if the file cannot be read, decode_error if it is not a valid
  /// checkpoint, layout_error if its model's layout differs from this coordinator's.
  void load_checkpoint(const std::filesystem::path& path)
    requires requires { wire_codec<parameters_type>{}; } && std::copy_constructible<Rule>
  {
    const auto bytes = read_file(path);
    try {
      detail::decode_message(bytes, checkpoint_limits, wire_content::checkpoint, [&](wire_reader& in) {
        const auto round = in.read<std::uint64_t>("round");
        std::istringstream engine_text(in.read_string("selection generator"));
        random_engine engine;
        if (!(engine_text >> engine)) throw decode_error("the selection generator's state does not parse");
        auto global = std::make_shared<const parameters_type>(wire_codec<parameters_type>::read(in));
        require_same_layout(*global, *global_, "the checkpoint's model", "this coordinator's model");
        auto past = detail::read_history(in);
        Rule rule = rule_;
        const bool has_rule_state = in.read<std::uint8_t>("rule state flag") != 0;
        if (has_rule_state != CheckpointableRule<Rule>)
          throw decode_error(has_rule_state ? "it holds the state of a rule this coordinator's rule does not keep"
                                            : "it holds no state for this coordinator's rule");
        if constexpr (CheckpointableRule<Rule>) rule.load_state(in);
        in.expect_end();
        round_ = round;
        engine_ = engine;
        global_ = std::move(global);
        history_ = std::move(past);
        rule_ = std::move(rule);
        return 0;
      });
    } catch (const decode_error& error) {
      throw decode_error("checkpoint " + path.string() + ": " + error.what());
    }
  }

  [[nodiscard]] const parameters_type& global() const { return *global_; }
  [[nodiscard]] const flotilla::history& history() const { return history_; }
  [[nodiscard]] const Rule& rule() const { return rule_; }
  [[nodiscard]] std::uint64_t rounds_run() const { return round_; }

 private:
  static coordinator_options validated(coordinator_options options) {
    options.validate();
    return options;
  }
  static double seconds(deadline_clock::duration d) { return std::chrono::duration<double>(d).count(); }

  void wait_for_learners() {
    const auto needed = std::max(options_.quorum, options_.selection.minimum);
    const auto until = deadline_clock::now() +
                       std::chrono::duration_cast<deadline_clock::duration>(options_.wait_for_learners);
    while (transport_.available().size() < needed && deadline_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }

  task<parameters_type> make_task(task_kind kind) const {
    fit_config config{.round = round_, .seed = mix_seed(options_.seed, round_), .values = options_.fit_settings};
    if (kind == task_kind::fit && options_.fit_schedule)
      for (auto& [name, value] : options_.fit_schedule(round_)) config.values.insert_or_assign(name, value);
    return task<parameters_type>{.kind = kind, .round = round_, .parameters = global_, .config = std::move(config)};
  }

  void fit_phase(round_record& record) {
    const auto start = deadline_clock::now();
    rule_.start(*global_);
    transport_.send(make_task(task_kind::fit), record.selected);
    collect(task_kind::fit, record.selected, record, record.participants, record.fit_metrics,
            [&](std::span<reply<parameters_type>> replies) { fold(replies); });
    record.fit_seconds = seconds(deadline_clock::now() - start);
  }

  void evaluate_phase(round_record& record) {
    const auto start = deadline_clock::now();
    if (evaluator_) record.central_metrics = evaluator_(*global_);
    if (options_.evaluation_fraction > 0) {
      const auto asked = select_learners(transport_.available(), {.fraction = options_.evaluation_fraction, .minimum = 1},
                                         engine_);
      transport_.send(make_task(task_kind::evaluate), asked);
      collect(task_kind::evaluate, asked, record, record.evaluated, record.federated_metrics,
              [](std::span<reply<parameters_type>>) {});
    }
    record.evaluate_seconds = seconds(deadline_clock::now() - start);
  }

  /// Receives until every asked learner has answered or the phase deadline passes. Valid
  /// replies are handed to `use` as soon as they arrive, together with any others already
  /// waiting, and then dropped; everything else is recorded with a reason.
  template <class Use>
  void collect(task_kind kind, const std::vector<learner_id>& asked, round_record& record,
               std::vector<learner_id>& accepted, metrics& merged, Use use) {
    constexpr std::size_t largest_batch = 16;  // replies already in memory; folding them together reads the state once
    std::set<learner_id> pending(asked.begin(), asked.end());
    std::map<std::string, std::vector<metric_sample>> samples;  // a double per learner and metric
    std::vector<reply<parameters_type>> batch;
    const auto deadline = deadline_clock::now() +
                          std::chrono::duration_cast<deadline_clock::duration>(options_.round_timeout);
    std::map<learner_id, std::size_t> rejected;    // rejections per learner in this phase
    std::map<learner_id, std::size_t> summary_at;  // where a learner's "and N more" entry is
    const auto note = [&](learner_id learner, task_kind message_kind, std::uint64_t round, std::string reason) {
      const auto count = ++rejected[learner];
      if (count <= options_.max_rejections_per_learner) {
        record.rejections.push_back({learner, message_kind, round, std::move(reason)});
        return;
      }
      auto more = "and " + std::to_string(count - options_.max_rejections_per_learner) +
                  " more messages from this learner rejected, not recorded one by one";
      if (auto found = summary_at.find(learner); found != summary_at.end()) {
        record.rejections[found->second].reason = std::move(more);
      } else {
        summary_at[learner] = record.rejections.size();
        record.rejections.push_back({learner, message_kind, round, std::move(more)});
      }
    };
    const auto reject = [&](learner_id learner, task_kind message_kind, std::uint64_t round, std::string reason) {
      if (round == round_ && message_kind == kind) pending.erase(learner);
      note(learner, message_kind, round, std::move(reason));
    };
    const auto take = [&](message<parameters_type>& next) {
      if (auto* failed = std::get_if<failure>(&next)) {
        reject(failed->learner, failed->kind, failed->round, failed->reason);
        return;
      }
      auto& answer = std::get<reply<parameters_type>>(next);
      if (auto problem = check(answer, kind, pending)) {
        // A stray reply (late, duplicate, unasked) must not release a learner still pending.
        const bool stray = answer.round != round_ || answer.kind != kind || !pending.contains(answer.learner);
        if (stray) note(answer.learner, answer.kind, answer.round, std::move(*problem));
        else reject(answer.learner, answer.kind, answer.round, std::move(*problem));
        return;
      }
      if (kind == task_kind::fit && record.examples > std::numeric_limits<std::int64_t>::max() - answer.result.examples) {
        reject(answer.learner, answer.kind, answer.round, "the round's example count would overflow");
        return;
      }
      pending.erase(answer.learner);
      accepted.push_back(answer.learner);
      if (kind == task_kind::fit) record.examples += answer.result.examples;
      for (const auto& [name, value] : answer.result.metrics) samples[name].push_back({value, answer.result.examples});
      batch.push_back(std::move(answer));
    };
    while (!pending.empty()) {
      auto next = transport_.receive(deadline);
      if (!next) break;
      take(*next);
      while (batch.size() < largest_batch && !pending.empty() && (next = transport_.receive(deadline_clock::now())))
        take(*next);
      if (!batch.empty()) use(std::span(batch));
      batch.clear();
    }
    for (auto learner : pending)
      record.rejections.push_back({learner, kind, round_,
                                   "no reply within the phase deadline of " +
                                       detail::number(options_.round_timeout.count()) + " s"});
    std::ranges::sort(accepted);
    for (const auto& [name, values] : samples) {
      const auto custom = options_.metric_reducers.find(name);
      merged[name] = custom != options_.metric_reducers.end() ? custom->second(values) : reduce::weighted_mean(values);
    }
  }

  /// Folds fit replies into the rule: in one pass when the rule can take a batch.
  void fold(std::span<reply<parameters_type>> replies) {
    if constexpr (BatchAggregator<Rule, parameters_type>) {
      std::vector<weighted_update<parameters_type>> updates;
      updates.reserve(replies.size());
      for (const auto& answer : replies) updates.push_back({&*answer.parameters, answer.result.examples});
      rule_.accept_batch(std::span<const weighted_update<parameters_type>>(updates));
    } else {
      for (const auto& answer : replies) rule_.accept(*answer.parameters, answer.result.examples);
    }
  }

  /// The reason a reply cannot be used, or nothing when it is valid ("validate at the door").
  std::optional<std::string> check(const reply<parameters_type>& answer, task_kind kind,
                                   const std::set<learner_id>& pending) const {
    if (answer.round != round_)
      return std::string(to_string(answer.kind)) + " reply belongs to round " + std::to_string(answer.round) +
             "; the current round is " + std::to_string(round_);
    if (answer.kind != kind)
      return std::string(to_string(answer.kind)) + " reply arrived during the " + to_string(kind) + " phase";
    if (!pending.contains(answer.learner))
      return "learner was not asked for this task or has already answered it";
    if (answer.result.examples <= 0)
      return "reply claims " + std::to_string(answer.result.examples) + " examples; at least one is required";
    if (answer.result.examples > options_.max_examples_per_reply)
      return "reply claims " + std::to_string(answer.result.examples) + " examples; the limit is " +
             std::to_string(options_.max_examples_per_reply) + " (max_examples_per_reply)";
    for (const auto& [name, value] : answer.result.metrics)
      if (!std::isfinite(value)) return "metric '" + name + "' is " + detail::number(value);
    if (kind == task_kind::evaluate) return std::nullopt;
    if (!answer.parameters) return "fit reply carries no parameters";
    try {
      require_same_layout(*answer.parameters, *global_);
    } catch (const layout_error& error) {
      return error.what();
    }
    const auto bad = first_non_finite(*answer.parameters);
    if (bad != answer.parameters->values().size())
      return "update holds a non-finite value (" + detail::number(double(answer.parameters->values()[bad])) +
             ") at parameter index " + std::to_string(bad);
    return std::nullopt;
  }

  T& transport_;
  std::shared_ptr<const parameters_type> global_;
  coordinator_options options_;
  Rule rule_;
  random_engine engine_;
  std::uint64_t round_ = 0;
  flotilla::history history_;
  std::optional<deadline_clock::time_point> started_;
  evaluator evaluator_;
  round_observer observer_;
};

}  // namespace flotilla
