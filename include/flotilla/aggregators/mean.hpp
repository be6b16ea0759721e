#pragma once
// The default rules: the mean weighted by each learner's example count (FedAvg, McMahan et al.
// 2017) and the plain unweighted mean. Both stream: memory is one accumulator the size of the
// model, whatever the number of learners.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "flotilla/arithmetic.hpp"
#include "flotilla/compression/codec.hpp"
#include "flotilla/concepts/aggregator.hpp"
#include "flotilla/concepts/parameter_set.hpp"
#include "flotilla/detail/parallel.hpp"

namespace flotilla {

namespace detail {
// fold_weighted's pass with some updates coded: per slice of the sum, each update's base is
// folded in and its change decoded straight into the same slice.
inline void fold_coded(float* out, std::span<const float* const> sources,
                       std::span<const compression::coded_values* const> deltas, std::span<const float> weights,
                       bool overwrite, std::size_t begin, std::size_t end) {
  constexpr std::size_t block = 32768;
  for (std::size_t first = begin; first < end; first += block) {
    const std::size_t last = std::min(end, first + block);
    for (std::size_t u = 0; u < sources.size(); ++u) {
      fold_weighted<float>(out, sources.subspan(u, 1), weights.subspan(u, 1), u == 0 && overwrite, first, last);
      if (deltas[u]) compression::add_decoded(*deltas[u], first, std::span(out + first, last - first), weights[u]);
    }
  }
}
}  // namespace detail

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
///
/// Folding is one pass over the model per batch of waiting updates, split across `threads`
/// (0: one per core) for models large enough to repay it. Every scalar sees the same additions
/// in the same order however the updates were batched, so results do not depend on timing.
template <ParameterSet P, class Weighting>
class basic_mean {
 public:
  using scalar_type = typename P::scalar_type;
  /// FedAvg weighs by the learners' example counts; the plain mean does not.
  static constexpr bool weighs_by_examples = std::is_same_v<Weighting, by_examples>;

  basic_mean() = default;
  /// Folds large models on `threads` threads (0, the default: one per core).
  explicit basic_mean(std::size_t threads) : threads_(threads) {}

  void start(const P& global) {
    if (!sum_ || !same_layout(*sum_, global)) sum_ = make_for_overwrite(global);  // reused across rounds
    total_weight_ = 0;  // the first fold overwrites the sum, so it is never cleared separately
    accepted_ = 0;
  }

  void accept(const P& update, std::int64_t examples) {
    const weighted_update<P> one{&update, examples};
    accept_batch(std::span(&one, 1));
  }

  /// Folds the updates in order in one pass: the same sums as accepting them one by one.
  void accept_batch(std::span<const weighted_update<P>> updates) {
    std::vector<coded_update<P>> plain;
    plain.reserve(updates.size());
    for (const auto& update : updates) plain.push_back({update.parameters, nullptr, update.examples});
    accept_coded(plain);
  }

  /// The same, for updates of which some arrive coded: each coded update's base is folded like a
  /// plain update and its change decoded into the sum a slice at a time, never expanded whole.
  void accept_coded(std::span<const coded_update<P>> updates) {
    if (!sum_) throw usage_error("accept() before start(): the rule has no layout yet");
    if (updates.empty()) return;
    std::vector<const scalar_type*> sources;
    std::vector<const compression::coded_values*> deltas;
    std::vector<scalar_type> weights;
    double batch_weight = 0;  // added to the total only once the whole batch is folded
    for (const auto& update : updates) {
      require_same_layout(*update.parameters, *sum_);
      if (update.delta && (!std::is_same_v<scalar_type, float> || update.delta->count != sum_->values().size()))
        throw layout_error("a coded update of " + std::to_string(update.delta->count) + " values for parameters of " +
                           std::to_string(sum_->values().size()) + " " + std::to_string(8 * sizeof(scalar_type)) +
                           "-bit scalars (coded values are float32)");
      sources.push_back(update.parameters->values().data());
      deltas.push_back(update.delta);
      const double weight = Weighting::weight(update.examples);
      weights.push_back(static_cast<scalar_type>(weight));
      batch_weight += weight;
    }
    scalar_type* out = sum_->values().data();
    const bool first = accepted_ == 0;
    const bool coded = std::ranges::any_of(deltas, [](const auto* delta) { return delta != nullptr; });
    detail::for_each_piece(sum_->values().size(), threads_, [&](std::size_t begin, std::size_t end) {
      if (!coded) return detail::fold_weighted<scalar_type>(out, sources, weights, first, begin, end);
      if constexpr (std::is_same_v<scalar_type, float>) detail::fold_coded(out, sources, deltas, weights, first, begin, end);
    });
    total_weight_ += batch_weight;
    accepted_ += updates.size();
  }

  void merge(const basic_mean& other) {
    if (other.accepted_ == 0) return;
    if (!sum_ || accepted_ == 0) sum_ = other.sum_;
    else axpy(*sum_, scalar_type{1}, *other.sum_);
    total_weight_ += other.total_weight_;
    accepted_ += other.accepted_;
  }

  /// What accept() built this round, for a rule in another process to merge_partial(): the
  /// update count, the total weight and the weighted sum. (A template on wire/codec.hpp's
  /// wire_writer, so that this header needs no serialization library.)
  template <class Writer>
  void write_partial(Writer& out) const {
    out.write(static_cast<std::uint64_t>(accepted_));
    out.write(total_weight_);
    if (accepted_ > 0) wire_codec<P>::write(out, *sum_);
  }

  /// Folds in a state written by write_partial() of the same rule, as merge() would.
  /// @throws decode_error if the bytes are malformed, layout_error if the sum's layout differs.
  template <class Reader>
  void merge_partial(Reader& in) {
    const auto accepted = in.template read<std::uint64_t>("partial update count");
    const auto weight = in.template read<double>("partial total weight");
    if (accepted == 0) return;
    if (!std::isfinite(weight) || weight <= 0)
      throw decode_error("a partial mean of " + std::to_string(accepted) + " updates has total weight " +
                         std::to_string(weight));
    if (!sum_) throw usage_error("merge_partial() before start(): the rule has no layout yet");
    const P sum = wire_codec<P>::read(in);
    require_same_layout(sum, *sum_, "the partial sum", "this round's model");
    if (accepted_ == 0) detail::parallel_copy(std::span<const scalar_type>(sum.values()), sum_->values());
    else axpy(*sum_, scalar_type{1}, sum);
    total_weight_ += weight;
    accepted_ += static_cast<std::size_t>(accepted);
  }

  [[nodiscard]] std::size_t accepted() const { return accepted_; }
  /// Sum of the weights accepted so far (examples for FedAvg, updates for the plain mean).
  [[nodiscard]] double total_weight() const { return total_weight_; }

  /// @throws std::logic_error when no update was accepted (there is no mean of nothing).
  [[nodiscard]] P result() const {
    if (accepted_ == 0 || total_weight_ <= 0)
      throw usage_error("mean of a round with no accepted updates");
    P out = make_for_overwrite(*sum_);
    const auto factor = static_cast<scalar_type>(1.0 / total_weight_);
    const scalar_type* sum = sum_->values().data();
    scalar_type* mean = out.values().data();
    detail::for_each_piece(out.values().size(), threads_, [&](std::size_t begin, std::size_t end) {
      for (std::size_t i = begin; i < end; ++i) mean[i] = sum[i] * factor;
    });
    return out;
  }

 private:
  std::optional<P> sum_;  // optional: a ParameterSet need not be default-constructible
  double total_weight_ = 0;
  std::size_t accepted_ = 0;
  std::size_t threads_ = 0;
};

/// FedAvg: the mean weighted by example count. With equal counts it is the plain mean.
template <ParameterSet P>
using weighted_mean = basic_mean<P, by_examples>;

/// Every update counts the same, whatever its example count.
template <ParameterSet P>
using mean = basic_mean<P, equal_weights>;

}  // namespace flotilla

