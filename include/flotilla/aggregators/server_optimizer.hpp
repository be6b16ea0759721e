#pragma once
// Server optimizers (Reddi et al. 2021, "Adaptive Federated Optimization", Algorithm 2; FedAvgM
// from Hsu et al. 2019). Each wraps a streaming inner rule (FedAvg by default): the inner rule's
// result x̄ gives the round's pseudo-gradient Δ = x̄ − x, where x is the global model, and the
// server takes an optimizer step along Δ instead of jumping to x̄. Memory: the inner rule's
// accumulator, a copy of x and the optimizer's moments twice (this round's, and the next's in
// reused buffers), whatever the number of learners.
//
//   FedAvgM     m ← β m + Δ                         x ← x + η m
//   FedAdagrad  m ← β1 m + (1−β1) Δ   v ← v + Δ²                          x ← x + η m / (√v + τ)
//   FedAdam     m ← β1 m + (1−β1) Δ   v ← β2 v + (1−β2) Δ²               (same step)
//   FedYogi     m ← β1 m + (1−β1) Δ   v ← v − (1−β2) Δ² sign(v − Δ²)     (same step)
//
// The moments start at m = 0 and v = τ² (the paper's v₋₁ ≥ τ²). With FedAvgM's η = 1, β = 0 the
// step is FedAvg exactly.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>

#include "flotilla/aggregators/mean.hpp"
#include "flotilla/arithmetic.hpp"
#include "flotilla/concepts/aggregator.hpp"
#include "flotilla/concepts/checkpointable.hpp"
#include "flotilla/concepts/parameter_set.hpp"
#include "flotilla/concepts/wire_codable.hpp"
#include "flotilla/detail/parallel.hpp"
#include "flotilla/errors.hpp"

namespace flotilla {

/// FedAvgM's settings: server learning rate η and momentum β.
struct momentum_options {
  double learning_rate = 1.0;
  double momentum = 0.9;
};

/// FedAdagrad's, FedAdam's and FedYogi's settings, with the paper's defaults for β1, β2 and τ.
/// The server learning rate η has no universal default; the paper tunes it per task (it reports
/// 10^-2 to 1 for FedAdam and FedYogi), so 0.1 here is a starting point, not a recommendation.
struct adaptive_options {
  double learning_rate = 0.1;  ///< η
  double beta1 = 0.9;          ///< first-moment decay
  double beta2 = 0.99;         ///< second-moment decay (unused by FedAdagrad)
  double tau = 1e-3;           ///< adaptivity: larger τ behaves more like momentum SGD
};

namespace detail {
inline void require_setting(bool holds, const std::string& what) {
  if (!holds) throw configuration_error(what);
}
}  // namespace detail

/// The per-coordinate updates, one type per method. `step` reads Δ and the moments of the last
/// round and writes the new moments; it returns the step added to x.
struct fedavgm_method {
  using options_type = momentum_options;
  static constexpr bool has_second_moment = false;
  static void validate(const options_type& o) {
    detail::require_setting(o.learning_rate > 0, "FedAvgM's server learning rate must be positive");
    detail::require_setting(o.momentum >= 0 && o.momentum < 1, "FedAvgM's momentum must be in [0, 1)");
  }
  static double initial_second_moment(const options_type&) { return 0; }
  static double step(const options_type& o, double delta, double& m, double&) {
    m = o.momentum * m + delta;
    return o.learning_rate * m;
  }
};

namespace detail {
struct adaptive_method_base {
  using options_type = adaptive_options;
  static constexpr bool has_second_moment = true;
  static void validate(const options_type& o) {
    require_setting(o.learning_rate > 0, "the server learning rate must be positive");
    require_setting(o.beta1 >= 0 && o.beta1 < 1, "beta1 must be in [0, 1)");
    require_setting(o.beta2 >= 0 && o.beta2 < 1, "beta2 must be in [0, 1)");
    require_setting(o.tau > 0, "tau must be positive");
  }
  static double initial_second_moment(const options_type& o) { return o.tau * o.tau; }
  static double apply(const options_type& o, double delta, double& m, double v) {
    m = o.beta1 * m + (1 - o.beta1) * delta;
    return o.learning_rate * m / (std::sqrt(v) + o.tau);
  }
};
}  // namespace detail

struct fedadagrad_method : detail::adaptive_method_base {
  static double step(const options_type& o, double delta, double& m, double& v) {
    v += delta * delta;
    return apply(o, delta, m, v);
  }
};

struct fedadam_method : detail::adaptive_method_base {
  static double step(const options_type& o, double delta, double& m, double& v) {
    v = o.beta2 * v + (1 - o.beta2) * delta * delta;
    return apply(o, delta, m, v);
  }
};

struct fedyogi_method : detail::adaptive_method_base {
  static double step(const options_type& o, double delta, double& m, double& v) {
    const double square = delta * delta;
    v -= (1 - o.beta2) * square * (v > square ? 1.0 : v < square ? -1.0 : 0.0);
    return apply(o, delta, m, v);
  }
};

/// @brief A server optimizer `Method` stepping along the pseudo-gradient of a streaming `Inner`
/// rule. Models `Aggregator`; the optimizer's moments carry over from round to round.
///
/// `result()` computes the step from the moments as they were at `start()`, so calling it twice
/// gives the same parameters; the new moments take effect at the next `start()`.
template <ParameterSet P, class Method, Aggregator<P> Inner = weighted_mean<P>>
class server_optimizer {
 public:
  using options_type = typename Method::options_type;
  using scalar_type = typename P::scalar_type;
  /// As the inner rule: a robust inner stage keeps the whole round.
  static constexpr bool gathers_all_updates = is_gathering_rule_v<Inner>;
  /// As the inner rule: over FedAvg, the step follows the learners' example counts.
  static constexpr bool weighs_by_examples = is_example_weighted_v<Inner>;

  server_optimizer() : server_optimizer(options_type{}) {}
  /// @throws configuration_error for settings outside the method's domain.
  explicit server_optimizer(options_type options, Inner inner = Inner())
      : options_(options), inner_(std::move(inner)) {
    Method::validate(options_);
  }

  void start(const P& global) {
    if (next_) {  // the last round's result was taken: its moments are now the state
      spare_ = std::move(moments_);  // its buffers take the next round's moments
      moments_ = std::move(next_);
      next_.reset();
    }
    if (moments_ && !same_layout(moments_->first, global)) moments_.reset();  // another model: start over
    if (spare_ && !same_layout(spare_->first, global)) spare_.reset();
    // Kept for result(): a copy into last round's buffer, split across the cores for large models.
    if (!global_ || !same_layout(*global_, global)) global_ = make_for_overwrite(global);
    detail::parallel_copy(std::span<const scalar_type>(global.values()), global_->values());
    inner_.start(global);
  }
  void accept(const P& update, std::int64_t examples) { inner_.accept(update, examples); }
  void accept(P&& update, std::int64_t examples) { inner_.accept(std::move(update), examples); }
  void accept_batch(std::span<const weighted_update<P>> updates)
    requires BatchAggregator<Inner, P>
  {
    inner_.accept_batch(updates);
  }
  void accept_coded(std::span<const coded_update<P>> updates)
    requires CodedAggregator<Inner, P>
  {
    inner_.accept_coded(updates);
  }
  void merge(const server_optimizer& other) { inner_.merge(other.inner_); }
  /// The inner rule's partial state (see PartialAggregator): the optimizer's own state stays.
  template <class Writer>
    requires PartialAggregator<Inner, P>
  void write_partial(Writer& out) const {
    inner_.write_partial(out);
  }
  template <class Reader>
    requires PartialAggregator<Inner, P>
  void merge_partial(Reader& in) {
    inner_.merge_partial(in);
  }
  [[nodiscard]] std::size_t accepted() const { return inner_.accepted(); }
  /// The inner rule's screen and figures, when it has them (a dp_mean inside, for instance).
  [[nodiscard]] std::optional<std::string> screen(const P& update) const
    requires ScreeningAggregator<Inner, P>
  {
    return inner_.screen(update);
  }
  [[nodiscard]] auto round_metrics() const
    requires ReportingAggregator<Inner, P>
  {
    return inner_.round_metrics();
  }

  [[nodiscard]] P result() const {
    if (!global_) throw usage_error("result() before start(): the optimizer has no global model");
    // One pass: reads x, the mean and the last moments; writes the new moments and parameters.
    P out = make_for_overwrite(*global_);
    if (!next_) next_ = spare_ ? std::move(*spare_) : fresh_moments();  // spare_: the moments of two rounds ago
    spare_.reset();
    const auto x = global_->values();
    const auto last_first = moments_ ? std::span<const scalar_type>(moments_->first.values()) : std::span<const scalar_type>();
    const auto last_second =
        moments_ && moments_->second ? std::span<const scalar_type>(moments_->second->values()) : std::span<const scalar_type>();
    const double initial_second = Method::initial_second_moment(options_);
    auto stepped = out.values();
    auto first = next_->first.values();
    auto second = next_->second ? next_->second->values() : std::span<scalar_type>();
    const auto step = [&](std::size_t begin, std::size_t count, const scalar_type* target) {
      for (std::size_t k = 0; k < count; ++k) {
        const std::size_t i = begin + k;
        double m = last_first.empty() ? 0.0 : double(last_first[i]);
        double v = last_second.empty() ? initial_second : double(last_second[i]);
        const double change = Method::step(options_, double(target[k]) - double(x[i]), m, v);
        first[i] = static_cast<scalar_type>(m);
        if (!second.empty()) second[i] = static_cast<scalar_type>(v);
        stepped[i] = static_cast<scalar_type>(double(x[i]) + change);
      }
    };
    if constexpr (requires { inner_.visit_result(step); }) {
      inner_.visit_result(step);  // the mean a block at a time, stepped while in cache
    } else {
      const P mean = inner_.result();
      const scalar_type* target = mean.values().data();
      detail::for_each_piece(stepped.size(), 0, [&](std::size_t begin, std::size_t end) { step(begin, end - begin, target + begin); });
    }
    return out;
  }

  /// Writes the moments the next round starts from, then the inner rule's state if it keeps one
  /// (for checkpoints; a template so that this header needs no serializer until one is written).
  template <std::same_as<wire_writer> Writer>
    requires WireCodable<P>
  void save_state(Writer& out) const {
    const auto& state = next_ ? next_ : moments_;
    out.write(static_cast<std::uint8_t>(state ? 1 : 0));
    if (state) {
      wire_codec<P>::write(out, state->first);
      out.write(static_cast<std::uint8_t>(state->second ? 1 : 0));
      if (state->second) wire_codec<P>::write(out, *state->second);
    }
    if constexpr (CheckpointableRule<Inner>) inner_.save_state(out);
  }
  /// Reads what save_state wrote. @throws decode_error if it is not this method's state.
  template <std::same_as<wire_reader> Reader>
    requires WireCodable<P>
  void load_state(Reader& in) {
    std::optional<moments> state;
    if (in.template read<std::uint8_t>("optimizer state flag") != 0) {
      moments loaded{wire_codec<P>::read(in), std::nullopt};
      if (in.template read<std::uint8_t>("second moment flag") != 0) loaded.second = wire_codec<P>::read(in);
      if (loaded.second.has_value() != Method::has_second_moment ||
          (loaded.second && !same_layout(loaded.first, *loaded.second)))
        throw decode_error("the checkpoint's optimizer state does not belong to this method");
      state = std::move(loaded);
    }
    if constexpr (CheckpointableRule<Inner>) {
      Inner inner = inner_;  // read into a copy: on a decode error nothing changes
      inner.load_state(in);
      inner_ = std::move(inner);
    }
    moments_ = std::move(state);
    next_.reset();
  }

  [[nodiscard]] const options_type& options() const { return options_; }
  [[nodiscard]] const Inner& inner() const { return inner_; }

 private:
  struct moments {
    P first;
    std::optional<P> second;  // FedAvgM has none
  };

  [[nodiscard]] moments fresh_moments() const {
    moments made{make_for_overwrite(*global_), std::nullopt};
    if constexpr (Method::has_second_moment) made.second = make_for_overwrite(*global_);
    return made;
  }

  options_type options_;
  Inner inner_;
  std::optional<P> global_;
  std::optional<moments> moments_;
  mutable std::optional<moments> next_;   // written by result(), adopted by the next start()
  mutable std::optional<moments> spare_;  // the buffers of the moments before moments_, reused
};

/// FedAvgM: server momentum over FedAvg's pseudo-gradient (Hsu et al. 2019).
template <ParameterSet P, Aggregator<P> Inner = weighted_mean<P>>
using fedavgm = server_optimizer<P, fedavgm_method, Inner>;
/// FedAdagrad (Reddi et al. 2021).
template <ParameterSet P, Aggregator<P> Inner = weighted_mean<P>>
using fedadagrad = server_optimizer<P, fedadagrad_method, Inner>;
/// FedAdam (Reddi et al. 2021).
template <ParameterSet P, Aggregator<P> Inner = weighted_mean<P>>
using fedadam = server_optimizer<P, fedadam_method, Inner>;
/// FedYogi (Reddi et al. 2021).
template <ParameterSet P, Aggregator<P> Inner = weighted_mean<P>>
using fedyogi = server_optimizer<P, fedyogi_method, Inner>;

}  // namespace flotilla
