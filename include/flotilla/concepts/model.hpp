#pragma once
// The Model contract and the small value types it speaks in (configuration, local results).

#include <concepts>
#include <cstdint>
#include <map>
#include <string>
#include <type_traits>

#include "flotilla/concepts/parameter_set.hpp"

namespace flotilla {

/// Named scalar results such as "loss" or "accuracy"; ordered so exports are stable.
using metrics = std::map<std::string, double>;

/// What the coordinator tells a learner about one round of local work.
struct fit_config {
  std::uint64_t round = 0;  ///< the round this work belongs to (1-based)
  std::uint64_t seed = 0;   ///< per learner and round, for reproducible shuffling
  std::map<std::string, double> values;  ///< user settings, e.g. "epochs", "learning_rate"

  /// The value named `key`, or `fallback` when the coordinator did not set it.
  [[nodiscard]] double get(const std::string& key, double fallback) const {
    auto found = values.find(key);
    return found == values.end() ? fallback : found->second;
  }
};

/// What a learner's local training or evaluation reports back.
struct local_result {
  /// Examples seen (training) or evaluated. Signed so that a buggy model's negative count
  /// reaches the coordinator's validation and is rejected there, not wrapped to a huge weight.
  std::int64_t examples = 0;
  flotilla::metrics metrics;
};

/// The parameter type a model exposes.
template <class M>
using parameters_of_t = std::remove_cvref_t<decltype(std::declval<const M&>().parameters())>;

/// @brief A model whose parameters can be read and replaced.
///
/// Requirements, each with its reason:
///  1. `cm.parameters()` on a const model returns its `ParameterSet` (by value or const
///     reference): learners send it after training.
///  2. `m.set_parameters(p)` accepts that type: learners load the global parameters.
///
/// Semantic rule: after `m.set_parameters(p)`, `m.parameters()` equals `p`.
///
/// @code
/// struct constant_model {
///   my_parameters p;
///   const my_parameters& parameters() const { return p; }
///   void set_parameters(const my_parameters& q) { p = q; }
/// };
/// @endcode
template <class M>
concept Model = requires(M& m, const M& cm) {
  requires ParameterSet<parameters_of_t<M>>;
  m.set_parameters(cm.parameters());
};

/// @brief A model that trains on local data of type `Data`.
///
/// Requirement: `m.fit(data, config)` trains in place and returns a `local_result` with the
/// number of examples seen (the default weight of this learner's update) and training metrics.
template <class M, class Data>
concept TrainableOn = Model<M> && requires(M& m, const Data& data, const fit_config& config) {
  { m.fit(data, config) } -> std::same_as<local_result>;
};

/// @brief A model that evaluates on local data of type `Data` without changing.
///
/// Requirement: `cm.evaluate(data)` on a const model returns a `local_result` with the number
/// of examples evaluated and metrics (by convention "loss" and, for classifiers, "accuracy").
template <class M, class Data>
concept EvaluableOn = Model<M> && requires(const M& m, const Data& data) {
  { m.evaluate(data) } -> std::same_as<local_result>;
};

}  // namespace flotilla
