#pragma once
// A learner that takes part in secure rounds: it wraps any Learner, answers the four stages
// (messages.hpp) with a learner_session of its own, and passes fit and evaluate tasks through,
// so the same process serves plain and secure federations. It trains in the masked-input stage,
// and what leaves it then is its update, masked: never its parameters.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "flotilla/algorithms/privacy/openssl_random.hpp"
#include "flotilla/algorithms/secure_aggregation/learner.hpp"
#include "flotilla/algorithms/secure_aggregation/messages.hpp"
#include "flotilla/concepts/learner.hpp"
#include "flotilla/errors.hpp"
#include "flotilla/messages.hpp"

namespace flotilla::secure_aggregation {

/// What a learner lets an aggregator ask of it in a secure round.
struct secure_learner_options {
  /// The most neighbours a round may give it: each costs a key agreement, a sealed share
  /// message and a mask expansion.
  std::size_t max_neighbours = 4096;
};

/// @brief `L`, able to take part in secure rounds.
///
/// One round's secrets live in its session, from the advertise-keys stage to the unmasking
/// stage; they are wiped when the round ends, when any stage fails, and when the learner is
/// next asked anything (a round the aggregator aborted sends no further stage).
template <Learner L>
class secure_learner {
 public:
  using parameters_type = typename L::parameters_type;

  explicit secure_learner(L inner, secure_learner_options options = {}) : inner_(std::move(inner)), options_(options) {}

  [[nodiscard]] learner_id id() const { return inner_.id(); }
  [[nodiscard]] const L& inner() const { return inner_; }
  [[nodiscard]] L& inner() { return inner_; }
  [[nodiscard]] const settings& properties() const
    requires requires(const L& l) { { l.properties() } -> std::convertible_to<const settings&>; }
  {
    return inner_.properties();
  }
  /// Messages the current or last round's session set aside, with the reason.
  [[nodiscard]] const std::vector<std::string>& rejections() const { return rejections_; }

  /// @throws task_error (or another error of Flotilla's) when a stage cannot be done; the
  ///   round's secrets are gone by then.
  reply<parameters_type> handle(const task<parameters_type>& work) {
    if (!is_stage(work.kind)) {  // a secure round is over once anything else is asked
      end_session();
      return inner_.handle(work);
    }
    try {
      return stage(work);
    } catch (...) {
      end_session();
      throw;
    }
  }

 private:
  reply<parameters_type> stage(const task<parameters_type>& work) {
    reply<parameters_type> answer{.learner = id(), .kind = work.kind, .round = work.round, .result = {.examples = 1}};
    if (work.kind == advertise_keys_kind) {
      end_session();
      auto setup = decode_round_setup(work.payload, options_.max_neighbours);
      if (setup.round != work.round)
        throw task_error("a secure round's setup names round " + std::to_string(setup.round) + " in a task of round " +
                         std::to_string(work.round));
      session_.emplace(std::move(setup));
      answer.payload = encode(session_->advertise());
      return answer;
    }
    auto& session = current(work);
    const auto neighbours = session.setup().neighbours.size();
    if (work.kind == share_keys_kind) {
      const auto keys = decode_key_list(work.payload, neighbours);
      answer.payload = encode(std::span<const sealed_shares>(session.share_keys(keys)));
    } else if (work.kind == masked_input_kind) {
      const auto received = decode_share_list(work.payload, neighbours);
      const auto update = train(work, answer.result);
      answer.payload = encode(session.mask(std::span<const double>(update), received));
      rejections_ = session.rejections();
    } else {  // unmasking, the last stage
      answer.payload = encode(session.unmask(decode_unmask_request(work.payload, neighbours)));
      end_session();
    }
    return answer;
  }

  learner_session& current(const task<parameters_type>& work) {
    if (!session_ || session_->setup().round != work.round)
      throw task_error(to_string(work.kind) + " task for round " + std::to_string(work.round) +
                       ", but this learner holds no secure session for that round");
    return *session_;
  }

  // The fit itself, then the vector to mask: the delta from the global parameters, clipped to
  // the setup's L2 bound, times the capped weight, and the weight last.
  std::vector<double> train(const task<parameters_type>& work, local_result& result) {
    if (!work.parameters) throw task_error("a masked-input task carries no global parameters");
    const auto& setup = session_->setup();
    const auto& encoding = setup.encoding;
    const auto global = work.parameters->values();
    const std::size_t expected = global.size() + (encoding.max_weight > 0 ? 1 : 0);
    if (setup.values != expected)
      throw task_error("the secure round expects " + std::to_string(setup.values) + " values; this model gives " +
                       std::to_string(expected));
    task<parameters_type> fit{.kind = task_kind::fit, .round = work.round, .parameters = work.parameters,
                              .config = work.config};
    auto trained = inner_.handle(fit);
    if (!trained.parameters || trained.parameters->values().size() != global.size())
      throw task_error("the learner's fit returned parameters of another size");
    const auto values = trained.parameters->values();
    std::vector<double> vector(expected);
    double squares = 0;
    for (std::size_t i = 0; i < global.size(); ++i) {
      vector[i] = double(values[i]) - double(global[i]);
      squares += vector[i] * vector[i];
    }
    double factor = 1;
    if (encoding.clip_norm > 0 && std::sqrt(squares) > encoding.clip_norm) factor = encoding.clip_norm / std::sqrt(squares);
    if (encoding.max_weight > 0) {
      const double weight =
          double(std::clamp<std::int64_t>(trained.result.examples, 0, encoding.max_weight)) / double(encoding.max_weight);
      factor *= weight;
      vector.back() = weight;
    }
    if (factor != 1)
      for (std::size_t i = 0; i < global.size(); ++i) vector[i] *= factor;
    // The metrics travel in the clear; the example count, the update's weight, does not.
    result.metrics = std::move(trained.result.metrics);
    return vector;
  }

  void end_session() { session_.reset(); }

  L inner_;
  secure_learner_options options_;
  std::optional<learner_session> session_;
  std::vector<std::string> rejections_;
};

}  // namespace flotilla::secure_aggregation
