#pragma once
// Minibatch SGD settings shared by the reference models, and the per-round overrides a
// coordinator may send in fit_config::values.

#include <cstddef>
#include <cstdint>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "flotilla/arithmetic.hpp"
#include "flotilla/concepts/model.hpp"
#include "flotilla/concepts/parameter_set.hpp"
#include "flotilla/errors.hpp"
#include "flotilla/random.hpp"

namespace flotilla {

struct sgd_options {
  double learning_rate = 0.1;
  std::size_t epochs = 1;       ///< passes over the local data per round
  std::size_t batch_size = 32;  ///< 0 means the whole local dataset (full-batch gradient descent)
  /// FedProx's mu (Li et al. 2020): adds (mu / 2) ||w - w_global||^2 to the local loss, where
  /// w_global are the parameters the round's fit started from. 0 is plain local SGD (FedAvg).
  double proximal_mu = 0;

  /// These options with "learning_rate", "epochs", "batch_size" and "proximal_mu" from `config`
  /// where set. @throws configuration_error for a rate that is not positive, counts that are not
  /// whole, or a negative mu.
  [[nodiscard]] sgd_options with(const fit_config& config) const {
    const auto count = [&](const char* key, std::size_t fallback) {
      const double value = config.get(key, static_cast<double>(fallback));
      if (!(value >= 0 && value < 1e15) || value != static_cast<double>(static_cast<std::size_t>(value)))
        throw configuration_error(std::string(key) + " must be a whole number >= 0; got " + std::to_string(value));
      return static_cast<std::size_t>(value);
    };
    sgd_options out{config.get("learning_rate", learning_rate), count("epochs", epochs),
                    count("batch_size", batch_size), config.get("proximal_mu", proximal_mu)};
    if (!(out.learning_rate > 0))
      throw configuration_error("learning_rate must be positive; got " + std::to_string(out.learning_rate));
    if (!(out.proximal_mu >= 0))
      throw configuration_error("proximal_mu must be >= 0; got " + std::to_string(out.proximal_mu));
    return out;
  }
};

/// What one local fit did: the minibatch steps it took and at which rate (SCAFFOLD needs both).
struct fit_summary {
  std::size_t steps = 0;
  double learning_rate = 0;
};

namespace detail {

/// Visits minibatches of a shuffled order of `examples` for each epoch: `step(batch_indices)`.
/// The order is drawn from `seed`, so a learner's training is reproducible.
template <class Step>
void for_each_minibatch(std::size_t examples, const sgd_options& options, std::uint64_t seed, Step step) {
  if (examples == 0) return;
  const std::size_t batch = options.batch_size == 0 ? examples : options.batch_size;
  std::vector<std::size_t> order(examples);
  std::iota(order.begin(), order.end(), std::size_t{0});
  random_engine engine(seed);
  for (std::size_t epoch = 0; epoch < options.epochs; ++epoch) {
    if (options.batch_size != 0) shuffle(std::span<std::size_t>(order), engine);
    for (std::size_t start = 0; start < examples; start += batch) {
      const auto size = std::min(batch, examples - start);
      step(std::span<const std::size_t>(order).subspan(start, size));
    }
  }
}

/// Terms added to every local step's gradient beyond the data's own:
///  - FedProx's proximal term mu (w - w_global), where w_global are the parameters the fit
///    started from, taken at the same w as the data gradient;
///  - a constant correction (SCAFFOLD's c - c_i), when one is given.
/// Call `before_step(w)` before a step's data update and `after_step(w, rate)` after it.
template <ParameterSet P>
class step_terms {
 public:
  step_terms(const P& start, double mu, const P* correction) : mu_(mu), correction_(correction) {
    if (mu_ > 0) {
      anchor_.emplace(start);
      pull_.emplace(start);
    }
  }
  void before_step(const P& w) {
    ++steps_;
    if (!anchor_) return;
    const auto now = w.values();
    const auto anchor = anchor_->values();
    auto pull = pull_->values();
    for (std::size_t i = 0; i < pull.size(); ++i) pull[i] = now[i] - anchor[i];
  }
  void after_step(P& w, double rate) {
    using scalar = typename P::scalar_type;
    if (anchor_) axpy(w, static_cast<scalar>(-rate * mu_), *pull_);
    if (correction_) axpy(w, static_cast<scalar>(-rate), *correction_);
  }
  [[nodiscard]] std::size_t steps() const { return steps_; }

 private:
  double mu_;
  const P* correction_;
  std::optional<P> anchor_, pull_;
  std::size_t steps_ = 0;
};

}  // namespace detail
}  // namespace flotilla
