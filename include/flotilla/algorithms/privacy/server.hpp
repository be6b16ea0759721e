#pragma once
// Differential privacy, the server side (DP-FedAvg: McMahan et al. 2018; adaptive clipping:
// Andrew et al. 2021). The learner side is learner.hpp; it never includes this file.
//
//   clip_updates<P, Inner>  scales each update's delta from the global parameters to L2 norm at
//                           most C, then hands it to an inner rule that weighs updates equally.
//   dp_mean<P>              the Gaussian mechanism on top: the mean of m clipped updates plus
//                           N(0, (z C / m)^2) per value, with C fixed or adaptive, clipped here
//                           or by the learners (then checked at the door), and the privacy spent
//                           reported after every round. It composes with server optimizers as
//                           their inner rule (fedadam<P, dp_mean<P>>): their step is
//                           post-processing, which costs no privacy.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "flotilla/aggregators/mean.hpp"
#include "flotilla/algorithms/privacy/accountant.hpp"
#include "flotilla/algorithms/privacy/clipping.hpp"
#include "flotilla/algorithms/privacy/noise.hpp"
#include "flotilla/concepts/aggregator.hpp"
#include "flotilla/concepts/wire_codable.hpp"
#include "flotilla/detail/parallel.hpp"
#include "flotilla/errors.hpp"

namespace flotilla::privacy {

/// @brief Clips each update's delta from the global parameters to L2 norm at most `clip_norm`
/// and hands the clipped update to `Inner`.
///
/// The inner rule must weigh updates equally: learners choose their example counts, and one
/// claiming many would move a weighted mean by more than the clip norm allows. A rule that
/// weighs by examples (weighted_mean, and server optimizers over it) is refused at compile time.
template <ParameterSet P, class Inner = mean<P>>
class clip_updates {
  static_assert(flotilla::detail::explain_aggregator<Inner, P>());
  static_assert(!is_example_weighted_v<Inner>,
                "clip_updates: the inner rule weighs updates by their example counts, which learners choose; one "
                "learner claiming many examples would move the result by more than the clip norm allows. Use "
                "flotilla::mean<P> (every update counts the same) or a rule that ignores counts.");

 public:
  static constexpr bool gathers_all_updates = is_gathering_rule_v<Inner>;

  /// @throws configuration_error unless clip_norm is positive (infinity: no clipping).
  explicit clip_updates(double clip_norm, Inner inner = Inner(), std::size_t threads = 0)
      : inner_(std::move(inner)), threads_(threads) {
    set_clip_norm(clip_norm);
  }

  void start(const P& global) {
    if (!global_ || !same_layout(*global_, global)) global_ = make_for_overwrite(global);
    flotilla::detail::parallel_copy(std::span<const typename P::scalar_type>(global.values()), global_->values(), threads_);
    inner_.start(global);
    within_bound_ = 0;
  }

  void accept(const P& update, std::int64_t examples) {
    const weighted_update<P> one{&update, examples};
    fold(std::span(&one, 1));
  }

  /// Updates within the bound go to the inner rule together; one that needs clipping goes alone,
  /// through the one scratch buffer, so memory stays one model whatever the batch.
  void accept_batch(std::span<const weighted_update<P>> updates)
    requires BatchAggregator<Inner, P>
  {
    fold(updates);
  }

  void merge(const clip_updates& other) {
    inner_.merge(other.inner_);
    within_bound_ += other.within_bound_;
  }
  [[nodiscard]] std::size_t accepted() const { return inner_.accepted(); }
  [[nodiscard]] P result() const { return inner_.result(); }

  [[nodiscard]] double clip_norm() const { return clip_norm_; }
  void set_clip_norm(double clip_norm) {
    if (!(clip_norm > 0))
      throw configuration_error("the clip norm must be positive; got " + flotilla::detail::number(clip_norm));
    clip_norm_ = clip_norm;
  }
  /// Accepted updates whose delta was within the clip norm (not scaled).
  [[nodiscard]] std::size_t within_bound() const { return within_bound_; }
  /// The global parameters of the round, as passed to start().
  [[nodiscard]] const P& global() const {
    if (!global_) throw usage_error("global() before start(): the rule has no round yet");
    return *global_;
  }
  [[nodiscard]] const Inner& inner() const { return inner_; }

 private:
  void fold(std::span<const weighted_update<P>> updates) {
    if (!global_) throw usage_error("accept() before start(): the rule has no global parameters yet");
    std::vector<weighted_update<P>> within;
    const auto flush = [&] {
      if (within.empty()) return;
      if constexpr (BatchAggregator<Inner, P>) inner_.accept_batch(std::span<const weighted_update<P>>(within));
      else for (const auto& one : within) inner_.accept(*one.parameters, one.examples);
      within.clear();
    };
    for (const auto& update : updates) {
      const double norm = std::isinf(clip_norm_) ? 0.0 : delta_norm(*update.parameters, *global_, threads_);
      if (norm <= clip_norm_) {
        ++within_bound_;
        within.push_back(update);
        continue;
      }
      flush();
      if (!scratch_ || !same_layout(*scratch_, *global_)) scratch_ = make_for_overwrite(*global_);
      scale_delta(*update.parameters, *global_, clip_factor(norm, clip_norm_), *scratch_, threads_);
      inner_.accept(*scratch_, update.examples);
    }
    flush();
  }

  Inner inner_;
  double clip_norm_ = 1;
  std::size_t threads_;
  std::optional<P> global_;
  std::optional<P> scratch_;
  std::size_t within_bound_ = 0;
};

/// Who clips the updates under dp_mean.
enum class clipping_side : std::uint8_t {
  server,    ///< the server clips what it receives (it sees raw updates: central DP)
  learners,  ///< learners clip their own (learner.hpp); the server rejects a reply above the bound
};

/// Adaptive clipping (Andrew et al. 2021): the clip norm follows a quantile of the update norms,
/// C <- C exp(-learning_rate (b - target_quantile)), where b is the noised share of updates
/// within the bound. Defaults are TFF's and Flower's.
struct adaptive_clipping {
  double target_quantile = 0.5;
  double learning_rate = 0.2;
  /// Learners expected per round (q N for Poisson sampling): the share b is counted over it.
  double expected_learners = 0;
  /// Standard deviation of the noise on the count of updates within the bound; below zero (the
  /// default) means expected_learners / 20. Only used when there is noise at all.
  double count_stddev = -1;
};

/// dp_mean's settings.
struct dp_mean_options {
  /// z: the whole mechanism's noise standard deviation over the sensitivity. 0 turns noise off
  /// (clipping only, no privacy guarantee).
  double noise_multiplier = 1.0;
  /// C, or where adaptive clipping starts (0.1, as TFF and Flower).
  double clip_norm = 0.1;
  clipping_side clipping = clipping_side::server;
  std::optional<adaptive_clipping> adaptive{};
  /// The accountant of this mechanism (same noise multiplier; the sampling rate and draw of the
  /// coordinator's selection): with it, every round reports "privacy.epsilon".
  std::optional<accountant> accounting{};
  std::size_t threads = 0;  ///< 0: one per core

  /// @throws configuration_error naming the setting that cannot work.
  void validate() const {
    const auto shown = [](double value) { return flotilla::detail::number(value); };
    if (!(noise_multiplier >= 0) || !std::isfinite(noise_multiplier))
      throw configuration_error("noise_multiplier must be zero (no noise) or positive; got " + shown(noise_multiplier));
    if (!(clip_norm > 0) || !std::isfinite(clip_norm))
      throw configuration_error("clip_norm must be positive and finite; got " + shown(clip_norm));
    if (accounting && noise_multiplier == 0)
      throw configuration_error("an accountant was given but noise_multiplier is 0: without noise there is no privacy to account");
    if (accounting && accounting->noise_multiplier() != noise_multiplier)
      throw configuration_error("the accountant's noise multiplier " + shown(accounting->noise_multiplier()) +
                                " differs from noise_multiplier " + shown(noise_multiplier));
    if (!adaptive) return;
    if (clipping == clipping_side::learners)
      throw configuration_error("adaptive clipping needs every update's norm at the server; with clipping by learners "
                                "it has none (use clipping_side::server)");
    const auto& a = *adaptive;
    if (!(a.target_quantile > 0 && a.target_quantile < 1))
      throw configuration_error("adaptive clipping's target_quantile must be in (0, 1); got " + shown(a.target_quantile));
    if (!(a.learning_rate > 0) || !std::isfinite(a.learning_rate))
      throw configuration_error("adaptive clipping's learning_rate must be positive; got " + shown(a.learning_rate));
    if (!(a.expected_learners > 0) || !std::isfinite(a.expected_learners))
      throw configuration_error("adaptive clipping needs expected_learners, the learners expected per round; got " +
                                shown(a.expected_learners));
    if (std::isnan(a.count_stddev) || std::isinf(a.count_stddev))
      throw configuration_error("adaptive clipping's count_stddev must be finite; got " + shown(a.count_stddev));
    if (noise_multiplier > 0 && !(2 * count_noise() > noise_multiplier))
      throw configuration_error("adaptive clipping cannot keep noise_multiplier " + shown(noise_multiplier) +
                                ": the count's noise (count_stddev " + shown(count_noise()) +
                                ") must exceed half of it, as the update's noise multiplier is (z^-2 - (2 "
                                "count_stddev)^-2)^-1/2; raise count_stddev or expected_learners");
  }

  /// The standard deviation of the noise on the count of updates within the bound.
  [[nodiscard]] double count_noise() const {
    if (!adaptive || noise_multiplier == 0) return 0;
    return adaptive->count_stddev >= 0 ? adaptive->count_stddev : adaptive->expected_learners / 20;
  }

  /// The noise multiplier of the update itself: z, or with adaptive clipping the share left
  /// after the count's (Andrew et al. 2021, Theorem 1).
  [[nodiscard]] double update_noise_multiplier() const {
    const double count = count_noise();
    if (noise_multiplier == 0 || count == 0) return noise_multiplier;
    return 1 / std::sqrt(1 / (noise_multiplier * noise_multiplier) - 1 / (4 * count * count));
  }
};

/// @brief The Gaussian mechanism over clipped updates (DP-FedAvg's server side): the unweighted
/// mean of m updates, each delta clipped to C, plus N(0, (z C / m)^2) per value, with the
/// noise drawn from `R` (the kernel's generator by default).
///
/// Every round it starts counts against the privacy budget, whether or not it aggregates.
template <ParameterSet P, NoiseSource R = os_random>
class dp_mean {
 public:
  explicit dp_mean(dp_mean_options options = {}, R source = R())
      : options_(validated(std::move(options))),
        clipper_(options_.clip_norm, mean<P>(options_.threads), options_.threads),
        source_(std::move(source)),
        clip_norm_(options_.clip_norm) {}

  void start(const P& global) {
    if (next_clip_norm_) clip_norm_ = *std::exchange(next_clip_norm_, std::nullopt);
    clipper_.set_clip_norm(options_.clipping == clipping_side::server ? clip_norm_ : std::numeric_limits<double>::infinity());
    clipper_.start(global);
    ++rounds_;
  }
  void accept(const P& update, std::int64_t examples) { clipper_.accept(update, examples); }
  void accept_batch(std::span<const weighted_update<P>> updates) { clipper_.accept_batch(updates); }
  void merge(const dp_mean& other) { clipper_.merge(other.clipper_); }
  [[nodiscard]] std::size_t accepted() const { return clipper_.accepted(); }

  /// With clipping by learners: a reply whose delta exceeds C is rejected at the door, with the
  /// reason in the history. (Learners clip to slightly less, see rounding_margin.)
  [[nodiscard]] std::optional<std::string> screen(const P& update) const {
    if (options_.clipping != clipping_side::learners) return std::nullopt;
    const double norm = delta_norm(update, clipper_.global(), options_.threads);
    if (norm <= clip_norm_) return std::nullopt;
    return "update's delta from the global parameters has L2 norm " + flotilla::detail::number(norm) +
           "; learners must clip it to " + flotilla::detail::number(clip_norm_);
  }

  /// The clipped mean plus the noise; with adaptive clipping, also the next round's clip norm.
  [[nodiscard]] P result() const {
    P out = clipper_.result();
    add_gaussian_noise(out.values(), noise_stddev(), source_, mix_seed(rounds_, 0), options_.threads);
    if (options_.adaptive) {
      const auto& a = *options_.adaptive;
      double count = double(clipper_.within_bound());
      if (const double stddev = options_.count_noise(); stddev > 0) {
        word_stream<R> bits(source_.fork(mix_seed(rounds_, 1)));
        count += stddev * standard_normal(bits);
      }
      unclipped_share_ = count / a.expected_learners;
      next_clip_norm_ = clip_norm_ * std::exp(-a.learning_rate * (unclipped_share_ - a.target_quantile));
    }
    return out;
  }

  /// What this round adds to the history's central metrics: "privacy.epsilon" spent so far (with
  /// an accountant), "privacy.clip_norm" used, "privacy.noise_stddev" per value, and with
  /// adaptive clipping the noised "privacy.unclipped_share".
  [[nodiscard]] metrics round_metrics() const {
    metrics out{{"privacy.clip_norm", clip_norm_}};
    if (accepted() > 0) out["privacy.noise_stddev"] = noise_stddev();
    if (options_.accounting) out["privacy.epsilon"] = options_.accounting->epsilon(rounds_);
    if (options_.adaptive && next_clip_norm_) out["privacy.unclipped_share"] = unclipped_share_;
    return out;
  }

  /// Rounds charged so far.
  [[nodiscard]] std::uint64_t rounds() const { return rounds_; }
  /// The clip norm the next round uses.
  [[nodiscard]] double next_clip_norm() const { return next_clip_norm_.value_or(clip_norm_); }
  [[nodiscard]] const dp_mean_options& options() const { return options_; }

  /// The state a checkpoint keeps: rounds charged and the next clip norm.
  template <std::same_as<wire_writer> Writer>
  void save_state(Writer& out) const {
    out.write(rounds_);
    out.write(next_clip_norm());
  }
  /// @throws decode_error for a clip norm that is not positive.
  template <std::same_as<wire_reader> Reader>
  void load_state(Reader& in) {
    const auto rounds = in.template read<std::uint64_t>("rounds charged");
    const auto clip = in.template read<double>("clip norm");
    if (!(clip > 0) || !std::isfinite(clip)) throw decode_error("the checkpoint's clip norm is not positive");
    rounds_ = rounds;
    clip_norm_ = clip;
    next_clip_norm_.reset();
  }

 private:
  static dp_mean_options validated(dp_mean_options options) {
    options.validate();
    return options;
  }
  double noise_stddev() const {
    return options_.update_noise_multiplier() * clip_norm_ / double(std::max<std::size_t>(accepted(), 1));
  }

  dp_mean_options options_;
  clip_updates<P, mean<P>> clipper_;
  R source_;
  double clip_norm_;
  std::uint64_t rounds_ = 0;
  mutable std::optional<double> next_clip_norm_;  // written by result(), adopted by the next start()
  mutable double unclipped_share_ = 0;
};

}  // namespace flotilla::privacy
