#pragma once
// The default rules: the mean weighted by each learner's example count (FedAvg, McMahan et al.
// 2017) and the plain unweighted mean. Both stream: memory is one accumulator the size of the
// model, whatever the number of learners.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>

#include "flotilla/arithmetic.hpp"
#include "flotilla/concepts/aggregator.hpp"
#include "flotilla/concepts/parameter_set.hpp"

namespace flotilla {

/// Weight of an update in `weighted_mean`: the examples it trained on.
struct by_examples {
  static double weight(std::int64_t examples) { return static_cast<double>(examples); }
};

/// Weight of an update in `mean`: one, whatever its example count.
struct equal_weights {
  static double weight(std::int64_t) { return 1.0; }
};

/// @brief Running weighted mean of updates: sum(w_i * x_i) / sum(w_i) over the updates that
/// arrived. Weights renormalize over the learners that actually replied.
template <ParameterSet P, class Weighting>
class basic_mean {
 public:
  using scalar_type = typename P::scalar_type;

  void start(const P& global) {
    if (!sum_ || !same_layout(*sum_, global)) sum_ = global;  // reuse the buffer across rounds
    fill(*sum_, scalar_type{0});
    total_weight_ = 0;
    accepted_ = 0;
  }

  void accept(const P& update, std::int64_t examples) {
    const double weight = Weighting::weight(examples);
    if (!sum_) throw std::logic_error("accept() before start(): the rule has no layout yet");
    axpy(*sum_, static_cast<scalar_type>(weight), update);
    total_weight_ += weight;
    ++accepted_;
  }

  void merge(const basic_mean& other) {
    if (other.accepted_ == 0) return;
    if (!sum_) sum_ = other.sum_;
    else axpy(*sum_, scalar_type{1}, *other.sum_);
    total_weight_ += other.total_weight_;
    accepted_ += other.accepted_;
  }

  [[nodiscard]] std::size_t accepted() const { return accepted_; }
  /// Sum of the weights accepted so far (examples for FedAvg, updates for the plain mean).
  [[nodiscard]] double total_weight() const { return total_weight_; }

  /// @throws std::logic_error when no update was accepted (there is no mean of nothing).
  [[nodiscard]] P result() const {
    if (accepted_ == 0 || total_weight_ <= 0)
      throw std::logic_error("mean of a round with no accepted updates");
    P out = *sum_;
    scale(out, static_cast<scalar_type>(1.0 / total_weight_));
    return out;
  }

 private:
  std::optional<P> sum_;  // optional: a ParameterSet need not be default-constructible
  double total_weight_ = 0;
  std::size_t accepted_ = 0;
};

/// FedAvg: the mean weighted by example count. With equal counts it is the plain mean.
template <ParameterSet P>
using weighted_mean = basic_mean<P, by_examples>;

/// Every update counts the same, whatever its example count.
template <ParameterSet P>
using mean = basic_mean<P, equal_weights>;

}  // namespace flotilla
