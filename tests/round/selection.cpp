#include <flotilla/round/selection.hpp>

#include <doctest/doctest.h>

#include <flotilla/messages.hpp>
#include <flotilla/parameters.hpp>

#include <algorithm>
#include <limits>
#include <map>
#include <numeric>
#include <optional>
#include <set>
#include <span>
#include <string>
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

namespace {
// Learners 1 to 4 with properties: examples held and a device class.
struct reporting_transport {
  using parameters_type = flotilla::parameters<double>;
  std::vector<flotilla::learner_id> available() const { return {1, 2, 3, 4}; }
  void send(const flotilla::task<parameters_type>&, std::span<const flotilla::learner_id>) {}
  std::optional<flotilla::message<parameters_type>> receive(flotilla::deadline_clock::time_point) { return {}; }
  flotilla::settings properties(flotilla::learner_id id) const {
    return {{"examples", std::int64_t(id * 100)}, {"device", id % 2 ? "phone" : "server"}};
  }
};
static_assert(flotilla::ReportsProperties<reporting_transport>);
}  // namespace

TEST_CASE("selection filters by the properties learners reported") {
  reporting_transport transport;
  flotilla::random_engine engine(1);
  const flotilla::selection_options servers{
      .fraction = 1.0, .minimum = 1, .eligible = [](flotilla::learner_id, const flotilla::settings& p) {
        return flotilla::setting_or(p, "device", std::string()) == "server";
      }, .weight = {}};
  CHECK(flotilla::select_learners(transport, servers, engine) == std::vector<flotilla::learner_id>{2, 4});
  // The fraction counts eligible learners: half of {2, 4} is one of them.
  auto half = servers;
  half.fraction = 0.5;
  const auto one = flotilla::select_learners(transport, half, engine);
  REQUIRE(one.size() == 1);
  CHECK((one[0] == 2 || one[0] == 4));
}

TEST_CASE("weighted selection draws in proportion to the weights and never draws weight 0") {
  // One of {1, 2, 3, 4} per draw, weighted by examples except learner 3 (weight 0): the chances
  // are 100 : 200 : 0 : 400, so 1/7, 2/7, 0 and 4/7.
  reporting_transport transport;
  flotilla::random_engine engine(7);
  const flotilla::selection_options by_examples{
      .fraction = 0.25, .minimum = 1, .eligible = {}, .weight = [](flotilla::learner_id id, const flotilla::settings& p) {
        return id == 3 ? 0.0 : double(flotilla::setting_or(p, "examples", std::int64_t{0}));
      }};
  std::map<flotilla::learner_id, int> drawn;
  constexpr int draws = 28'000;
  for (int i = 0; i < draws; ++i) {
    const auto chosen = flotilla::select_learners(transport, by_examples, engine);
    REQUIRE(chosen.size() == 1);
    ++drawn[chosen[0]];
  }
  CHECK(drawn[3] == 0);
  CHECK(drawn[1] / double(draws) == doctest::Approx(1.0 / 7).epsilon(0.05));
  CHECK(drawn[2] / double(draws) == doctest::Approx(2.0 / 7).epsilon(0.05));
  CHECK(drawn[4] / double(draws) == doctest::Approx(4.0 / 7).epsilon(0.05));
  // Without replacement: asking for all gives every learner of positive weight once.
  auto all = by_examples;
  all.fraction = 1.0;
  CHECK(flotilla::select_learners(transport, all, engine) == std::vector<flotilla::learner_id>{1, 2, 4});
}

TEST_CASE("a weighted sample of indices skips non-positive and non-finite weights") {
  flotilla::random_engine engine(3);
  const std::vector<double> weights{0.0, -1.0, std::numeric_limits<double>::infinity(), 2.0};
  CHECK(flotilla::weighted_sample(weights, 4, engine) == std::vector<std::size_t>{3});
}
