#pragma once
// SCAFFOLD (Karimireddy et al. 2020, Algorithm 1 with option II), the server side. Control
// variates correct each learner's drift on non-IID data: the server keeps c, learner i keeps c_i,
// and every local step follows g_i(y) - c_i + c instead of the gradient g_i(y) alone.
//
//   learner: y <- x, K steps of y <- y - lr (g_i(y) - c_i + c)           (learner.hpp)
//            c_i+ <- c_i - c + (x - y) / (K lr);  replies (y - x, c_i+ - c_i);  c_i <- c_i+
//   server:  x <- x + lr_g mean(y - x),  c <- c + (|S| / N) mean(c_i+ - c_i)   (this file)

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "flotilla/algorithms/scaffold/parameters.hpp"
#include "flotilla/arithmetic.hpp"
#include "flotilla/errors.hpp"

namespace flotilla {

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
    if (!global_ || accepted_ == 0) throw usage_error("SCAFFOLD result of a round with no accepted updates");
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


}  // namespace flotilla
