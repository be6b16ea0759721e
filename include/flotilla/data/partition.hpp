#pragma once
// Splitting a dataset's examples among learners.

#include <cstddef>
#include <cstdint>
#include <numeric>
#include <vector>

#include "flotilla/errors.hpp"
#include "flotilla/random.hpp"

namespace flotilla {

/// IID split: shuffles the example indices with `seed` and deals them into `learners` parts
/// whose sizes differ by at most one. Reproducible for a given seed.
[[nodiscard]] inline std::vector<std::vector<std::size_t>> partition_iid(std::size_t examples, std::size_t learners,
                                                                         std::uint64_t seed) {
  if (learners == 0) throw configuration_error("cannot partition data among zero learners");
  if (learners > examples)
    throw configuration_error("cannot give each of " + std::to_string(learners) + " learners at least one of " +
                              std::to_string(examples) + " examples");
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

}  // namespace flotilla
