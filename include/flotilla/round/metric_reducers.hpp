#pragma once
// How the coordinator combines one metric across the learners that replied in a phase. By
// default a metric is the mean weighted by each learner's examples (so a federated accuracy is
// the accuracy over all the examples evaluated); `coordinator_options::metric_reducers` names
// another reducer for any metric, e.g. the sum for a count or the maximum for a worst-case loss.

#include <algorithm>
#include <cstdint>
#include <functional>
#include <span>

namespace flotilla {

/// One learner's value of a metric and the examples behind it.
struct metric_sample {
  double value = 0;
  std::int64_t examples = 0;
};

/// Combines the samples of one metric (never empty) into the round's value.
using metric_reducer = std::function<double(std::span<const metric_sample>)>;

/// The ready-made reducers.
namespace reduce {
/// Sum of value x examples over the sum of examples: the default.
inline double weighted_mean(std::span<const metric_sample> samples) {
  double sum = 0, weight = 0;
  for (const auto& s : samples) {
    sum += s.value * double(s.examples);
    weight += double(s.examples);
  }
  return sum / weight;
}
/// Every learner counts the same.
inline double mean(std::span<const metric_sample> samples) {
  double sum = 0;
  for (const auto& s : samples) sum += s.value;
  return sum / double(samples.size());
}
inline double sum(std::span<const metric_sample> samples) {
  double total = 0;
  for (const auto& s : samples) total += s.value;
  return total;
}
inline double min(std::span<const metric_sample> samples) {
  return std::ranges::min(samples, {}, &metric_sample::value).value;
}
inline double max(std::span<const metric_sample> samples) {
  return std::ranges::max(samples, {}, &metric_sample::value).value;
}
}  // namespace reduce

}  // namespace flotilla
