#pragma once
// Robust rules for rounds in which some learners may be faulty or malicious: coordinate-wise
// median (FedMedian), trimmed mean (Yin et al. 2018), Krum and Multi-Krum (Blanchard et al.
// 2017) and Bulyan (El Mhamdi et al. 2018). Unlike the means, these need every update of the
// round at once, so they keep them all: memory grows with learners x model size. Their types say
// so (`gathers_all_updates`). They count every update the same, whatever its example count, since
// a malicious learner could claim any count.
//
// The results do not depend on the order in which updates arrived: coordinate-wise rules work on
// sorted values, and Krum, Multi-Krum and Bulyan break ties between equal scores by comparing the
// updates themselves.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "flotilla/arithmetic.hpp"
#include "flotilla/concepts/aggregator.hpp"
#include "flotilla/concepts/parameter_set.hpp"
#include "flotilla/detail/parallel.hpp"
#include "flotilla/errors.hpp"

namespace flotilla {

namespace detail {
// Batcher's odd-even merge sort as a network for n values: its compare-exchanges (a, b), a < b,
// in order. Built for the next power of two; those that touch a position of n or more are left
// out, since padding there with +infinity would never move. The same network sorts every
// coordinate of a block at once, so the exchanges are branch-free vector min and max.
inline std::vector<std::pair<std::size_t, std::size_t>> sorting_network(std::size_t n) {
  std::size_t padded = 1;
  while (padded < n) padded *= 2;
  std::vector<std::pair<std::size_t, std::size_t>> exchanges;
  for (std::size_t p = 1; p < padded; p *= 2)
    for (std::size_t k = p; k > 0; k /= 2)
      for (std::size_t j = k % p; j + k < padded; j += 2 * k)
        for (std::size_t i = 0; i < k && i + j + k < padded; ++i)
          if ((i + j) / (2 * p) == (i + j + k) / (2 * p) && i + j + k < n) exchanges.emplace_back(i + j, i + j + k);
  return exchanges;
}
}  // namespace detail

/// @brief What every robust rule shares: the round's updates, kept until `result()`.
template <ParameterSet P>
class gathering_rule {
 public:
  /// These rules hold the whole round in memory (see is_gathering_rule_v).
  static constexpr bool gathers_all_updates = true;

  void start(const P&) { updates_.clear(); }
  void accept(const P& update, std::int64_t) { updates_.push_back(update); }
  /// Keeps the update itself: the coordinator hands each reply's parameters over, uncopied.
  void accept(P&& update, std::int64_t) { updates_.push_back(std::move(update)); }
  void merge(const gathering_rule& other) { updates_.insert(updates_.end(), other.updates_.begin(), other.updates_.end()); }
  [[nodiscard]] std::size_t accepted() const { return updates_.size(); }

 protected:
  using scalar_type = typename P::scalar_type;

  void require_updates(const char* rule) const {
    if (updates_.empty()) throw usage_error(std::string(rule) + " of a round with no accepted updates");
  }

  /// A parameter set of the first update's layout whose every coordinate `j` is set to
  /// `combine(values)`, where `values` holds coordinate j of every update, sorted ascending.
  /// Coordinates go a block at a time: the block's values of each update are copied into a row,
  /// and one sorting network sorts all the block's columns together. Large models are split
  /// across the cores.
  template <class Combine>
  P per_coordinate(Combine combine) const {
    P out = make_for_overwrite(updates_.front());
    auto result = out.values();
    const std::size_t n = updates_.size();
    std::vector<const scalar_type*> sources;
    for (const auto& update : updates_) sources.push_back(update.values().data());
    const auto network = detail::sorting_network(n);
    detail::for_each_piece(result.size(), 0, [&](std::size_t begin, std::size_t end) {
      constexpr std::size_t width = 256;  // columns per block; n rows of them stay in L1 for small rounds
      std::vector<double> rows(n * width), column(n);
      for (std::size_t first = begin; first < end; first += width) {
        const std::size_t count = std::min(end, first + width) - first;
        for (std::size_t u = 0; u < n; ++u)
          for (std::size_t b = 0; b < count; ++b) rows[u * width + b] = double(sources[u][first + b]);
        for (const auto& [low, high] : network) {
          double* x = rows.data() + low * width;
          double* y = rows.data() + high * width;
          for (std::size_t b = 0; b < count; ++b) {
            const double smaller = std::min(x[b], y[b]), larger = std::max(x[b], y[b]);
            x[b] = smaller;
            y[b] = larger;
          }
        }
        for (std::size_t b = 0; b < count; ++b) {
          for (std::size_t u = 0; u < n; ++u) column[u] = rows[u * width + b];
          result[first + b] = static_cast<scalar_type>(combine(std::span<const double>(column)));
        }
      }
    });
    return out;
  }

  std::vector<P> updates_;
};

namespace detail {
inline double median_of_sorted(std::span<const double> sorted) {
  const auto n = sorted.size();
  return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}
inline double mean_of(std::span<const double> values) {
  return std::accumulate(values.begin(), values.end(), 0.0) / double(values.size());
}
}  // namespace detail

/// FedMedian: each coordinate is the median of the updates' values (the mean of the two middle
/// values for an even count).
template <ParameterSet P>
class coordinate_median : public gathering_rule<P> {
 public:
  [[nodiscard]] P result() const {
    this->require_updates("median");
    return this->per_coordinate(detail::median_of_sorted);
  }
};

/// FedTrimmedAvg: each coordinate is the mean of the updates' values after dropping the
/// floor(beta x n) smallest and as many largest. The product is taken in double precision before
/// the floor, as Flower and scipy's trim_mean do: beta = 0.35 of n = 180 is 62.99999999999999,
/// so 62 values go from each end, not 63.
template <ParameterSet P>
class trimmed_mean : public gathering_rule<P> {
 public:
  /// beta = 0.2.
  trimmed_mean() = default;
  /// @throws configuration_error unless 0 <= beta < 0.5 (at least one value must remain).
  explicit trimmed_mean(double beta) : beta_(beta) {
    if (!(beta >= 0 && beta < 0.5))
      throw configuration_error("trimmed mean's beta must be in [0, 0.5); got " + std::to_string(beta));
  }
  [[nodiscard]] P result() const {
    this->require_updates("trimmed mean");
    const auto trimmed = static_cast<std::size_t>(std::floor(beta_ * double(this->updates_.size())));
    return this->per_coordinate([&](std::span<const double> sorted) {
      return detail::mean_of(sorted.subspan(trimmed, sorted.size() - 2 * trimmed));
    });
  }
  [[nodiscard]] double beta() const { return beta_; }

 private:
  double beta_ = 0.2;
};

namespace detail {
// Squared Euclidean distances between every pair of updates.
template <ParameterSet P>
std::vector<std::vector<double>> pairwise_distances(const std::vector<P>& updates) {
  std::vector<std::vector<double>> distance(updates.size(), std::vector<double>(updates.size(), 0.0));
  for (std::size_t i = 0; i < updates.size(); ++i)
    for (std::size_t j = i + 1; j < updates.size(); ++j) {
      const auto a = updates[i].values(), b = updates[j].values();
      double sum = 0;
      for (std::size_t k = 0; k < a.size(); ++k) {
        const double d = double(a[k]) - double(b[k]);
        sum += d * d;
      }
      distance[i][j] = distance[j][i] = sum;
    }
  return distance;
}

// Krum's score of each update in `candidates`, in the same order: the summed squared distances
// to its nearest max(1, n - f - 2) fellow candidates, where n counts the candidates.
inline std::vector<double> krum_scores(const std::vector<std::vector<double>>& distance,
                                       const std::vector<std::size_t>& candidates, std::size_t f) {
  const std::size_t n = candidates.size();
  const std::size_t neighbours = std::min(n >= f + 3 ? n - f - 2 : 1, n - 1);
  std::vector<double> scores;
  scores.reserve(n);
  std::vector<double> near;
  for (const auto i : candidates) {
    near.clear();
    for (const auto j : candidates)
      if (j != i) near.push_back(distance[i][j]);
    const auto end = near.begin() + static_cast<std::ptrdiff_t>(neighbours);
    std::ranges::partial_sort(near, end);
    scores.push_back(std::accumulate(near.begin(), end, 0.0));
  }
  return scores;
}

// Krum's order: the lower score first; equal scores put the lexicographically smaller update
// first, so no choice depends on the order in which updates arrived.
template <ParameterSet P>
bool krum_ranks_before(const std::vector<P>& updates, double score_a, std::size_t a, double score_b, std::size_t b) {
  if (score_a != score_b) return score_a < score_b;
  return std::ranges::lexicographical_compare(updates[a].values(), updates[b].values());
}

// Multi-Krum (Blanchard et al. 2017): every update scored once among all n, the `count` best.
template <ParameterSet P>
std::vector<std::size_t> best_krum_scores(const std::vector<P>& updates, std::size_t f, std::size_t count) {
  std::vector<std::size_t> all(updates.size());
  std::iota(all.begin(), all.end(), std::size_t{0});
  const auto scores = krum_scores(pairwise_distances(updates), all, f);
  std::ranges::partial_sort(all, all.begin() + static_cast<std::ptrdiff_t>(count), [&](std::size_t a, std::size_t b) {
    return krum_ranks_before(updates, scores[a], a, scores[b], b);
  });
  all.resize(count);
  return all;
}

// Bulyan's selection (El Mhamdi et al. 2018): Krum applied again and again to the updates not
// yet picked, each time scored anew among those that remain.
template <ParameterSet P>
std::vector<std::size_t> repeated_krum(const std::vector<P>& updates, std::size_t f, std::size_t count) {
  const auto distance = pairwise_distances(updates);
  std::vector<std::size_t> candidates(updates.size());
  std::iota(candidates.begin(), candidates.end(), std::size_t{0});
  std::vector<std::size_t> chosen;
  while (chosen.size() < count) {
    const auto scores = krum_scores(distance, candidates, f);
    std::size_t best = 0;
    for (std::size_t k = 1; k < candidates.size(); ++k)
      if (krum_ranks_before(updates, scores[k], candidates[k], scores[best], candidates[best])) best = k;
    chosen.push_back(candidates[best]);
    candidates.erase(candidates.begin() + static_cast<std::ptrdiff_t>(best));
  }
  return chosen;
}
}  // namespace detail

/// @brief Krum and Multi-Krum (Blanchard et al. 2017): with at most `f` Byzantine learners among
/// n, score each update once by the summed squared distances to its n - f - 2 nearest others and
/// return the mean of the `selected` best-scoring ones (Krum: selected = 1). Needs n >= 2f + 3.
///
/// Multi-Krum scores every update once, among all n, as the paper and Flower do; it is not Krum
/// repeated on what remains (that is Bulyan's selection). Equal scores go to the lexicographically
/// smaller update, so the result does not depend on arrival order.
template <ParameterSet P>
class krum : public gathering_rule<P> {
 public:
  /// Krum with f = 0.
  krum() = default;
  /// @throws configuration_error if `selected` is zero.
  explicit krum(std::size_t f, std::size_t selected = 1) : f_(f), selected_(selected) {
    if (selected == 0) throw configuration_error("Krum must select at least one update");
  }
  /// @throws configuration_error when the round has too few updates for the assumed f, or fewer
  /// than n - f updates remain to select from.
  [[nodiscard]] P result() const {
    this->require_updates("Krum");
    const auto n = this->updates_.size();
    if (n < 2 * f_ + 3)
      throw configuration_error("Krum with f = " + std::to_string(f_) + " needs at least 2f + 3 = " +
                                std::to_string(2 * f_ + 3) + " updates; the round has " + std::to_string(n));
    if (selected_ > n - f_)
      throw configuration_error("Multi-Krum cannot select " + std::to_string(selected_) + " of " + std::to_string(n) +
                                " updates when f = " + std::to_string(f_) + " may be Byzantine (at most n - f)");
    const auto chosen = detail::best_krum_scores(this->updates_, f_, selected_);
    P out = this->updates_[chosen.front()];
    for (std::size_t k = 1; k < chosen.size(); ++k) axpy(out, typename P::scalar_type{1}, this->updates_[chosen[k]]);
    if (chosen.size() > 1) scale(out, static_cast<typename P::scalar_type>(1.0 / double(chosen.size())));
    return out;
  }

 private:
  std::size_t f_ = 0;
  std::size_t selected_ = 1;
};

/// @brief Bulyan (El Mhamdi et al. 2018): with at most `f` Byzantine learners among n, pick
/// theta = n - 2f updates by repeated Krum, then set each coordinate to the mean of the
/// beta = theta - 2f picked values closest to their median. Needs n >= 4f + 3.
///
/// Each Krum step scores the candidates left over max(1, n' - f - 2) neighbours, so the last
/// steps score over one neighbour, where the two mutually nearest candidates have the same score
/// on almost any data. Flotilla gives such ties to the lexicographically smaller update, which
/// keeps the result independent of arrival order; Flower's first-index rule picks by arrival, so
/// the two can pick different updates, and differ in the result, on ordinary inputs.
template <ParameterSet P>
class bulyan : public gathering_rule<P> {
 public:
  /// Bulyan with f = 0.
  bulyan() = default;
  explicit bulyan(std::size_t f) : f_(f) {}

  /// @throws configuration_error when the round has fewer than 4f + 3 updates.
  [[nodiscard]] P result() const {
    this->require_updates("Bulyan");
    const auto n = this->updates_.size();
    if (n < 4 * f_ + 3)
      throw configuration_error("Bulyan with f = " + std::to_string(f_) + " needs at least 4f + 3 = " +
                                std::to_string(4 * f_ + 3) + " updates; the round has " + std::to_string(n));
    const auto theta = n - 2 * f_;
    const auto beta = theta - 2 * f_;
    std::vector<P> picked;
    for (const auto i : detail::repeated_krum(this->updates_, f_, theta)) picked.push_back(this->updates_[i]);
    P out = picked.front();
    auto result = out.values();
    std::vector<double> column(theta);
    for (std::size_t j = 0; j < result.size(); ++j) {
      for (std::size_t i = 0; i < theta; ++i) column[i] = double(picked[i].values()[j]);
      std::ranges::sort(column);
      const double median = detail::median_of_sorted(column);
      // The beta values closest to the median (ties to the smaller value), then their mean.
      std::ranges::sort(column, [&](double a, double b) {
        const double da = std::abs(a - median), db = std::abs(b - median);
        return da < db || (da == db && a < b);
      });
      result[j] = static_cast<typename P::scalar_type>(detail::mean_of(std::span<const double>(column).first(beta)));
    }
    return out;
  }

 private:
  std::size_t f_ = 0;
};

}  // namespace flotilla
