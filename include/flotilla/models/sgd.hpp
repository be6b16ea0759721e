#pragma once
// Minibatch SGD settings shared by the reference models, and the per-round overrides a
// coordinator may send in fit_config::values.

#include <cstddef>
#include <cstdint>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include "flotilla/concepts/model.hpp"
#include "flotilla/errors.hpp"
#include "flotilla/random.hpp"

namespace flotilla {

struct sgd_options {
  double learning_rate = 0.1;
  std::size_t epochs = 1;       ///< passes over the local data per round
  std::size_t batch_size = 32;  ///< 0 means the whole local dataset (full-batch gradient descent)

  /// These options with "learning_rate", "epochs" and "batch_size" from `config` where set.
  /// @throws configuration_error for a rate that is not positive or counts that are not whole.
  [[nodiscard]] sgd_options with(const fit_config& config) const {
    const auto count = [&](const char* key, std::size_t fallback) {
      const double value = config.get(key, static_cast<double>(fallback));
      if (!(value >= 0 && value < 1e15) || value != static_cast<double>(static_cast<std::size_t>(value)))
        throw configuration_error(std::string(key) + " must be a whole number >= 0; got " + std::to_string(value));
      return static_cast<std::size_t>(value);
    };
    sgd_options out{config.get("learning_rate", learning_rate), count("epochs", epochs),
                    count("batch_size", batch_size)};
    if (!(out.learning_rate > 0))
      throw configuration_error("learning_rate must be positive; got " + std::to_string(out.learning_rate));
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
