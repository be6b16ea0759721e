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


}  // namespace detail
}  // namespace flotilla
