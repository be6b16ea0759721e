#pragma once
// The ScaffoldTrainable contract: a model SCAFFOLD can correct (algorithms/scaffold/).

#include <concepts>
#include <cstddef>
#include <optional>

#include "flotilla/concepts/model.hpp"

namespace flotilla {

/// How a model's last fit went: SCAFFOLD derives the new control variate from it.
struct fit_summary {
  std::size_t steps = 0;     ///< local steps taken (K)
  double learning_rate = 0;  ///< their rate (lr)
};

/// @brief A model that can train under SCAFFOLD's drift correction.
///
/// Requirements, each with its reason:
///  1. `m.set_step_correction(c)` takes an optional parameter set added to every local step's
///     gradient until it is reset with an empty optional: SCAFFOLD steps along g(y) + (c - c_i).
///  2. `cm.last_fit()` returns the `fit_summary` of the last fit: the control variate update
///     divides by K lr.
///
/// The reference models inherit both from `flotilla::scaffold::step_correction` (see
/// algorithms/scaffold/step_correction.hpp).
template <class M>
concept ScaffoldTrainable = Model<M> && requires(M& m, const M& cm, std::optional<parameters_of_t<M>> correction) {
  m.set_step_correction(correction);
  { cm.last_fit() } -> std::same_as<fit_summary>;
};

}  // namespace flotilla
