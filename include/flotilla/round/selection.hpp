#pragma once
// Which learners take part in a round: a seeded, reproducible sample of those available.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "flotilla/errors.hpp"
#include "flotilla/messages.hpp"
#include "flotilla/random.hpp"

namespace flotilla {

/// How many learners a round asks for: `fraction` of those available, at least `minimum`
/// (or all of them when fewer are available).
struct selection_options {
  double fraction = 1.0;
  std::size_t minimum = 1;

  void validate() const {
    if (!(fraction > 0.0 && fraction <= 1.0))
      throw configuration_error("selection fraction must be in (0, 1]; got " + std::to_string(fraction));
  }
};

/// Number of learners to ask when `available` can be reached.
[[nodiscard]] inline std::size_t selection_size(const selection_options& options, std::size_t available) {
  const auto wanted = static_cast<std::size_t>(std::ceil(options.fraction * static_cast<double>(available)));
  return std::min(available, std::max(wanted, options.minimum));
}

/// A uniform sample without replacement, returned sorted by id. The same available set, options
/// and engine state give the same sample: the available ids are sorted before drawing, so the
/// order a transport lists them in does not matter.
[[nodiscard]] inline std::vector<learner_id> select_learners(std::vector<learner_id> available,
                                                             const selection_options& options,
                                                             random_engine& engine) {
  options.validate();
  std::ranges::sort(available);
  available.erase(std::unique(available.begin(), available.end()), available.end());
  const auto count = selection_size(options, available.size());
  // Partial Fisher-Yates: the first `count` slots become the sample.
  for (std::size_t i = 0; i < count; ++i)
    std::swap(available[i], available[i + uniform_below(engine, available.size() - i)]);
  available.resize(count);
  std::ranges::sort(available);
  return available;
}

}  // namespace flotilla
