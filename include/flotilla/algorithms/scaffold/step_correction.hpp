#pragma once
// What a model needs to train under SCAFFOLD (concepts/scaffold_trainable.hpp), written once:
// a model inherits step_correction and applies correction() in each local step.

#include <optional>
#include <utility>

#include "flotilla/arithmetic.hpp"
#include "flotilla/concepts/parameter_set.hpp"
#include "flotilla/concepts/scaffold_trainable.hpp"

namespace flotilla {

/// @brief Base of a model `Model` with parameters `P` that SCAFFOLD can correct.
///
/// The model calls `apply_step_correction(w, rate)` after each step's data update and
/// `record_fit({steps, rate})` at the end of each fit; learner.hpp does the rest.
template <class Model, ParameterSet P>
class step_correction {
 public:
  /// A constant added to every local step's gradient from now on (SCAFFOLD's c - c_i); none
  /// when empty. @throws layout_error if it does not fit the model.
  void set_step_correction(std::optional<P> correction) {
    if (correction)
      require_same_layout(*correction, static_cast<const Model&>(*this).parameters(), "step correction", "the model");
    correction_ = std::move(correction);
  }
  /// Steps and learning rate of the last fit.
  [[nodiscard]] fit_summary last_fit() const { return last_fit_; }

 protected:
  void apply_step_correction(P& w, double rate) const {
    if (correction_) axpy(w, static_cast<typename P::scalar_type>(-rate), *correction_);
  }
  void record_fit(fit_summary summary) { last_fit_ = summary; }

 private:
  std::optional<P> correction_;
  fit_summary last_fit_;
};

}  // namespace flotilla
