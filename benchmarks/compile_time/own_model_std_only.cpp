// Compile-time baseline for examples/01_your_own_model.cpp: only the standard headers it
// includes itself, and a use of each.
#include <array>
#include <cstdio>
#include <span>
#include <utility>
#include <vector>

int main() {
  std::array<double, 2> data{1, 2};
  std::vector<std::pair<double, double>> points{{1.0, 3.0}};
  const std::span<const double> view(data);
  std::printf("%f %zu\n", view[0] + points[0].second, points.size());
}
