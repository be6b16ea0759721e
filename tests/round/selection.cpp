#include <flotilla/round/selection.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <numeric>
#include <set>
#include <vector>

namespace {
std::vector<flotilla::learner_id> ids(std::size_t n) {
  std::vector<flotilla::learner_id> out(n);
  std::iota(out.begin(), out.end(), flotilla::learner_id{100});
  return out;
}
}  // namespace

TEST_CASE("the sample size is the fraction rounded up, at least the minimum, at most all") {
  CHECK(flotilla::selection_size({.fraction = 0.1, .minimum = 1}, 100) == 10);
  CHECK(flotilla::selection_size({.fraction = 0.25, .minimum = 1}, 10) == 3);  // ceil(2.5)
  CHECK(flotilla::selection_size({.fraction = 0.1, .minimum = 5}, 20) == 5);
  CHECK(flotilla::selection_size({.fraction = 0.5, .minimum = 8}, 4) == 4);
  CHECK(flotilla::selection_size({.fraction = 1.0, .minimum = 1}, 0) == 0);
}

TEST_CASE("selection is a sorted sample without repeats, drawn from the available ids") {
  flotilla::random_engine engine(3);
  const auto chosen = flotilla::select_learners(ids(50), {.fraction = 0.2}, engine);
  REQUIRE(chosen.size() == 10);
  CHECK(std::ranges::is_sorted(chosen));
  CHECK(std::set(chosen.begin(), chosen.end()).size() == 10);
  for (auto id : chosen) CHECK((id >= 100 && id < 150));
}

TEST_CASE("the same seed gives the same selections, whatever order ids are listed in") {
  flotilla::random_engine a(42), b(42), c(43);
  auto shuffled = ids(30);
  std::reverse(shuffled.begin(), shuffled.end());
  std::vector<std::vector<flotilla::learner_id>> from_a, from_b, from_c;
  for (int round = 0; round < 5; ++round) {
    from_a.push_back(flotilla::select_learners(ids(30), {.fraction = 0.3}, a));
    from_b.push_back(flotilla::select_learners(shuffled, {.fraction = 0.3}, b));
    from_c.push_back(flotilla::select_learners(ids(30), {.fraction = 0.3}, c));
  }
  CHECK(from_a == from_b);
  CHECK(from_a != from_c);
  CHECK(from_a[0] != from_a[1]);  // rounds draw afresh
}

TEST_CASE("every learner is chosen about equally often") {
  flotilla::random_engine engine(7);
  std::vector<int> counts(10, 0);
  for (int draw = 0; draw < 10000; ++draw)
    for (auto id : flotilla::select_learners(ids(10), {.fraction = 0.3}, engine)) ++counts[id - 100];
  for (int count : counts) CHECK((count > 2700 && count < 3300));  // expected 3000 each
}

TEST_CASE("fractions outside (0, 1] are refused") {
  flotilla::random_engine engine(1);
  CHECK_THROWS_WITH_AS((void)flotilla::select_learners(ids(3), {.fraction = 0.0}, engine),
                       "selection fraction must be in (0, 1]; got 0.000000", flotilla::configuration_error);
  CHECK_THROWS_AS((void)flotilla::select_learners(ids(3), {.fraction = 1.5}, engine), flotilla::configuration_error);
}
