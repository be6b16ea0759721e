#pragma once
// Linear regression y = w.x + b trained by minibatch gradient descent on the mean squared error.

#include <Eigen/Core>

#include <cstddef>
#include <optional>
#include <string>

#include "flotilla/detail/config.hpp"
#include "flotilla/algorithms/fedprox.hpp"
#include "flotilla/algorithms/scaffold/step_correction.hpp"
#include "flotilla/arithmetic.hpp"
#include "flotilla/concepts/model.hpp"
#include "flotilla/data/dataset.hpp"
#include "flotilla/models/sgd.hpp"
#include "flotilla/parameters.hpp"

namespace flotilla {

/// Parameters: "weight" {features} and "bias" {1}, starting at zero. Loss: mean of (w.x + b - y)^2.
template <class Scalar = double>
class linear_regression : public step_correction<linear_regression<Scalar>, parameters<Scalar>> {
 public:
  using parameters_type = flotilla::parameters<Scalar>;
  using data_type = regression_data<Scalar>;

  explicit linear_regression(std::size_t features, sgd_options options = {})
      : params_(tensor_layout({{"weight", {features}}, {"bias", {1}}})), options_(options) {}

  [[nodiscard]] const parameters_type& parameters() const { return params_; }
  void set_parameters(const parameters_type& params) {
    require_same_layout(params, params_, "new parameters", "the linear regression model");
    params_ = params;
  }


  local_result fit(const data_type& data, const fit_config& config) {
    check(data);
    const auto options = options_.with(config);
    auto weight = params_.vector(std::size_t{0});
    Scalar& bias = params_.values().back();
    double loss_sum = 0;
    std::size_t loss_count = 0;
    proximal_term<parameters_type> proximal(params_, options.proximal_mu);
    std::size_t steps = 0;
    detail::for_each_minibatch(data.size(), options, config.seed, [&](std::span<const std::size_t> batch) {
      proximal.before_step(params_);
      ++steps;
      Eigen::Matrix<Scalar, Eigen::Dynamic, 1> gradient = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>::Zero(weight.size());
      Scalar bias_gradient = 0;
      for (auto i : batch) {
        const auto x = data.features.col(static_cast<Eigen::Index>(i));
        const Scalar residual = weight.dot(x) + bias - data.targets(static_cast<Eigen::Index>(i));
        gradient += residual * x;
        bias_gradient += residual;
        loss_sum += double(residual) * double(residual);
      }
      loss_count += batch.size();
      const auto step = static_cast<Scalar>(2.0 * options.learning_rate / static_cast<double>(batch.size()));
      weight -= step * gradient;
      bias -= step * bias_gradient;
      proximal.after_step(params_, options.learning_rate);
      this->apply_step_correction(params_, options.learning_rate);
    });
    this->record_fit({steps, options.learning_rate});
    return {static_cast<std::int64_t>(data.size()), {{"loss", loss_count ? loss_sum / double(loss_count) : 0.0}}};
  }

  [[nodiscard]] local_result evaluate(const data_type& data) const {
    check(data);
    const auto weight = params_.vector(std::size_t{0});
    const Scalar bias = params_.values().back();
    const Eigen::Matrix<Scalar, Eigen::Dynamic, 1> residuals =
        (weight.transpose() * data.features).transpose().array() + bias - data.targets.array();
    const double mse = data.size() ? double(residuals.squaredNorm()) / double(data.size()) : 0.0;
    return {static_cast<std::int64_t>(data.size()), {{"loss", mse}}};
  }

 private:
  void check(const data_type& data) const {
    if (static_cast<std::size_t>(data.features.rows()) != params_.size() - 1)
      throw layout_error("data has " + std::to_string(data.features.rows()) + " features; the model expects " +
                         std::to_string(params_.size() - 1));
  }

  parameters_type params_;
  sgd_options options_;
};

}  // namespace flotilla

#ifdef FLOTILLA_EXTERN_TEMPLATES  // compiled once in flotilla::compiled, with the federation around it
#include "flotilla/coordinators/synchronous.hpp"
#include "flotilla/round/learner.hpp"
#include "flotilla/transport/in_memory.hpp"
namespace flotilla {
extern template class basic_mean<parameters<double>, by_examples>;  // weighted_mean
extern template class linear_regression<double>;
extern template class learner<linear_regression<double>, regression_data<double>>;
extern template class in_memory_transport<learner<linear_regression<double>, regression_data<double>>>;
extern template class coordinator<in_memory_transport<learner<linear_regression<double>, regression_data<double>>>>;
}  // namespace flotilla
#endif
