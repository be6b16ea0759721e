#pragma once
// Secure aggregation in a coordinator's round: `secure_mean` is an aggregation rule that runs
// the fit phase itself, as SecAgg+'s four stages over any transport (messages.hpp), with a
// server_session doing the protocol. The aggregator learns the sum of the survivors' quantized
// updates (and their total weight), never one of them; the inner rule (mean by default, or a
// server optimizer) receives that mean as a single update.
//
// Distributed DP (Kairouz, Liu and Steinke 2021, without their random rotation): with
// `distributed_dp`, learners clip their delta to C and each adds discrete Gaussian noise to its
// quantized vector, so the sum carries the central mechanism's noise that no one added whole.
// In quantization steps (s = step()), one learner moves the sum by at most
//   Delta = C / s + sqrt(d)      (its clipped delta, plus < 1 step of rounding per value),
// and each of the n learners adds noise of standard deviation
//   sigma_i = z Delta / sqrt(m),  m = ceil(n (1 - dropout_rate)),
// so any m survivors' sum carries noise of standard deviation at least z Delta: the noise
// multiplier z the accountant is given. A round with fewer than m contributors would carry
// less, so it is aborted before unmasking. The sum of discrete Gaussians is not one; the extra
// term of their Theorem 1, 10 sum_k exp(-2 pi^2 sigma_i^2 k / (k + 1)), is below 10^-60 for
// sigma_i >= 4 steps, which the round requires, and is left out of the accounting.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "flotilla/aggregators/mean.hpp"
#include "flotilla/algorithms/privacy/accountant.hpp"
#include "flotilla/algorithms/secure_aggregation/messages.hpp"
#include "flotilla/algorithms/secure_aggregation/server.hpp"
#include "flotilla/arithmetic.hpp"
#include "flotilla/concepts/aggregator.hpp"
#include "flotilla/concepts/checkpointable.hpp"
#include "flotilla/detail/text.hpp"
#include "flotilla/messages.hpp"
#include "flotilla/wire/codec.hpp"

namespace flotilla::secure_aggregation {

/// Distributed DP's settings: see the top of this file.
struct distributed_dp {
  double noise_multiplier = 1.0;  ///< z, over the sensitivity Delta
  double clip_norm = 1.0;         ///< C: learners clip their delta's L2 norm to it
  /// With it, every released round reports "privacy.epsilon" (same z; the sampling rate and
  /// draw of the coordinator's selection).
  std::optional<privacy::accountant> accounting{};
};

/// A secure round's settings.
struct secure_options {
  /// The share of selected learners assumed to drop out, and to collude with the aggregator:
  /// they choose the graph's degree and threshold (find_graph_parameters), and, with distributed
  /// DP, how many learners' noise the sum is sure to keep.
  double dropout_rate = 0.1;
  double corruption_rate = 0.1;
  /// Degree and threshold set by hand (a degree of n - 1 or more is the complete graph); 0
  /// derives them. Where no degree below n - 1 meets the targets, or the one found leaves no
  /// room for a single dropout (t = k: small rounds), the complete graph is used. A threshold
  /// not given is then the larger of half the degree and one more than the colluders expected
  /// among the neighbours.
  std::size_t degree = 0;
  std::size_t threshold = 0;
  quantization quantized{};
  /// Updates weigh their examples capped at this (Flower's max_weight, 1000 by default);
  /// 0: every update weighs the same. The weight travels masked, inside the vector.
  std::int64_t max_weight = 1000;
  std::optional<distributed_dp> noise{};

  /// @throws configuration_error naming the setting that cannot work.
  void validate() const {
    const auto shown = [](double value) { return flotilla::detail::number(value); };
    if (!(dropout_rate >= 0 && dropout_rate < 1) || !(corruption_rate >= 0 && corruption_rate < 1))
      throw configuration_error("dropout_rate and corruption_rate must be in [0, 1)");
    if (max_weight < 0) throw configuration_error("max_weight must be 0 (equal weights) or positive");
    if (threshold == 1) throw configuration_error("a threshold of 1 would let any one neighbour rebuild a secret");
    quantized.validate(1);
    if (!noise) return;
    if (max_weight != 0)
      throw configuration_error("distributed DP needs every update to weigh the same (a count is the learner's own "
                                "word and would scale its sensitivity); set max_weight to 0");
    if (!(noise->noise_multiplier > 0) || !std::isfinite(noise->noise_multiplier))
      throw configuration_error("distributed DP's noise_multiplier must be positive; got " + shown(noise->noise_multiplier));
    if (!(noise->clip_norm > 0) || !(noise->clip_norm <= quantized.clipping_range))
      throw configuration_error("distributed DP's clip_norm must be in (0, clipping_range = " +
                                shown(quantized.clipping_range) + "]; got " + shown(noise->clip_norm));
    if (noise->accounting && noise->accounting->noise_multiplier() != noise->noise_multiplier)
      throw configuration_error("the accountant's noise multiplier " + shown(noise->accounting->noise_multiplier()) +
                                " differs from noise_multiplier " + shown(noise->noise_multiplier));
  }
};

/// The graph a round of n learners uses: secure_options' degree and threshold, or derived.
/// @throws configuration_error when neither works for n.
[[nodiscard]] inline graph_parameters graph_for(std::size_t learners, const secure_options& options) {
  if (learners < 2) throw configuration_error("secure aggregation needs at least 2 learners; got " + std::to_string(learners));
  graph_parameters chosen{learners, std::min(options.degree, learners - 1), options.threshold};
  if (chosen.degree == 0) {
    chosen.degree = learners - 1;  // all pairs, unless a sparse graph meets the targets
    try {
      const auto found = find_graph_parameters(learners, options.dropout_rate, options.corruption_rate);
      // A threshold equal to the degree leaves no room for one dropout (a small round whose
      // assumed rate rounds down to no learner at all): all pairs then.
      if (found.threshold < found.degree) {
        chosen.degree = found.degree;
        if (chosen.threshold == 0) chosen.threshold = found.threshold;
      }
    } catch (const configuration_error&) {  // too few learners for a sparse graph
    }
  }
  if (chosen.threshold == 0)  // half the neighbours, and more than the colluders expected among them
    chosen.threshold = std::max<std::size_t>(
        {2, (chosen.degree + 1) / 2, std::size_t(double(chosen.degree) * options.corruption_rate) + 1});
  if (chosen.threshold < 2 || chosen.threshold > chosen.degree)
    throw configuration_error("a threshold of " + std::to_string(chosen.threshold) + " cannot work with " +
                              std::to_string(chosen.degree) + " neighbours");
  return chosen;
}

/// @brief Secure aggregation as a coordinator's rule: `coordinator(transport, initial, options,
/// secure_mean<P>(secure_options{...}))`, with every learner wrapped in secure_learner.
///
/// The coordinator hands it the fit phase (StagedRule); `Inner` then receives the securely
/// aggregated mean as one update, so a server optimizer (fedavgm<P>, fedadam<P>) applies its
/// step to it. A rule that needs every update (median, Krum) cannot work on a sum and is refused.
template <ParameterSet P, class Inner = mean<P>>
class secure_mean {
  static_assert(Aggregator<Inner, P>, "secure_mean's inner rule must be an Aggregator of P");
  static_assert(!is_gathering_rule_v<Inner>,
                "a rule that needs every update (median, Krum, trimmed mean) cannot work on secure aggregation's sum");

 public:
  explicit secure_mean(secure_options options = {}, Inner inner = {}) : options_(validated(std::move(options))), inner_(std::move(inner)) {}

  // The Aggregator's parts fold into the inner rule: an update handed to them directly (not
  // through a secure round) is aggregated in the clear.
  void start(const P& global) { inner_.start(global); }
  void accept(const P& update, std::int64_t examples) { inner_.accept(update, examples); }
  void merge(const secure_mean& other) { inner_.merge(other.inner_); }
  [[nodiscard]] std::size_t accepted() const { return inner_.accepted(); }
  [[nodiscard]] P result() const { return inner_.result(); }

  /// The secure fit phase: the four stages, each a staged_round::run_stage (round/stages.hpp),
  /// then the inner rule. `configure(learner, config)`, when set, gives a learner its own fit
  /// settings.
  template <class Round, class Configure>
  void run_fit(Round& round, const fit_config& config, std::size_t quorum, const Configure& configure);

  /// "secure.contributors", "secure.degree", "secure.threshold", and with distributed DP
  /// "privacy.noise_multiplier" (the round's own, at least z), "privacy.noise_stddev" (on the
  /// mean), "privacy.clip_norm" and "privacy.epsilon" spent so far (with an accountant).
  [[nodiscard]] metrics round_metrics() const { return round_metrics_; }
  /// Rounds whose sum was released.
  [[nodiscard]] std::uint64_t rounds() const { return rounds_; }
  [[nodiscard]] const secure_options& options() const { return options_; }
  [[nodiscard]] const Inner& inner() const { return inner_; }

  /// What a checkpoint keeps: rounds released (the privacy spent), then the inner rule's state.
  template <std::same_as<wire_writer> Writer>
  void save_state(Writer& out) const {
    out.write(rounds_);
    if constexpr (CheckpointableRule<Inner>) inner_.save_state(out);
  }
  template <std::same_as<wire_reader> Reader>
  void load_state(Reader& in) {
    rounds_ = in.template read<std::uint64_t>("secure rounds released");
    if constexpr (CheckpointableRule<Inner>) inner_.load_state(in);
  }

 private:
  static secure_options validated(secure_options options) {
    options.validate();
    return options;
  }

  secure_options options_;
  Inner inner_;
  std::uint64_t rounds_ = 0;
  metrics round_metrics_;
};

namespace detail {

// The learners in `indices`, as ids.
inline std::vector<learner_id> ids_of(std::span<const std::uint64_t> indices, std::span<const learner_id> selected) {
  std::vector<learner_id> out;
  for (const auto index : indices) out.push_back(selected[index - 1]);
  return out;
}

inline std::optional<std::string> wrong_sender(std::uint64_t expected, std::uint64_t claimed, const char* what) {
  if (claimed == expected) return std::nullopt;
  return std::string(what) + " names learner index " + std::to_string(claimed) + "; the sender's is " + std::to_string(expected);
}

}  // namespace detail

template <ParameterSet P, class Inner>
template <class Round, class Configure>
void secure_mean<P, Inner>::run_fit(Round& round, const fit_config& config, std::size_t quorum, const Configure& configure) {
  round_metrics_.clear();
  const auto finish = [&](std::string note) {
    round.report(round_metrics_);
    round.discarded(std::move(note));
  };
  const std::vector<learner_id> selected = round.selected();  // learner i + 1 of the round
  const std::size_t n = selected.size();
  std::map<learner_id, std::uint64_t> index_of;
  for (std::size_t i = 0; i < n; ++i) index_of[selected[i]] = i + 1;
  graph_parameters graph;
  try {
    graph = graph_for(n, options_);
  } catch (const configuration_error& error) {  // e.g. too few learners left this round
    return finish(std::string("secure aggregation cannot run: ") + error.what() + "; global parameters kept");
  }
  const auto global = round.global();
  const std::size_t d = global->values().size();
  const bool weighted = options_.max_weight > 0;
  const std::size_t length = d + (weighted ? 1 : 0);  // the masked vector: the update, then its weight
  update_encoding encoding{.max_weight = options_.max_weight};
  std::size_t needed = quorum;  // contributors without which the round is aborted
  double sensitivity = 0;       // Delta, in steps
  if (options_.noise) {
    sensitivity = options_.noise->clip_norm / options_.quantized.step() + std::sqrt(double(d));
    // m: the learners whose noise the sum must keep.
    const auto m = std::max<std::size_t>(1, std::size_t(std::ceil(double(n) * (1 - options_.dropout_rate) - 1e-9)));
    needed = std::max(needed, m);
    encoding.clip_norm = options_.noise->clip_norm;
    encoding.noise_stddev = options_.noise->noise_multiplier * sensitivity / std::sqrt(double(m));
    if (encoding.noise_stddev < 4 || encoding.noise_stddev > 1048576.0)
      throw configuration_error("distributed DP asks each learner for noise of " + flotilla::detail::number(encoding.noise_stddev) +
                                " quantization steps; it must be in [4, 2^20] (change quantization_range)");
  }
  server_session session(round.round(), harary_graph::random(n, graph.degree), graph.threshold, length, options_.quantized,
                         encoding);
  round_metrics_["secure.degree"] = double(graph.degree);
  round_metrics_["secure.threshold"] = double(graph.threshold);
  const auto aborted = [&](const std::string& reason) { finish("secure aggregation aborted: " + reason + "; global parameters kept"); };
  const auto task_with = [](std::vector<std::uint8_t> payload) { return task<P>{.payload = std::move(payload)}; };

  // Stage 1: setups out, public keys back.
  round.run_stage(advertise_keys_kind, selected,
                  [&](learner_id learner) { return task_with(encode(session.setup_for(index_of.at(learner)))); },
                  [&](const reply<P>& answer) {
                    const auto keys = decode_advertised_keys(answer.payload);
                    if (auto problem = detail::wrong_sender(index_of.at(answer.learner), keys.index, "advertised keys"))
                      return problem;
                    return session.receive_keys(keys);
                  });
  if (auto reason = session.abort_reason()) return aborted(*reason);

  // Stage 2: each learner's neighbours' keys out, its sealed shares back.
  round.run_stage(share_keys_kind, detail::ids_of(session.advertised(), selected),
                  [&](learner_id learner) {
                    return task_with(encode(std::span<const advertised_keys>(session.keys_for(index_of.at(learner)))));
                  },
                  [&](const reply<P>& answer) {
                    return session.receive_shares(index_of.at(answer.learner), decode_share_list(answer.payload, graph.degree));
                  });
  if (auto reason = session.abort_reason()) return aborted(*reason);

  // Stage 3: the global parameters and each learner's shares out; it trains and sends back its
  // masked vector, which goes into the running sum at once.
  const auto trained = round.run_stage(
      masked_input_kind, detail::ids_of(session.sharers(), selected),
      [&](learner_id learner) {
        auto own = task_with(encode(std::span<const sealed_shares>(session.shares_for(index_of.at(learner)))));
        own.parameters = global;
        own.config = configure ? configure(learner, config) : config;
        return own;
      },
      [&](const reply<P>& answer) -> std::optional<std::string> {
        const auto input = decode_masked_input(answer.payload, graph.degree, length);
        if (auto problem = detail::wrong_sender(index_of.at(answer.learner), input.index, "a masked input")) return problem;
        return session.receive_masked(input);
      });
  if (auto reason = session.abort_reason()) return aborted(*reason);
  const auto contributors = session.contributors();
  if (contributors.size() < needed)
    return aborted(std::to_string(contributors.size()) + " learners sent masked input; " + std::to_string(needed) +
                   (options_.noise ? " are needed (the quorum, and enough learners' noise for distributed DP)" : " are needed (the quorum)"));

  // Stage 4: the survivors hand over the shares that remove the masks.
  round.run_stage(unmasking_kind, detail::ids_of(contributors, selected),
                  [&](learner_id learner) { return task_with(encode(session.request_for(index_of.at(learner)))); },
                  [&](const reply<P>& answer) -> std::optional<std::string> {
                    const auto response = decode_unmask_response(answer.payload, graph.degree);
                    if (auto problem = detail::wrong_sender(index_of.at(answer.learner), response.index, "an unmasking response"))
                      return problem;
                    return session.receive_unmask(response);
                  });
  std::vector<std::uint32_t> sum;
  try {
    sum = session.unmasked_sum();
  } catch (const security_error& error) {
    return aborted(error.what());
  }

  // The sum, back in the values' scale: the mean delta is the weighted sum over the total weight.
  std::vector<double> total(length);
  dequantize_sum(std::span<const std::uint32_t>(sum), contributors.size(), options_.quantized, std::span(total));
  const double weight = weighted ? total.back() : double(contributors.size());
  if (!(weight > 0)) return finish("secure aggregation's total weight is " + flotilla::detail::number(weight) + "; global parameters kept");
  P mean_update = *global;
  auto values = mean_update.values();
  for (std::size_t i = 0; i < d; ++i) values[i] = static_cast<typename P::scalar_type>(double(values[i]) + total[i] / weight);
  inner_.start(*global);
  inner_.accept(mean_update, 1);
  auto result = inner_.result();
  if (first_non_finite(result) != result.values().size())
    return finish("the aggregate holds a non-finite value; global parameters kept");
  ++rounds_;
  round_metrics_["secure.contributors"] = double(contributors.size());
  if (options_.noise) {
    const double noise_steps = encoding.noise_stddev * std::sqrt(double(contributors.size()));  // on the sum
    round_metrics_["privacy.noise_multiplier"] = noise_steps / sensitivity;
    round_metrics_["privacy.noise_stddev"] = noise_steps * options_.quantized.step() / double(contributors.size());
    round_metrics_["privacy.clip_norm"] = options_.noise->clip_norm;
    if (options_.noise->accounting) round_metrics_["privacy.epsilon"] = options_.noise->accounting->epsilon(rounds_);
  }
  round.report(round_metrics_);
  const auto examples = weighted ? std::int64_t(std::llround(weight * double(options_.max_weight))) : std::int64_t(contributors.size());
  round.aggregated(std::move(result), detail::ids_of(contributors, selected), examples, trained.metrics);
}

}  // namespace flotilla::secure_aggregation
