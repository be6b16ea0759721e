#pragma once
// SCAFFOLD (Karimireddy et al. 2020, Algorithm 1 with option II), the learner side: see
// server.hpp for the algorithm. It never includes the server side.

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <optional>
#include <string>
#include <utility>

#include "flotilla/algorithms/scaffold/parameters.hpp"
#include "flotilla/arithmetic.hpp"
#include "flotilla/concepts/model.hpp"
#include "flotilla/concepts/scaffold_trainable.hpp"
#include "flotilla/errors.hpp"

namespace flotilla {


/// @brief The learner side: wraps a model so that it trains with SCAFFOLD's correction, keeps
/// its own control variate c_i from round to round, and answers with deltas.
template <class M>
  requires ScaffoldTrainable<M> && std::same_as<parameters_of_t<M>, parameters<typename parameters_of_t<M>::scalar_type>>
class scaffold_model {
 public:
  using scalar_type = typename parameters_of_t<M>::scalar_type;
  using parameters_type = scaffold_parameters<scalar_type>;
  using model_parameters = flotilla::parameters<scalar_type>;

  explicit scaffold_model(M model)
      : model_(std::move(model)), control_(zero_like(model_.parameters())), outgoing_(model_.parameters()) {}

  /// Before a fit: the global (x, c). After a fit: the deltas (y - x, c_i+ - c_i) for the reply.
  [[nodiscard]] const parameters_type& parameters() const { return outgoing_; }

  /// Loads x into the model and keeps c for the next fit.
  void set_parameters(const parameters_type& global) {
    if (global.size() != 2 * model_.parameters().size())
      throw layout_error("SCAFFOLD parameters hold " + std::to_string(global.size()) + " values; this model needs " +
                         std::to_string(2 * model_.parameters().size()));
    model_parameters x = model_.parameters();
    std::ranges::copy(global.model_values(), x.values().begin());
    model_.set_parameters(x);
    outgoing_ = global;
  }

  template <class Data>
    requires TrainableOn<M, Data>
  local_result fit(const Data& data, const fit_config& config) {
    const model_parameters x = model_.parameters();
    model_parameters correction = control_;  // c - c_i
    const auto c = outgoing_.control_values();
    auto corrected = correction.values();
    for (std::size_t i = 0; i < corrected.size(); ++i) corrected[i] = c[i] - corrected[i];
    model_.set_step_correction(std::move(correction));
    local_result result;
    try {
      result = model_.fit(data, config);
    } catch (...) {
      model_.set_step_correction(std::nullopt);
      throw;
    }
    model_.set_step_correction(std::nullopt);
    const auto [steps, rate] = model_.last_fit();
    if (steps == 0) throw task_error("SCAFFOLD learner took no steps: it has no data");
    // c_i+ - c_i = -c + (x - y) / (K lr);  y - x.
    const auto y = model_.parameters().values();
    const auto start = x.values();
    auto delta_model = outgoing_.model_values();
    auto delta_control = outgoing_.control_values();
    auto own = control_.values();
    const double scale = 1.0 / (double(steps) * rate);
    for (std::size_t i = 0; i < y.size(); ++i) {
      const auto control_delta = static_cast<scalar_type>(-double(c[i]) + (double(start[i]) - double(y[i])) * scale);
      delta_model[i] = y[i] - start[i];
      delta_control[i] = control_delta;  // overwrites c[i], read above for this i only
      own[i] += control_delta;
    }
    return result;
  }

  template <class Data>
    requires EvaluableOn<M, Data>
  [[nodiscard]] local_result evaluate(const Data& data) const {
    return model_.evaluate(data);
  }

  /// This learner's control variate c_i.
  [[nodiscard]] const model_parameters& control() const { return control_; }
  [[nodiscard]] const M& model() const { return model_; }

 private:
  static model_parameters zero_like(const model_parameters& like) {
    model_parameters zero = like;
    fill(zero, scalar_type{0});
    return zero;
  }

  M model_;
  model_parameters control_;
  parameters_type outgoing_;
};

}  // namespace flotilla
