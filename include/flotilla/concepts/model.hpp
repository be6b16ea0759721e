#pragma once
// The Model contract: parameters to get and set, and local training and evaluation.

#include <concepts>
#include <type_traits>

#include "flotilla/concepts/parameter_set.hpp"
#include "flotilla/fwd.hpp"

namespace flotilla {

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

namespace detail {
// See explain_parameter_set: one error naming the first unmet requirement.
template <class M>
consteval bool explain_model() {
  if constexpr (Model<M>) return true;
  else if constexpr (!requires(const M& m) { m.parameters(); })
    static_assert(unmet_requirement<M>, "Model requirement 1: cm.parameters() on a const model is missing; it returns the model's ParameterSet");
  else if constexpr (!ParameterSet<parameters_of_t<M>>)
    return explain_parameter_set<parameters_of_t<M>>();
  else
    static_assert(unmet_requirement<M>, "Model requirement 2: m.set_parameters(p) must accept the type parameters() returns");
  return false;
}

template <class M, class Data>
consteval bool explain_trainable_on() {
  if constexpr (TrainableOn<M, Data>) return true;
  else if constexpr (!Model<M>) return explain_model<M>();
  else if constexpr (!requires(M& m, const Data& data, const fit_config& config) { m.fit(data, config); })
    static_assert(unmet_requirement<M>, "TrainableOn requirement: m.fit(data, config) is missing for this data type (const Data&, const flotilla::fit_config&)");
  else
    static_assert(unmet_requirement<M>, "TrainableOn requirement: m.fit(data, config) must return flotilla::local_result");
  return false;
}
}  // namespace detail

}  // namespace flotilla
