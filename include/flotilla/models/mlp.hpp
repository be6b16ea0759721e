#pragma once
// A multilayer perceptron classifier: ReLU hidden layers, softmax output, cross-entropy loss,
// minibatch SGD. With no hidden layer it is softmax (multinomial logistic) regression.

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <optional>
#include <cstdint>
#include <string>
#include <vector>

#include "flotilla/detail/config.hpp"
#include "flotilla/algorithms/fedprox.hpp"
#include "flotilla/algorithms/scaffold/step_correction.hpp"
#include "flotilla/arithmetic.hpp"
#include "flotilla/concepts/model.hpp"
#include "flotilla/data/dataset.hpp"
#include "flotilla/errors.hpp"
#include "flotilla/models/sgd.hpp"
#include "flotilla/parameters.hpp"
#include "flotilla/random.hpp"

namespace flotilla {

/// @brief Layer sizes {inputs, hidden..., classes}. Parameters: "layer<i>.weight" {out, in} and
/// "layer<i>.bias" {out} per layer, weights drawn He-normal from `seed`, biases zero.
/// Metrics: "loss" (mean cross-entropy) and "accuracy".
template <class Scalar = float>
class mlp : public step_correction<mlp<Scalar>, parameters<Scalar>> {
 public:
  using parameters_type = flotilla::parameters<Scalar>;
  using data_type = classification_data<Scalar>;
  using matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;

  explicit mlp(std::vector<std::size_t> layer_sizes, sgd_options options = {}, std::uint64_t seed = 0)
      : params_(make_layout(layer_sizes)), options_(options) {
    random_engine engine(seed);
    for (std::size_t layer = 0; layer + 1 < layer_sizes.size(); ++layer) {
      const double spread = std::sqrt(2.0 / static_cast<double>(layer_sizes[layer]));
      for (auto& weight : params_.values(weight_name(layer))) weight = static_cast<Scalar>(spread * standard_normal(engine));
    }
  }

  [[nodiscard]] const parameters_type& parameters() const { return params_; }
  void set_parameters(const parameters_type& params) {
    require_same_layout(params, params_, "new parameters", "the MLP");
    params_ = params;
  }


  [[nodiscard]] std::size_t layers() const { return params_.layout().tensors().size() / 2; }
  [[nodiscard]] std::size_t inputs() const { return params_.layout().tensors()[0].shape[1]; }
  [[nodiscard]] std::size_t classes() const { return params_.layout().tensors()[2 * layers() - 2].shape[0]; }

  local_result fit(const data_type& data, const fit_config& config);

  [[nodiscard]] local_result evaluate(const data_type& data) const;

  /// Class probabilities, one column per example column of `features`.
  [[nodiscard]] matrix predict(const matrix& features) const {
    std::vector<matrix> activations(layers() + 1);
    activations[0] = features;
    forward(activations);
    return activations.back();
  }

 private:
  static std::string weight_name(std::size_t layer) { return "layer" + std::to_string(layer) + ".weight"; }
  static std::string bias_name(std::size_t layer) { return "layer" + std::to_string(layer) + ".bias"; }

  static tensor_layout make_layout(const std::vector<std::size_t>& sizes) {
    if (sizes.size() < 2) throw configuration_error("an MLP needs at least an input and an output size");
    if (std::ranges::find(sizes, std::size_t{0}) != sizes.end()) throw configuration_error("MLP layer sizes must be positive");
    std::vector<tensor_spec> tensors;
    for (std::size_t layer = 0; layer + 1 < sizes.size(); ++layer) {
      tensors.push_back({weight_name(layer), {sizes[layer + 1], sizes[layer]}});
      tensors.push_back({bias_name(layer), {sizes[layer + 1]}});
    }
    return tensor_layout(std::move(tensors));
  }

  // activations[0] holds the input; fills the rest, the last with softmax probabilities.
  void forward(std::vector<matrix>& activations) const {
    for (std::size_t layer = 0; layer < layers(); ++layer) {
      auto& out = activations[layer + 1];
      out.noalias() = params_.matrix(2 * layer) * activations[layer];
      out.colwise() += params_.vector(2 * layer + 1);
      if (layer + 1 < layers()) out = out.cwiseMax(Scalar{0});
    }
    auto& logits = activations.back();
    for (Eigen::Index j = 0; j < logits.cols(); ++j) {
      auto column = logits.col(j);
      column.array() = (column.array() - column.maxCoeff()).exp();  // shifted: exp never overflows
      column /= column.sum();
    }
  }

  void check(const data_type& data) const {
    if (static_cast<std::size_t>(data.features.rows()) != inputs())
      throw layout_error("data has " + std::to_string(data.features.rows()) + " features; the model expects " +
                         std::to_string(inputs()));
    if (data.classes != 0 && static_cast<std::size_t>(data.classes) != classes())
      throw layout_error("data has " + std::to_string(data.classes) + " classes; the model predicts " +
                         std::to_string(classes()));
    for (auto label : data.labels)
      if (label < 0 || static_cast<std::size_t>(label) >= classes())
        throw data_error("label " + std::to_string(label) + " outside [0, " + std::to_string(classes()) + ")");
  }

  parameters_type params_;
  sgd_options options_;
};

template <class Scalar>
local_result mlp<Scalar>::evaluate(const data_type& data) const {
  check(data);
  constexpr Eigen::Index chunk = 1024;
  std::vector<matrix> activations(layers() + 1);
  double loss_sum = 0;
  std::size_t correct = 0;
  const auto count = static_cast<Eigen::Index>(data.size());
  for (Eigen::Index start = 0; start < count; start += chunk) {
    const auto size = std::min(chunk, count - start);
    activations[0] = data.features.middleCols(start, size);
    forward(activations);
    for (Eigen::Index j = 0; j < size; ++j) {
      const auto label = data.labels[static_cast<std::size_t>(start + j)];
      Eigen::Index predicted = 0;
      activations.back().col(j).maxCoeff(&predicted);
      correct += predicted == label;
      loss_sum -= std::log(std::max(double(activations.back()(label, j)), 1e-30));
    }
  }
  const double n = static_cast<double>(std::max<std::size_t>(data.size(), 1));
  return {static_cast<std::int64_t>(data.size()), {{"loss", loss_sum / n}, {"accuracy", double(correct) / n}}};
}

// Out of the class, so not inline: with FLOTILLA_SEPARATE_COMPILATION, mlp<float> is
// instantiated once in the compiled library instead of in every user's file.
template <class Scalar>
local_result mlp<Scalar>::fit(const data_type& data, const fit_config& config) {
  check(data);
  const auto options = options_.with(config);
  const auto rate = static_cast<Scalar>(options.learning_rate);
  std::vector<matrix> activations(layers() + 1);
  matrix delta, next_delta;
  double loss_sum = 0;
  std::size_t seen = 0;
  proximal_term<parameters_type> proximal(params_, options.proximal_mu);
  std::size_t steps = 0;
  detail::for_each_minibatch(data.size(), options, config.seed, [&](std::span<const std::size_t> batch) {
    proximal.before_step(params_);
    ++steps;
    const auto size = static_cast<Eigen::Index>(batch.size());
    activations[0].resize(data.features.rows(), size);
    for (Eigen::Index j = 0; j < size; ++j) activations[0].col(j) = data.features.col(static_cast<Eigen::Index>(batch[j]));
    forward(activations);
    // d(loss)/d(logits) of softmax cross-entropy: probabilities minus one-hot, over the batch.
    delta = activations.back();
    for (Eigen::Index j = 0; j < size; ++j) {
      const auto label = data.labels[batch[j]];
      loss_sum -= std::log(std::max(double(delta(label, j)), 1e-30));
      delta(label, j) -= Scalar{1};
    }
    delta /= static_cast<Scalar>(size);
    seen += batch.size();
    for (std::size_t layer = layers(); layer-- > 0;) {
      auto weight = params_.matrix(2 * layer);
      auto bias = params_.vector(2 * layer + 1);
      if (layer > 0)  // back through ReLU: its derivative is 1 where the activation is positive
        next_delta = (weight.transpose() * delta).cwiseProduct(
            (activations[layer].array() > Scalar{0}).template cast<Scalar>().matrix());
      weight.noalias() -= rate * delta * activations[layer].transpose();
      bias.noalias() -= rate * delta.rowwise().sum();
      if (layer > 0) delta.swap(next_delta);
    }
    proximal.after_step(params_, options.learning_rate);
    this->apply_step_correction(params_, options.learning_rate);
  });
  this->record_fit({steps, options.learning_rate});
  return {static_cast<std::int64_t>(data.size()), {{"loss", seen ? loss_sum / double(seen) : 0.0}}};
}

/// Softmax (multinomial logistic) regression: an MLP without hidden layers.
template <class Scalar = float>
class softmax_regression : public mlp<Scalar> {
 public:
  softmax_regression(std::size_t features, std::size_t classes, sgd_options options = {}, std::uint64_t seed = 0)
      : mlp<Scalar>({features, classes}, options, seed) {}
};

}  // namespace flotilla

#ifdef FLOTILLA_EXTERN_TEMPLATES  // compiled once in flotilla::compiled, with the federation around it
#include "flotilla/coordinators/synchronous.hpp"
#include "flotilla/round/learner.hpp"
#include "flotilla/transport/in_memory.hpp"
namespace flotilla {
extern template class basic_mean<parameters<float>, by_examples>;  // weighted_mean
extern template class mlp<float>;
extern template class softmax_regression<float>;
extern template class learner<mlp<float>, classification_data<float>>;
extern template class learner<softmax_regression<float>, classification_data<float>>;
extern template class in_memory_transport<learner<mlp<float>, classification_data<float>>>;
extern template class coordinator<in_memory_transport<learner<mlp<float>, classification_data<float>>>>;
}  // namespace flotilla
#endif
