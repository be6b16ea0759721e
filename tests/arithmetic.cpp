#include <flotilla/arithmetic.hpp>

#include <flotilla/parameters.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

namespace {
flotilla::parameters<double> vector_of(std::vector<double> values) {
  flotilla::parameters<double> p(flotilla::tensor_layout({{"v", {values.size()}}}));
  for (std::size_t i = 0; i < values.size(); ++i) p.values()[i] = values[i];
  return p;
}
std::vector<double> values_of(const flotilla::parameters<double>& p) { return {p.values().begin(), p.values().end()}; }
}  // namespace

TEST_CASE("axpy, scale, fill and difference act element by element") {
  auto y = vector_of({1, 2, 3});
  flotilla::axpy(y, 2.0, vector_of({1, -1, 0.5}));
  CHECK(values_of(y) == std::vector<double>{3, 0, 4});
  flotilla::scale(y, 0.5);
  CHECK(values_of(y) == std::vector<double>{1.5, 0, 2});
  CHECK(values_of(flotilla::difference(y, vector_of({0.5, 1, 1}))) == std::vector<double>{1, -1, 1});
  flotilla::fill(y, 7.0);
  CHECK(values_of(y) == std::vector<double>{7, 7, 7});
}

TEST_CASE("norms and dot products") {
  const auto x = vector_of({3, -4, 0});
  CHECK(flotilla::dot(x, vector_of({1, 1, 1})) == -1.0);
  CHECK(flotilla::l2_norm(x) == 5.0);
  CHECK(flotilla::linf_norm(x) == 4.0);
  CHECK(flotilla::linf_norm(flotilla::parameters<double>{}) == 0.0);
}

TEST_CASE("non-finite values are found by index") {
  auto x = vector_of({1, 2, 3, 4});
  CHECK(flotilla::first_non_finite(x) == 4);
  x.values()[2] = std::numeric_limits<double>::infinity();
  CHECK(flotilla::first_non_finite(x) == 2);
  x.values()[1] = std::nan("");
  CHECK(flotilla::first_non_finite(x) == 1);
}

TEST_CASE("mismatched layouts are refused with counts or a layout difference") {
  auto y = vector_of({1, 2, 3});
  CHECK_THROWS_WITH_AS(flotilla::axpy(y, 1.0, vector_of(std::vector<double>(1210, 0.0))),
                       "update has 1,210 parameters; the global model has 3", flotilla::layout_error);
  flotilla::parameters<double> renamed(flotilla::tensor_layout({{"w", {3}}}));
  CHECK_THROWS_WITH_AS(flotilla::axpy(y, 1.0, renamed),
                       "update has 3 parameters like the global model, but its tensor layout (names or shapes) differs",
                       flotilla::layout_error);
  CHECK(values_of(y) == std::vector<double>{1, 2, 3});  // untouched
}
