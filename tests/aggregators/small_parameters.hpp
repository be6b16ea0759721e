#pragma once
// Small one-tensor parameter sets written as lists, for the rules' hand-computed tests.

#include <flotilla/parameters.hpp>

#include <vector>

namespace rule_test {
using params = flotilla::parameters<double>;

inline params of(std::vector<double> values) {
  params p(flotilla::tensor_layout({{"v", {values.size()}}}));
  for (std::size_t i = 0; i < values.size(); ++i) p.values()[i] = values[i];
  return p;
}
inline std::vector<double> values_of(const params& p) { return {p.values().begin(), p.values().end()}; }
}  // namespace rule_test
