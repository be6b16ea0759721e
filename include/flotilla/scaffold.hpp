#pragma once
// SCAFFOLD (Karimireddy et al. 2020, Algorithm 1 with option II), both sides. Control variates
// correct each learner's drift on non-IID data: the server keeps c, learner i keeps c_i, and
// every local step follows g_i(y) - c_i + c instead of the gradient g_i(y) alone.
//
//   learner: y <- x, K steps of y <- y - lr (g_i(y) - c_i + c)
//            c_i+ <- c_i - c + (x - y) / (K lr);  replies (y - x, c_i+ - c_i);  c_i <- c_i+
//   server:  x <- x + lr_g mean(y - x),  c <- c + (|S| / N) mean(c_i+ - c_i)
//
// The control variate travels with the model in one ParameterSet, `scaffold_parameters`: the
// model's tensors followed by the same tensors named "control/<name>". Its type fixes what each
// message holds: a task carries the global (x, c), a reply the deltas (y - x, c_i+ - c_i). So the
// `scaffold` rule, which reads deltas, and `scaffold_model`, which sends them, agree through the
// type system; neither can be paired with a rule or learner expecting full parameters.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "flotilla/arithmetic.hpp"
#include "flotilla/concepts/model.hpp"
#include "flotilla/errors.hpp"
#include "flotilla/models/sgd.hpp"
#include "flotilla/parameters.hpp"
#include "flotilla/serialization.hpp"

namespace flotilla {

/// A model's parameters followed by a control variate of the same layout, in one buffer.
template <std::floating_point Scalar>
class scaffold_parameters : public parameters<Scalar> {
 public:
  /// The model part equal to `model`, the control part zero.
  explicit scaffold_parameters(const parameters<Scalar>& model)
      : parameters<Scalar>(doubled(model.layout())) {
    std::ranges::copy(model.values(), this->values().begin());
  }
  /// Adopts a buffer whose layout is a model's followed by its "control/" copy.
  /// @throws layout_error otherwise.
  static scaffold_parameters adopt(parameters<Scalar> whole) {
    const auto& tensors = whole.layout().tensors();
    const auto half = tensors.size() / 2;
    bool paired = tensors.size() % 2 == 0;
    for (std::size_t i = 0; paired && i < half; ++i)
      paired = tensors[half + i].name == "control/" + tensors[i].name && tensors[half + i].shape == tensors[i].shape;
    if (!paired) throw layout_error("parameters are not a model followed by its control variate");
    return scaffold_parameters(adopted{}, std::move(whole));
  }

  [[nodiscard]] std::span<Scalar> model_values() { return this->values().first(this->size() / 2); }
  [[nodiscard]] std::span<const Scalar> model_values() const { return this->values().first(this->size() / 2); }
  [[nodiscard]] std::span<Scalar> control_values() { return this->values().subspan(this->size() / 2); }
  [[nodiscard]] std::span<const Scalar> control_values() const { return this->values().subspan(this->size() / 2); }

 private:
  struct adopted {};
  scaffold_parameters(adopted, parameters<Scalar> whole) : parameters<Scalar>(std::move(whole)) {}

  static tensor_layout doubled(const tensor_layout& model) {
    auto tensors = model.tensors();
    for (const auto& tensor : model.tensors()) tensors.push_back({"control/" + tensor.name, tensor.shape});
    return tensor_layout(std::move(tensors));
  }
};

template <std::floating_point Scalar>
struct wire_codec<scaffold_parameters<Scalar>> {
  static void write(wire_writer& out, const scaffold_parameters<Scalar>& p) {
    wire_codec<parameters<Scalar>>::write(out, p);
  }
  static scaffold_parameters<Scalar> read(wire_reader& in) {
    try {
      return scaffold_parameters<Scalar>::adopt(wire_codec<parameters<Scalar>>::read(in));
    } catch (const layout_error& error) {
      throw decode_error(error.what());
    }
  }
};

/// The server side's settings.
struct scaffold_options {
  double learning_rate = 1.0;  ///< the global step size lr_g (1 in the paper's experiments)
  std::size_t learners = 0;    ///< N, every learner in the federation (not just those selected)
};

/// @brief The SCAFFOLD server rule: streams the learners' deltas and steps the global model and
/// control variate. Every reply counts the same, as in the paper.
template <std::floating_point Scalar>
class scaffold {
 public:
  using parameters_type = scaffold_parameters<Scalar>;

  /// @throws configuration_error without a positive learner count and learning rate.
  explicit scaffold(scaffold_options options) : options_(options) {
    if (options_.learners == 0) throw configuration_error("SCAFFOLD needs the number of learners N");
    if (!(options_.learning_rate > 0)) throw configuration_error("SCAFFOLD's learning rate must be positive");
  }

  void start(const parameters_type& global) {
    global_ = global;
    sum_ = global;
    fill(*sum_, Scalar{0});
    accepted_ = 0;
  }
  void accept(const parameters_type& deltas, std::int64_t) {
    axpy(*sum_, Scalar{1}, deltas);
    ++accepted_;
  }
  void merge(const scaffold& other) {
    if (other.accepted_ == 0) return;
    axpy(*sum_, Scalar{1}, *other.sum_);
    accepted_ += other.accepted_;
  }
  [[nodiscard]] std::size_t accepted() const { return accepted_; }

  /// @throws configuration_error if more learners replied than N.
  [[nodiscard]] parameters_type result() const {
    if (!global_ || accepted_ == 0) throw std::logic_error("SCAFFOLD result of a round with no accepted updates");
    if (accepted_ > options_.learners)
      throw configuration_error(std::to_string(accepted_) + " learners replied but SCAFFOLD was told there are " +
                                std::to_string(options_.learners));
    parameters_type out = *global_;
    const auto model_step = static_cast<Scalar>(options_.learning_rate / double(accepted_));
    const auto control_step = static_cast<Scalar>(1.0 / double(options_.learners));  // (|S| / N) x mean
    auto model = out.model_values();
    auto control = out.control_values();
    const auto sum_model = sum_->model_values();
    const auto sum_control = sum_->control_values();
    for (std::size_t i = 0; i < model.size(); ++i) model[i] += model_step * sum_model[i];
    for (std::size_t i = 0; i < control.size(); ++i) control[i] += control_step * sum_control[i];
    return out;
  }

 private:
  scaffold_options options_;
  std::optional<parameters_type> global_, sum_;
  std::size_t accepted_ = 0;
};

/// What a model must offer to train under SCAFFOLD: a constant added to each step's gradient,
/// and how many steps its last fit took at which rate. The reference models offer both.
template <class M>
concept ScaffoldTrainable = Model<M> && requires(M& m, const M& cm, std::optional<parameters_of_t<M>> correction) {
  m.set_step_correction(correction);
  { cm.last_fit() } -> std::same_as<fit_summary>;
};

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
    if (steps == 0) throw std::runtime_error("SCAFFOLD learner took no steps: it has no data");
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
