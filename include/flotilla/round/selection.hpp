#pragma once
// Which learners take part in a round: a seeded, reproducible sample of those available, among
// those whose reported properties make them eligible, optionally weighted by those properties.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "flotilla/concepts/transport.hpp"
#include "flotilla/errors.hpp"
#include "flotilla/messages.hpp"
#include "flotilla/random.hpp"

namespace flotilla {

/// How many learners a round asks for. With the fixed-size draw (the default): `fraction` of
/// those available, at least `minimum` (or all of them when fewer are available). With Poisson
/// sampling: each available learner independently with probability `fraction`, so the number
/// varies from round to round and may be zero; `minimum` does not apply (forcing more would break
/// the analysis differential privacy's accountant relies on).
struct selection_options {
  double fraction = 1.0;
  std::size_t minimum = 1;
  sampling draw = sampling::fixed_size;
  /// Which learners may be asked, judged by the properties they reported; empty: all. The
  /// fraction and minimum then count the eligible learners.
  std::function<bool(learner_id, const settings& properties)> eligible{};
  /// A learner's chance of being asked relative to the others', from its properties (finite,
  /// positive; a learner weighted 0 or less is never asked); empty: all equal.
  std::function<double(learner_id, const settings& properties)> weight{};

  void validate() const {
    if (!(fraction > 0.0 && fraction <= 1.0))
      throw configuration_error("selection fraction must be in (0, 1]; got " + std::to_string(fraction));
    if (draw == sampling::poisson && weight)
      throw configuration_error("Poisson sampling gives every learner the same probability; it cannot also weight them");
  }
};

namespace detail {
// Ids in order, each once: selection must not depend on the order a transport lists them in.
inline std::vector<learner_id> sorted_unique(std::vector<learner_id> ids) {
  std::ranges::sort(ids);
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}
}  // namespace detail

/// Number of learners to ask when `available` can be reached.
[[nodiscard]] inline std::size_t selection_size(const selection_options& options, std::size_t available) {
  const auto wanted = static_cast<std::size_t>(std::ceil(options.fraction * static_cast<double>(available)));
  return std::min(available, std::max(wanted, options.minimum));
}

/// A uniform sample without replacement (or a Poisson sample), returned sorted by id. The same available set, options
/// and engine state give the same sample: the available ids are sorted before drawing, so the
/// order a transport lists them in does not matter.
[[nodiscard]] inline std::vector<learner_id> select_learners(std::vector<learner_id> available,
                                                             const selection_options& options,
                                                             random_engine& engine) {
  options.validate();
  available = detail::sorted_unique(std::move(available));
  if (options.draw == sampling::poisson) {
    std::vector<learner_id> chosen;  // one draw per learner, in id order: reproducible
    for (const auto id : available)
      if (uniform_unit(engine) < options.fraction) chosen.push_back(id);
    return chosen;
  }
  const auto count = selection_size(options, available.size());
  // Partial Fisher-Yates: the first `count` slots become the sample.
  for (std::size_t i = 0; i < count; ++i)
    std::swap(available[i], available[i + uniform_below(engine, available.size() - i)]);
  available.resize(count);
  std::ranges::sort(available);
  return available;
}

/// What learner `id` reported when it joined, or nothing when the transport does not carry
/// properties.
template <class T>
[[nodiscard]] settings learner_properties(const T& transport, learner_id id) {
  if constexpr (ReportsProperties<T>) return transport.properties(id);
  else return {};
}

/// A sample of `weights.size()` items without replacement, item i drawn with probability
/// proportional to weights[i] at each step (Efraimidis and Spirakis 2006: the `count` largest
/// keys log(u)/w). Returns the chosen indices; items of weight <= 0 are never chosen.
[[nodiscard]] inline std::vector<std::size_t> weighted_sample(std::span<const double> weights, std::size_t count,
                                                              random_engine& engine) {
  std::vector<std::pair<double, std::size_t>> keys;
  for (std::size_t i = 0; i < weights.size(); ++i) {
    const double u = uniform_unit(engine);  // [0, 1): drawn for every item, so draws do not depend on weights
    if (!(weights[i] > 0) || !std::isfinite(weights[i])) continue;
    keys.emplace_back(std::log1p(-u) / weights[i], i);  // log(1 - u) with 1 - u in (0, 1]
  }
  count = std::min(count, keys.size());
  std::partial_sort(keys.begin(), keys.begin() + std::ptrdiff_t(count), keys.end(), std::greater<>());
  std::vector<std::size_t> chosen;
  for (std::size_t i = 0; i < count; ++i) chosen.push_back(keys[i].second);
  return chosen;
}

/// The learners `transport` has available, filtered and weighted by their properties as
/// `options` says, then sampled as above; sorted by id.
template <Transport T>
[[nodiscard]] std::vector<learner_id> select_learners(T& transport, const selection_options& options,
                                                      random_engine& engine) {
  if (!options.eligible && !options.weight) return select_learners(transport.available(), options, engine);
  options.validate();
  std::vector<learner_id> candidates;
  std::vector<double> weights;
  for (const auto id : detail::sorted_unique(transport.available())) {
    const auto properties = learner_properties(transport, id);
    if (options.eligible && !options.eligible(id, properties)) continue;
    candidates.push_back(id);
    weights.push_back(options.weight ? options.weight(id, properties) : 1.0);
  }
  if (!options.weight) return select_learners(std::move(candidates), options, engine);
  std::vector<learner_id> chosen;
  for (const auto i : weighted_sample(weights, selection_size(options, candidates.size()), engine))
    chosen.push_back(candidates[i]);
  std::ranges::sort(chosen);
  return chosen;
}

}  // namespace flotilla
