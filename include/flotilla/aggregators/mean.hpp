#pragma once
// The default rules: the mean weighted by each learner's example count (FedAvg, McMahan et al.
// 2017) and the plain unweighted mean. Both stream: memory is one accumulator the size of the
// model, whatever the number of learners. The accumulator is float64 (float32 models keep their
// precision over thousands of updates) or, in the deterministic variants, an exact fixed-point
// sum whose bits do not depend on the order updates arrive in.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
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
#include "flotilla/detail/fixed_point.hpp"
#include "flotilla/detail/parallel.hpp"
#include "flotilla/detail/text.hpp"

namespace flotilla {

/// The default: a round's first 16 updates are summed in the parameters' own type, later ones in
/// float64. Small rounds of float32 models then move no more bytes than a float32 sum (the wider
/// accumulator would cost a third of the bandwidth when few updates are folded per pass), while
/// large ones stop accumulating float32 rounding error: the mean of 10,000 float32 updates stays
/// within 1e-6 of the exact mean. Which updates are summed how depends only on their count, so
/// batching still changes no bit.
struct float64_sum {
  using accumulator_type = double;
};

/// Sums exactly in 192-bit fixed point (detail/fixed_point.hpp): the same bits whatever the order
/// and batching of the updates and the threads or processes folding them. Values must stay below
/// 2^40 in magnitude (screen() rejects others) and a round may fold up to 2^23 updates. Costs 24
/// bytes per scalar and integer arithmetic, several times a float64 fold (see the README).
struct fixed_point_sum {
  using accumulator_type = detail::fixed_sum;
};

/// Weight of an update in `weighted_mean`: the examples it trained on.
struct by_examples {
  static double weight(std::int64_t examples) { return static_cast<double>(examples); }
};

/// Weight of an update in `mean`: one, whatever its example count.
struct equal_weights {
  static double weight(std::int64_t) { return 1.0; }
};

namespace detail {
// One block of a fold into the accumulator: out[i] = w x[i] (overwrite) or out[i] += w x[i],
// in the accumulator's type.
template <std::floating_point A, std::floating_point S>
void fold_block(A* out, const S* x, double w, bool overwrite, std::size_t count) {
  const A weight = static_cast<A>(w);
  if (overwrite)
    for (std::size_t i = 0; i < count; ++i) out[i] = weight * A(x[i]);
  else
    for (std::size_t i = 0; i < count; ++i) out[i] += weight * A(x[i]);
}
template <std::floating_point S>
void fold_block(fixed_sum* out, const S* x, double w, bool overwrite, std::size_t count) {
  const auto weight = static_cast<std::uint64_t>(w);  // checked integral and in range by the rule
  for (std::size_t i = 0; i < count; ++i) {
    const fixed_sum term = to_fixed(x[i], weight);
    if (overwrite) out[i] = term;
    else add_fixed(out[i], term);
  }
}

// Calls `visit(first, values, count)` for the blocks of one update's values over [begin, end): a
// coded update's block is its base plus its decoded change, added in float32 as a whole decoded
// update would be, so coded and expanded replies fold to the same sums.
template <std::floating_point S, class Visit>
void for_each_value_block(const S* base, const compression::coded_values* delta, std::size_t begin, std::size_t end,
                          std::vector<S>& scratch, Visit visit) {
  constexpr std::size_t block = 32768;  // 128 KiB of float32 inputs; its accumulator block stays in L2
  for (std::size_t first = begin; first < end; first += block) {
    const std::size_t count = std::min(end, first + block) - first;
    const S* values = base + first;
    if constexpr (std::is_same_v<S, float>) {
      if (delta) {
        scratch.assign(values, values + count);
        compression::add_decoded(*delta, first, std::span(scratch), 1.0f);
        values = scratch.data();
      }
    }
    visit(first, values, count);
  }
}

// The fold over [begin, end): block by block, every update is added in order while the
// accumulator's block stays in cache, so the accumulator is read and written once per batch.
template <class Accumulator, std::floating_point S>
void fold_updates(Accumulator* out, std::span<const S* const> sources,
                  std::span<const compression::coded_values* const> deltas, std::span<const double> weights,
                  bool overwrite, std::size_t begin, std::size_t end) {
  constexpr std::size_t block = 32768;
  std::vector<S> scratch;
  for (std::size_t first = begin; first < end; first += block) {
    const std::size_t last = std::min(end, first + block);
    for (std::size_t u = 0; u < sources.size(); ++u)
      for_each_value_block(sources[u], deltas[u], first, last, scratch, [&](std::size_t at, const S* x, std::size_t count) {
        fold_block(out + at, x, weights[u], u == 0 && overwrite, count);
      });
  }
}

// The largest magnitude among an update's values (plain or coded), or infinity if one is not finite.
template <std::floating_point S>
double largest_magnitude(const S* base, const compression::coded_values* delta, std::size_t count) {
  double largest = 0;
  std::vector<S> scratch;
  for_each_value_block(base, delta, 0, count, scratch, [&](std::size_t, const S* x, std::size_t n) {
    if (!all_finite(x, n)) largest = HUGE_VAL;
    for (std::size_t i = 0; i < n; ++i) largest = std::max(largest, double(std::abs(x[i])));
  });
  return largest;
}
}  // namespace detail

/// @brief Running weighted mean of updates: sum(w_i * x_i) / sum(w_i) over the updates that
/// arrived. Weights renormalize over the learners that actually replied.
///
/// Folding is one pass over the model per batch of waiting updates, split across `threads`
/// (0: one per core) for models large enough to repay it. `Summation` is the accumulator:
/// float64_sum (the default) adds every scalar's terms in the same order however the updates
/// were batched, so a run's results depend only on the order replies arrive in;
/// fixed_point_sum removes that dependence too (see deterministic_weighted_mean).
template <ParameterSet P, class Weighting, class Summation = float64_sum>
class basic_mean {
 public:
  using scalar_type = typename P::scalar_type;
  using accumulator_type = typename Summation::accumulator_type;
  /// FedAvg weighs by the learners' example counts; the plain mean does not.
  static constexpr bool weighs_by_examples = std::is_same_v<Weighting, by_examples>;
  /// Whether the result's bits are independent of arrival order, batching, threads and processes.
  static constexpr bool deterministic = std::is_same_v<Summation, fixed_point_sum>;
  /// Updates a round sums in the parameters' own type before it widens (float64_sum on float32).
  static constexpr std::size_t narrow_updates =
      !deterministic && !std::is_same_v<scalar_type, accumulator_type> ? 16 : 0;

  basic_mean() = default;
  /// Folds large models on `threads` threads (0, the default: one per core).
  explicit basic_mean(std::size_t threads) : threads_(threads) {}
  basic_mean(const basic_mean& other) : basic_mean(other.threads_) { *this = other; }
  basic_mean& operator=(const basic_mean& other) {
    if (this == &other) return *this;
    shape_ = other.shape_;
    narrow_ = copy_of(other.narrow_);
    sum_ = copy_of(other.sum_);
    wide_ = other.wide_;
    total_weight_ = other.total_weight_;
    accepted_ = other.accepted_;
    threads_ = other.threads_;
    return *this;
  }
  basic_mean(basic_mean&&) noexcept = default;
  basic_mean& operator=(basic_mean&&) noexcept = default;

  void start(const P& global) {
    if (!shape_ || !same_layout(*shape_, global)) {  // else the accumulators are reused across rounds
      shape_ = make_for_overwrite(global);
      narrow_.reset();
      sum_.reset();
    }
    wide_ = narrow_updates == 0;
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

  /// The same, for updates of which some arrive coded: each coded update's values (its base plus
  /// its decoded change) are made a slice at a time and folded, never expanded whole.
  /// @throws layout_error for an update of another layout; in the deterministic variants,
  /// usage_error for a value or weight outside the fixed-point range (nothing is folded then).
  void accept_coded(std::span<const coded_update<P>> updates) {
    if (!shape_) throw usage_error("accept() before start(): the rule has no layout yet");
    if (updates.empty()) return;
    std::vector<const scalar_type*> sources;
    std::vector<const compression::coded_values*> deltas;
    std::vector<double> weights;
    double batch_weight = 0;  // added to the total only once the whole batch is folded
    for (const auto& update : updates) {
      require_same_layout(*update.parameters, *shape_);
      if (update.delta && (!std::is_same_v<scalar_type, float> || update.delta->count != size()))
        throw layout_error("a coded update of " + std::to_string(update.delta->count) + " values for parameters of " +
                           std::to_string(size()) + " " + std::to_string(8 * sizeof(scalar_type)) +
                           "-bit scalars (coded values are float32)");
      const double weight = Weighting::weight(update.examples);
      if constexpr (deterministic) require_fixed_range(update, weight);
      sources.push_back(update.parameters->values().data());
      deltas.push_back(update.delta);
      weights.push_back(weight);
      batch_weight += weight;
    }
    if (deterministic && accepted_ + updates.size() > detail::fixed_max_terms)
      throw usage_error("a deterministic mean folds at most " + detail::grouped(detail::fixed_max_terms) +
                        " updates a round");
    const auto fold = [&](auto* out, std::size_t from, std::size_t to) {
      using out_type = std::remove_pointer_t<decltype(out)>;
      const bool overwrite = accepted_ + from == 0;
      const std::span<const scalar_type* const> some_sources = std::span(sources).subspan(from, to - from);
      const std::span<const compression::coded_values* const> some_deltas = std::span(deltas).subspan(from, to - from);
      const std::span<const double> some_weights = std::span(weights).subspan(from, to - from);
      detail::for_each_piece(size(), threads_, [&](std::size_t begin, std::size_t end) {
        detail::fold_updates<out_type, scalar_type>(out, some_sources, some_deltas, some_weights, overwrite, begin, end);
      });
    };
    std::size_t folded = 0;
    if (!wide_) {  // the round's first updates, in the parameters' own type
      folded = std::min(updates.size(), narrow_updates - accepted_);
      if (!narrow_) narrow_ = std::make_unique_for_overwrite<scalar_type[]>(size());
      fold(narrow_.get(), 0, folded);
    }
    if (folded < updates.size()) {
      if (!wide_) widen();
      if (!sum_) sum_ = std::make_unique_for_overwrite<accumulator_type[]>(size());
      fold(sum_.get(), folded, updates.size());
    }
    total_weight_ += batch_weight;
    accepted_ += updates.size();
  }

  /// The deterministic variants' screen: values at or above 2^40 in magnitude cannot enter the
  /// fixed-point sum, so the reply door turns such an update away with this reason.
  [[nodiscard]] std::optional<std::string> screen(const P& update) const
    requires deterministic
  {
    const auto values = update.values();
    return range_problem(detail::largest_magnitude<scalar_type>(values.data(), nullptr, values.size()));
  }

  void merge(const basic_mean& other) {
    if (other.accepted_ == 0) return;
    if (!shape_ || accepted_ == 0) {  // adopt the other's sum, keep our own thread count
      const auto threads = threads_;
      *this = other;
      threads_ = threads;
      return;
    }
    require_same_layout(*other.shape_, *shape_, "the merged mean", "this mean");
    if constexpr (narrow_updates > 0) {
      if (!wide_ && !other.wide_ && accepted_ + other.accepted_ <= narrow_updates) {
        add_into(narrow_.get(), other.narrow_.get());
      } else {
        if (!wide_) widen();
        if (other.wide_) add_into(sum_.get(), other.sum_.get());
        else add_into(sum_.get(), other.narrow_.get());
      }
    } else {
      add_into(sum_.get(), other.sum_.get());
    }
    total_weight_ += other.total_weight_;
    accepted_ += other.accepted_;
  }

  /// What accept() built this round, for a rule in another process to merge_partial(): the
  /// update count, the total weight and the sum (float64, or the fixed-point limbs). (A template
  /// on wire/codec.hpp's wire_writer, so that this header needs no serialization library.)
  template <class Writer>
  void write_partial(Writer& out) const {
    out.write(static_cast<std::uint64_t>(accepted_));
    out.write(total_weight_);
    if (accepted_ == 0) return;
    out.write(summation_tag);
    out.write(static_cast<std::uint64_t>(size()));
    if constexpr (deterministic) {
      for (std::size_t i = 0; i < size(); ++i) {
        out.write(sum_[i].low);
        out.write(sum_[i].middle);
        out.write(sum_[i].high);
      }
    } else if (narrow_updates == 0 || wide_) {
      out.write_block(std::span<const double>(sum_.get(), size()));
    } else {
      const std::vector<double> widened(narrow_.get(), narrow_.get() + size());
      out.write_block(std::span<const double>(widened));
    }
  }

  /// Folds in a state written by write_partial() of the same rule, as merge() would. The bytes
  /// are checked before anything is folded.
  /// @throws decode_error if they are malformed or come from another kind of sum, or their
  /// sizes differ from this round's model.
  template <class Reader>
  void merge_partial(Reader& in) {
    const auto accepted = in.template read<std::uint64_t>("partial update count");
    const auto weight = in.template read<double>("partial total weight");
    if (accepted == 0) return;
    if (!std::isfinite(weight) || weight <= 0)
      throw decode_error("a partial mean of " + std::to_string(accepted) + " updates has total weight " +
                         std::to_string(weight));
    if (!shape_) throw usage_error("merge_partial() before start(): the rule has no layout yet");
    if (const auto tag = in.template read<std::uint8_t>("partial sum kind"); tag != summation_tag)
      throw decode_error(std::string("a partial ") + (tag == 2 ? "fixed-point" : tag == 1 ? "float64" : "unknown") +
                         " sum for a rule that sums in " + (deterministic ? "fixed point" : "float64"));
    if (const auto count = in.template read<std::uint64_t>("partial sum size"); count != size())
      throw decode_error("a partial sum of " + detail::grouped(count) + " values for a model of " +
                         detail::grouped(size()));
    if (deterministic && accepted_ + accepted > detail::fixed_max_terms)
      throw decode_error("a partial sum of " + detail::grouped(accepted) + " updates takes the round past the " +
                         detail::grouped(detail::fixed_max_terms) + " a deterministic mean folds");
    auto partial = std::make_unique_for_overwrite<accumulator_type[]>(size());
    if constexpr (deterministic) {
      // A sum of n terms below 2^157 units each: its high limb is below n * 2^29.
      const auto bound = static_cast<std::int64_t>(accepted) << (detail::fixed_term_bits - 128);
      for (std::size_t i = 0; i < size(); ++i) {
        partial[i].low = in.template read<std::uint64_t>("partial sum");
        partial[i].middle = in.template read<std::uint64_t>("partial sum");
        partial[i].high = in.template read<std::int64_t>("partial sum");
        if (partial[i].high >= bound || partial[i].high < -bound)
          throw decode_error("partial sum value " + std::to_string(i) + " is out of range for " +
                             std::to_string(accepted) + " updates");
      }
    } else {
      in.read_block(std::span<double>(partial.get(), size()), "partial sum");
      for (std::size_t i = 0; i < size(); ++i)
        if (!std::isfinite(partial[i])) throw decode_error("partial sum value " + std::to_string(i) + " is not finite");
    }
    if (accepted_ == 0) {
      sum_ = std::move(partial);
      wide_ = true;
    } else {
      if (!wide_) widen();
      add_into(sum_.get(), partial.get());
    }
    total_weight_ += weight;
    accepted_ += static_cast<std::size_t>(accepted);
  }

  [[nodiscard]] std::size_t accepted() const { return accepted_; }
  /// Sum of the weights accepted so far (examples for FedAvg, updates for the plain mean).
  [[nodiscard]] double total_weight() const { return total_weight_; }

  /// @throws usage_error when no update was accepted (there is no mean of nothing).
  [[nodiscard]] P result() const {
    if (accepted_ == 0) throw usage_error("mean of a round with no accepted updates");
    P out = make_for_overwrite(*shape_);
    scalar_type* mean = out.values().data();
    visit_result([&](std::size_t first, std::size_t count, const scalar_type* values) {
      std::copy_n(values, count, mean + first);
    });
    return out;
  }

  /// The result a block at a time, never whole: calls `visit(first, count, values)` with the
  /// values result() would give at [first, first + count), from several threads at once for a
  /// large model. A rule that steps from the mean (server_optimizer) saves a pass over memory.
  /// @throws usage_error when no update was accepted.
  template <class Visit>
  void visit_result(Visit visit) const {
    if (accepted_ == 0 || total_weight_ <= 0) throw usage_error("mean of a round with no accepted updates");
    if constexpr (narrow_updates > 0)
      if (!wide_) return visit_mean(narrow_.get(), visit);
    visit_mean(sum_.get(), visit);
  }

 private:
  static constexpr std::uint8_t summation_tag = deterministic ? 2 : 1;

  [[nodiscard]] std::size_t size() const { return shape_ ? shape_->values().size() : 0; }

  template <class T>
  std::unique_ptr<T[]> copy_of(const std::unique_ptr<T[]>& from) const {
    const std::size_t count = size();
    if (!from || count == 0) return nullptr;
    auto copy = std::make_unique_for_overwrite<T[]>(count);
    std::copy_n(from.get(), count, copy.get());
    return copy;
  }

  // The round's narrow sum moves to the wide accumulator: one pass, once a round at most.
  void widen() {
    if (!sum_) sum_ = std::make_unique_for_overwrite<accumulator_type[]>(size());
    if constexpr (narrow_updates > 0) {
      accumulator_type* wide = sum_.get();
      const scalar_type* narrow = narrow_.get();
      detail::for_each_piece(size(), threads_, [&](std::size_t begin, std::size_t end) {
        for (std::size_t i = begin; i < end; ++i) wide[i] = accumulator_type(narrow[i]);
      });
    }
    wide_ = true;
  }

  template <class Sum, class Other>
  void add_into(Sum* sum, const Other* other) {
    detail::for_each_piece(size(), threads_, [&](std::size_t begin, std::size_t end) {
      for (std::size_t i = begin; i < end; ++i) {
        if constexpr (std::is_same_v<Sum, detail::fixed_sum>) detail::add_fixed(sum[i], other[i]);
        else sum[i] += Sum(other[i]);
      }
    });
  }

  template <class Sum, class Visit>
  void visit_mean(const Sum* sum, Visit& visit) const {
    const double total = total_weight_;
    detail::for_each_piece(size(), threads_, [&](std::size_t begin, std::size_t end) {
      constexpr std::size_t block = 2048;  // stays in L1 between its writing and its visit
      scalar_type values[block];
      const double factor = 1.0 / total;
      for (std::size_t first = begin; first < end; first += block) {
        const std::size_t count = std::min(end, first + block) - first;
        for (std::size_t i = 0; i < count; ++i) {
          if constexpr (std::is_same_v<Sum, detail::fixed_sum>)
            values[i] = static_cast<scalar_type>(detail::to_double(sum[first + i]) / total);
          else values[i] = static_cast<scalar_type>(double(sum[first + i]) * factor);
        }
        visit(first, count, values);
      }
    });
  }

  static std::optional<std::string> range_problem(double largest) {
    if (largest < detail::fixed_value_limit) return std::nullopt;
    return "a value of magnitude " + detail::number(largest) + " is outside a deterministic mean's range (below 2^40)";
  }

  void require_fixed_range(const coded_update<P>& update, double weight) const {
    if (!(weight >= 0 && weight <= detail::fixed_weight_limit && weight == std::floor(weight)))
      throw usage_error("a deterministic mean takes whole weights from 0 to 2^53; this update weighs " +
                        detail::number(weight));
    const auto values = update.parameters->values();
    if (auto problem = range_problem(detail::largest_magnitude<scalar_type>(values.data(), update.delta, values.size())))
      throw usage_error(*problem + "; screen() turns such updates away at the door");
  }

  std::optional<P> shape_;  // the layout results take (values unused); optional: P need not be default-constructible
  std::unique_ptr<scalar_type[]> narrow_;     // the round's first narrow_updates sums (float64_sum on float32)
  std::unique_ptr<accumulator_type[]> sum_;   // the wide or fixed-point sum
  bool wide_ = true;                          // whether this round's sum is in sum_
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

/// FedAvg whose result has the same bits whatever the order replies arrive in, how they are
/// batched, and the threads, transport or processes folding them (fixed_point_sum).
template <ParameterSet P>
using deterministic_weighted_mean = basic_mean<P, by_examples, fixed_point_sum>;

/// The plain mean, with the same guarantee.
template <ParameterSet P>
using deterministic_mean = basic_mean<P, equal_weights, fixed_point_sum>;

}  // namespace flotilla

