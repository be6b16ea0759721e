#pragma once
// Linear regression y = w.x + b trained by minibatch gradient descent on the mean squared error.

#include <Eigen/Core>

#include <cstddef>
#include <optional>
#include <string>

#include "flotilla/arithmetic.hpp"
#include "flotilla/concepts/model.hpp"
#include "flotilla/data/dataset.hpp"
#include "flotilla/models/sgd.hpp"
#include "flotilla/parameters.hpp"

namespace flotilla {

/// Parameters: "weight" {features} and "bias" {1}, starting at zero. Loss: mean of (w.x + b - y)^2.
template <class Scalar = double>
class linear_regression {
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

  /// A constant added to every local step's gradient from now on (SCAFFOLD's c - c_i); none
  /// when empty. @throws layout_error if it does not fit the model.
  void set_step_correction(std::optional<parameters_type> correction) {
    if (correction) require_same_layout(*correction, params_, "step correction", "the linear regression model");
    correction_ = std::move(correction);
  }
  /// Steps and learning rate of the last fit.
  [[nodiscard]] fit_summary last_fit() const { return last_fit_; }

  local_result fit(const data_type& data, const fit_config& config) {
    check(data);
    const auto options = options_.with(config);
    auto weight = params_.vector(std::size_t{0});
    Scalar& bias = params_.values().back();
    double loss_sum = 0;
    std::size_t loss_count = 0;
    detail::step_terms<parameters_type> terms(params_, options.proximal_mu, correction_ ? &*correction_ : nullptr);
    detail::for_each_minibatch(data.size(), options, config.seed, [&](std::span<const std::size_t> batch) {
      terms.before_step(params_);
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
      terms.after_step(params_, options.learning_rate);
    });
    last_fit_ = {terms.steps(), options.learning_rate};
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
  std::optional<parameters_type> correction_;
  fit_summary last_fit_;
};

}  // namespace flotilla
