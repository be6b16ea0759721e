#pragma once
// Differential privacy, the learner side: a model wrapper that clips its own update before it
// replies (needed when the aggregator must not see raw updates, as under secure aggregation),
// and optionally adds noise to it itself (local DP, for learners that trust no aggregator).
// The server side is server.hpp; this file never includes it.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>

#include "flotilla/algorithms/privacy/clipping.hpp"
#include "flotilla/algorithms/privacy/noise.hpp"
#include "flotilla/concepts/model.hpp"
#include "flotilla/detail/text.hpp"
#include "flotilla/errors.hpp"

namespace flotilla::privacy {

/// Local DP: each release is (epsilon, delta)-DP on its own through the classic Gaussian
/// mechanism, noise std = C sqrt(2 ln(1.25 / delta)) / epsilon (Dwork and Roth 2014, Theorem
/// A.1, which holds for epsilon < 1). Releases compose: a learner that replies k times spends k.
struct local_noise {
  double epsilon = 0.5;
  double delta = 1e-5;
};

/// private_model's settings.
struct learner_privacy_options {
  double clip_norm = 0.1;              ///< C: the bound on the update's delta
  std::optional<local_noise> local{};  ///< noise added by the learner itself
  std::size_t threads = 0;             ///< 0: one per core
};

/// @brief Wraps a model so that its update (trained parameters minus the global ones it started
/// from) has L2 norm at most C when it leaves the learner, plus local noise when asked.
///
/// The bound it clips to is C less a rounding margin (rounding_margin), so a server checking
/// the norm at C (dp_mean with clipping_side::learners) never rejects an honest learner. With
/// local noise the update exceeds C, so the server must not check it (use mean<P>).
template <class M, NoiseSource R = os_random>
  requires Model<M>
class private_model {
 public:
  using parameters_type = parameters_of_t<M>;

  /// @throws configuration_error naming a clip norm that is not positive, or local noise with
  ///   epsilon outside (0, 1) or delta outside (0, 1).
  private_model(M model, learner_privacy_options options, R source = R())
      : model_(std::move(model)), options_(validated(options)), source_(std::move(source)) {}

  [[nodiscard]] decltype(auto) parameters() const { return model_.parameters(); }

  /// Loads the global parameters and keeps them: the update is measured from them.
  void set_parameters(const parameters_type& global) {
    model_.set_parameters(global);
    global_ = global;
  }

  template <class Data>
    requires TrainableOn<M, Data>
  local_result fit(const Data& data, const fit_config& config) {
    if (!global_) throw task_error("private_model: fit() before set_parameters(); there is no update to measure");
    local_result result = model_.fit(data, config);
    parameters_type trained = model_.parameters();
    const double bound = options_.clip_norm - rounding_margin(*global_, options_.clip_norm);
    if (!(bound > 0))
      throw task_error("private_model: the clip norm " + flotilla::detail::number(options_.clip_norm) +
                       " is below what rounding to the parameter type can move a model of this size");
    scale_delta(trained, *global_, clip_factor(delta_norm(trained, *global_, options_.threads), bound), trained,
                options_.threads);
    if (options_.local)
      add_gaussian_noise(trained.values(), local_stddev(), source_, mix_seed(config.seed, ++releases_), options_.threads);
    model_.set_parameters(trained);
    return result;
  }

  template <class Data>
    requires EvaluableOn<M, Data>
  [[nodiscard]] local_result evaluate(const Data& data) const {
    return model_.evaluate(data);
  }

  /// The local noise's standard deviation per value (0 without local noise).
  [[nodiscard]] double local_stddev() const {
    if (!options_.local) return 0;
    return options_.clip_norm * std::sqrt(2 * std::log(1.25 / options_.local->delta)) / options_.local->epsilon;
  }
  [[nodiscard]] const M& model() const { return model_; }
  [[nodiscard]] const learner_privacy_options& options() const { return options_; }

 private:
  static learner_privacy_options validated(learner_privacy_options options) {
    const auto shown = [](double value) { return flotilla::detail::number(value); };
    if (!(options.clip_norm > 0) || !std::isfinite(options.clip_norm))
      throw configuration_error("clip_norm must be positive and finite; got " + shown(options.clip_norm));
    if (options.local) {
      if (!(options.local->epsilon > 0 && options.local->epsilon < 1))
        throw configuration_error("local noise: epsilon must be in (0, 1), where the classic Gaussian mechanism's "
                                  "calibration holds; got " + shown(options.local->epsilon));
      if (!(options.local->delta > 0 && options.local->delta < 1))
        throw configuration_error("local noise: delta must be in (0, 1); got " + shown(options.local->delta));
    }
    return options;
  }

  M model_;
  learner_privacy_options options_;
  R source_;
  std::optional<parameters_type> global_;
  std::uint64_t releases_ = 0;
};

}  // namespace flotilla::privacy
