#pragma once
// Splitting a dataset's examples among learners: IID, and the non-IID splits FL research uses
// (Dirichlet label skew, pathological shards, quantity skew). Every split is seeded, uses only
// Flotilla's own samplers (so the same seed gives the same split with any standard library),
// and returns each learner's example indices.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "flotilla/detail/text.hpp"
#include "flotilla/errors.hpp"
#include "flotilla/random.hpp"

namespace flotilla {

namespace detail {
inline void require_learners(std::size_t learners, std::size_t examples, std::size_t minimum = 1) {
  if (learners == 0) throw configuration_error("cannot partition data among zero learners");
  if (learners * minimum > examples)
    throw configuration_error("cannot give each of " + std::to_string(learners) + " learners at least " +
                              (minimum == 1 ? std::string("one") : std::to_string(minimum)) + " of " +
                              std::to_string(examples) + " examples");
}

// Splits `indices` into consecutive runs whose lengths follow `share` (largest remainders last).
inline void deal_by_share(std::span<const std::size_t> indices, std::span<const double> share,
                          std::vector<std::vector<std::size_t>>& parts) {
  std::size_t begin = 0;
  double cumulative = 0;
  for (std::size_t part = 0; part < parts.size(); ++part) {
    cumulative += share[part];
    const auto end = part + 1 == parts.size()
                         ? indices.size()
                         : std::min(indices.size(), static_cast<std::size_t>(std::llround(cumulative * double(indices.size()))));
    if (end > begin) parts[part].insert(parts[part].end(), indices.begin() + static_cast<std::ptrdiff_t>(begin),
                                        indices.begin() + static_cast<std::ptrdiff_t>(end));
    begin = std::max(begin, end);
  }
}

inline std::size_t class_count(std::span<const std::int32_t> labels) {
  std::int32_t largest = -1;
  for (auto label : labels) {
    if (label < 0) throw configuration_error("labels must be non-negative; found " + std::to_string(label));
    largest = std::max(largest, label);
  }
  return static_cast<std::size_t>(largest + 1);
}
}  // namespace detail

/// IID split: shuffles the example indices with `seed` and deals them into `learners` parts
/// whose sizes differ by at most one. Reproducible for a given seed.
[[nodiscard]] inline std::vector<std::vector<std::size_t>> partition_iid(std::size_t examples, std::size_t learners,
                                                                         std::uint64_t seed) {
  detail::require_learners(learners, examples);
  std::vector<std::size_t> order(examples);
  std::iota(order.begin(), order.end(), std::size_t{0});
  random_engine engine(seed);
  shuffle(std::span<std::size_t>(order), engine);
  std::vector<std::vector<std::size_t>> parts(learners);
  for (std::size_t part = 0; part < learners; ++part) {
    const auto begin = part * examples / learners;
    const auto end = (part + 1) * examples / learners;
    parts[part].assign(order.begin() + static_cast<std::ptrdiff_t>(begin), order.begin() + static_cast<std::ptrdiff_t>(end));
  }
  return parts;
}

/// Label skew (Hsu et al. 2019): each class's examples are shuffled and split among the learners
/// in proportions drawn from Dirichlet(alpha). Small alpha (0.1) gives most learners a few
/// classes; large alpha (100) approaches IID. Draws again, up to 100 times, until every learner
/// holds at least `minimum` examples.
[[nodiscard]] inline std::vector<std::vector<std::size_t>> partition_dirichlet(std::span<const std::int32_t> labels,
                                                                               std::size_t learners, double alpha,
                                                                               std::uint64_t seed,
                                                                               std::size_t minimum = 1) {
  detail::require_learners(learners, labels.size(), minimum);
  if (!(alpha > 0)) throw configuration_error("Dirichlet alpha must be positive; got " + std::to_string(alpha));
  std::vector<std::vector<std::size_t>> by_class(detail::class_count(labels));
  for (std::size_t i = 0; i < labels.size(); ++i) by_class[static_cast<std::size_t>(labels[i])].push_back(i);
  random_engine engine(seed);
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::vector<std::vector<std::size_t>> parts(learners);
    for (auto& members : by_class) {
      shuffle(std::span<std::size_t>(members), engine);
      detail::deal_by_share(members, dirichlet_sample(engine, learners, alpha), parts);
    }
    if (std::ranges::all_of(parts, [&](const auto& part) { return part.size() >= minimum; })) return parts;
  }
  throw configuration_error("no Dirichlet(" + std::to_string(alpha) + ") split in 100 draws gave every one of " +
                            std::to_string(learners) + " learners at least " + std::to_string(minimum) +
                            " examples; lower the minimum or raise alpha");
}

/// Pathological non-IID (McMahan et al. 2017): examples sorted by label are cut into
/// `learners` x `shards_per_learner` equal shards, and each learner gets that many at random, so
/// it sees about `shards_per_learner` classes.
[[nodiscard]] inline std::vector<std::vector<std::size_t>> partition_shards(std::span<const std::int32_t> labels,
                                                                            std::size_t learners,
                                                                            std::size_t shards_per_learner,
                                                                            std::uint64_t seed) {
  if (shards_per_learner == 0) throw configuration_error("each learner needs at least one shard");
  detail::require_learners(learners, labels.size());
  if (learners * shards_per_learner > labels.size())
    throw configuration_error("cannot cut " + std::to_string(learners * shards_per_learner) + " shards (" +
                              std::to_string(learners) + " learners x " + std::to_string(shards_per_learner) +
                              ") from " + std::to_string(labels.size()) + " examples");
  (void)detail::class_count(labels);  // rejects negative labels
  random_engine engine(seed);
  std::vector<std::size_t> order(labels.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  shuffle(std::span<std::size_t>(order), engine);  // random order within each label
  std::ranges::stable_sort(order, [&](std::size_t a, std::size_t b) { return labels[a] < labels[b]; });
  const auto shards = learners * shards_per_learner;
  std::vector<std::size_t> shard_order(shards);
  std::iota(shard_order.begin(), shard_order.end(), std::size_t{0});
  shuffle(std::span<std::size_t>(shard_order), engine);
  std::vector<std::vector<std::size_t>> parts(learners);
  for (std::size_t k = 0; k < shards; ++k) {
    const auto shard = shard_order[k];
    const auto begin = shard * order.size() / shards, end = (shard + 1) * order.size() / shards;
    parts[k / shards_per_learner].insert(parts[k / shards_per_learner].end(),
                                         order.begin() + static_cast<std::ptrdiff_t>(begin),
                                         order.begin() + static_cast<std::ptrdiff_t>(end));
  }
  return parts;
}

/// Quantity skew: learners' shares of the (shuffled, otherwise IID) examples are drawn from
/// Dirichlet(alpha); every learner gets at least one example.
[[nodiscard]] inline std::vector<std::vector<std::size_t>> partition_quantity_skew(std::size_t examples,
                                                                                   std::size_t learners, double alpha,
                                                                                   std::uint64_t seed) {
  detail::require_learners(learners, examples);
  if (!(alpha > 0)) throw configuration_error("Dirichlet alpha must be positive; got " + std::to_string(alpha));
  random_engine engine(seed);
  std::vector<std::size_t> order(examples);
  std::iota(order.begin(), order.end(), std::size_t{0});
  shuffle(std::span<std::size_t>(order), engine);
  std::vector<std::vector<std::size_t>> parts(learners);
  for (std::size_t part = 0; part < learners; ++part) parts[part].push_back(order[part]);  // one each first
  detail::deal_by_share(std::span<const std::size_t>(order).subspan(learners), dirichlet_sample(engine, learners, alpha),
                        parts);
  return parts;
}

/// How many examples of each class every learner holds: counts[learner][class].
[[nodiscard]] inline std::vector<std::vector<std::size_t>> label_counts(
    const std::vector<std::vector<std::size_t>>& parts, std::span<const std::int32_t> labels) {
  const auto classes = detail::class_count(labels);
  std::vector<std::vector<std::size_t>> counts(parts.size(), std::vector<std::size_t>(classes, 0));
  for (std::size_t learner = 0; learner < parts.size(); ++learner)
    for (auto i : parts[learner]) ++counts[learner][static_cast<std::size_t>(labels[i])];
  return counts;
}

/// One line per learner: its example count and its classes by count, largest first, e.g.
/// "learner 3: 1,204 examples; 7: 803, 2: 390, 5: 11".
[[nodiscard]] inline std::string describe_label_counts(const std::vector<std::vector<std::size_t>>& counts) {
  std::string out;
  for (std::size_t learner = 0; learner < counts.size(); ++learner) {
    std::vector<std::pair<std::size_t, std::size_t>> held;  // (count, class)
    std::size_t total = 0;
    for (std::size_t label = 0; label < counts[learner].size(); ++label)
      if (counts[learner][label] > 0) {
        held.emplace_back(counts[learner][label], label);
        total += counts[learner][label];
      }
    std::ranges::sort(held, [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
    out += "learner " + std::to_string(learner) + ": " + detail::grouped(total) + " examples;";
    for (std::size_t k = 0; k < held.size(); ++k)
      out += (k == 0 ? " " : ", ") + std::to_string(held[k].second) + ": " + detail::grouped(held[k].first);
    out += "\n";
  }
  return out;
}

}  // namespace flotilla
