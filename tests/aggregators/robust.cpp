#include <flotilla/aggregators/robust.hpp>

#include <flotilla/aggregators/mean.hpp>
#include <flotilla/aggregators/server_optimizer.hpp>
#include <flotilla/errors.hpp>
#include <flotilla/parameters.hpp>

#include <doctest/doctest.h>

#include "small_parameters.hpp"

#include <algorithm>
#include <cmath>
#include <random>
#include <utility>
#include <vector>

namespace {
using namespace rule_test;
using flotilla::configuration_error;

// The rule's result over `updates` accepted in the given order, with made-up example counts
// (robust rules ignore them).
template <class Rule>
std::vector<double> result_of(Rule rule, const std::vector<std::vector<double>>& updates) {
  rule.start(of(std::vector<double>(updates.front().size(), 0.0)));
  std::int64_t examples = 1;
  for (const auto& update : updates) rule.accept(of(update), examples++ * 7);
  return values_of(rule.result());
}

// The same, for every order of the updates: robust results must not depend on arrival order.
template <class Rule>
std::vector<double> order_free_result_of(const Rule& rule, std::vector<std::vector<double>> updates) {
  std::ranges::sort(updates);
  const auto expected = result_of(rule, updates);
  while (std::ranges::next_permutation(updates).found) REQUIRE(result_of(rule, updates) == expected);
  return expected;
}
}  // namespace

static_assert(flotilla::Aggregator<flotilla::coordinate_median<params>, params>);
static_assert(flotilla::Aggregator<flotilla::trimmed_mean<params>, params>);
static_assert(flotilla::Aggregator<flotilla::krum<params>, params>);
static_assert(flotilla::Aggregator<flotilla::bulyan<params>, params>);
static_assert(flotilla::is_gathering_rule_v<flotilla::krum<params>>);
static_assert(flotilla::is_gathering_rule_v<flotilla::coordinate_median<params>>);
static_assert(!flotilla::is_gathering_rule_v<flotilla::weighted_mean<params>>);
static_assert(!flotilla::is_gathering_rule_v<flotilla::fedadam<params>>);
static_assert(flotilla::is_gathering_rule_v<flotilla::fedavgm<params, flotilla::trimmed_mean<params>>>);

TEST_CASE("the coordinate-wise median, odd and even counts, ties and an outlier") {
  const flotilla::coordinate_median<params> median;
  // Per coordinate: {1, 5, 3} -> 3 and {2, 2, 1e9} -> 2 (the outlier has no pull).
  CHECK(order_free_result_of(median, {{1, 2}, {5, 2}, {3, 1e9}}) == std::vector<double>{3, 2});
  // Even count: the mean of the two middle values, {1, 2, 4, 100} -> 3.
  CHECK(order_free_result_of(median, {{1}, {2}, {4}, {100}}) == std::vector<double>{3});
  CHECK(result_of(median, {{-7.5}}) == std::vector<double>{-7.5});
}

TEST_CASE("the trimmed mean drops floor(beta n) values at each end") {
  // beta 0.2 of 5: one value each side. {-100, 1, 2, 3, 100} -> mean of {1, 2, 3} = 2.
  CHECK(order_free_result_of(flotilla::trimmed_mean<params>(0.2), {{-100, 0}, {1, 0}, {2, 3}, {3, 3}, {100, 3}}) ==
        std::vector<double>{2, 2});
  // beta 0.2 of 4: floor(0.8) = 0, nothing dropped: the plain mean.
  CHECK(result_of(flotilla::trimmed_mean<params>(0.2), {{0}, {1}, {2}, {9}}) == std::vector<double>{3});
  // beta 0.49 of 3: floor(1.47) = 1 each side, the median remains.
  CHECK(result_of(flotilla::trimmed_mean<params>(0.49), {{0}, {1}, {50}}) == std::vector<double>{1});
  CHECK(result_of(flotilla::trimmed_mean<params>(0.0), {{0}, {1}, {50}}) == std::vector<double>{17});
  // The default beta is 0.2: floor(1.0) = 1 of 5 each side.
  CHECK(result_of(flotilla::trimmed_mean<params>(), {{-100}, {1}, {2}, {6}, {100}}) == std::vector<double>{3});
  CHECK(flotilla::trimmed_mean<params>().beta() == 0.2);
  CHECK_THROWS_WITH_AS(flotilla::trimmed_mean<params>(0.5), "trimmed mean's beta must be in [0, 0.5); got 0.500000",
                       configuration_error);
  CHECK_THROWS_AS(flotilla::trimmed_mean<params>(-0.1), configuration_error);
}

TEST_CASE("the trimmed mean floors beta x n as computed in double precision") {
  // 0.35 x 180 is 62.99999999999999 in double: 62 values go from each end (as in Flower and
  // scipy), not 63. With 63 zeros then 117 ones, dropping 62 leaves one zero among 56 values:
  // 55/56; dropping 63 would leave only ones.
  REQUIRE(std::floor(0.35 * 180) == 62);
  std::vector<std::vector<double>> updates(180, {1.0});
  std::fill_n(updates.begin(), 63, std::vector<double>{0.0});
  const auto result = result_of(flotilla::trimmed_mean<params>(0.35), updates);
  CHECK(result == std::vector<double>{55.0 / 56});
}

TEST_CASE("Krum picks the update closest to its n - f - 2 nearest neighbours") {
  // f = 1, n = 5: each score sums the 2 nearest squared distances.
  // 0: 1 + 4 = 5; 1: 1 + 1 = 2; 2: 1 + 1 = 2; 3: 1 + 4 = 5; 100: 97^2 + 98^2.
  // 1 and 2 tie; the tie goes to the smaller update.
  const std::vector<std::vector<double>> points{{0}, {1}, {2}, {3}, {100}};
  CHECK(order_free_result_of(flotilla::krum<params>(1), points) == std::vector<double>{1});
  // f = 0 keeps n - 2 neighbours.
  CHECK(result_of(flotilla::krum<params>(0), {{0}, {10}, {11}}) == std::vector<double>{10});
  CHECK(result_of(flotilla::krum<params>(), {{0}, {10}, {11}}) == std::vector<double>{10});
}

TEST_CASE("Multi-Krum averages the best one-shot scores, not the picks of Krum repeated") {
  SUBCASE("the scores above, with ties") {
    // Multi-Krum keeps those scores: the best two are 1 and 2, mean 1.5; the third is 0 or 3
    // (5 each), the tie to the smaller: mean(1, 2, 0) = 1.
    const std::vector<std::vector<double>> points{{0}, {1}, {2}, {3}, {100}};
    CHECK(order_free_result_of(flotilla::krum<params>(1, 2), points) == std::vector<double>{1.5});
    CHECK(order_free_result_of(flotilla::krum<params>(1, 3), points) == std::vector<double>{1});
  }
  SUBCASE("where the two definitions part, without ties") {
    // f = 0, n = 5: 3 neighbours. 0: 1 + 16 + 25 = 42; 1: 1 + 9 + 16 = 26; 4: 1 + 9 + 9 = 19;
    // 5: 1 + 4 + 16 = 21; 7: 4 + 9 + 36 = 49. The best two, 4 and 5: mean 4.5. (Krum repeated
    // would pick 4, then score {0, 1, 5, 7} over 2 neighbours, 26, 17, 20, 40, and pick 1: 2.5.)
    CHECK(order_free_result_of(flotilla::krum<params>(0, 2), {{0}, {1}, {4}, {5}, {7}}) == std::vector<double>{4.5});
  }
  SUBCASE("three identical updates among ten are the three averaged") {
    // f = 1, n = 10: 7 neighbours. Each 6: 0 + 0 + 9 + 9 + 16 + 16 + 25 = 75; 3: 1 + 4 + 9 + 9 +
    // 9 + 9 + 36 = 77; every other score is above 100. The best three are the 6s: mean 6. (Krum
    // repeated would pick a 6, then 3 with 68 over 6 neighbours against the 6s' 75, then a 6: 5.)
    std::vector<std::vector<double>> points{{0}, {1}, {2}, {3}, {6}, {6}, {6}, {9}, {10}, {11}};
    for (int rotation = 0; rotation < 10; ++rotation) {
      CHECK(result_of(flotilla::krum<params>(1, 3), points) == std::vector<double>{6});
      std::rotate(points.begin(), points.begin() + 3, points.end());  // other arrival orders
    }
  }
  SUBCASE("in several dimensions the scores are squared Euclidean distances") {
    // f = 0, n = 4: 2 neighbours. (0,0): 1 + 1 = 2; (1,0): 1 + 2 = 3; (0,1): 1 + 2 = 3;
    // (5,5): 41 + 41 = 82. The best two: (0,0) and the tie (0,1) < (1,0): mean (0, 0.5).
    CHECK(order_free_result_of(flotilla::krum<params>(0, 2), {{0, 0}, {1, 0}, {0, 1}, {5, 5}}) ==
          std::vector<double>{0, 0.5});
  }
}

TEST_CASE("Krum refuses rounds the math does not allow") {
  CHECK_THROWS_WITH_AS((void)result_of(flotilla::krum<params>(1), {{0}, {1}, {2}, {3}}),
                       "Krum with f = 1 needs at least 2f + 3 = 5 updates; the round has 4", configuration_error);
  CHECK_THROWS_WITH_AS((void)result_of(flotilla::krum<params>(1, 5), {{0}, {1}, {2}, {3}, {4}}),
                       "Multi-Krum cannot select 5 of 5 updates when f = 1 may be Byzantine (at most n - f)",
                       configuration_error);
  CHECK_THROWS_WITH_AS(flotilla::krum<params>(1, 0), "Krum must select at least one update", configuration_error);
  flotilla::krum<params> empty(0);
  empty.start(of({0}));
  CHECK_THROWS_AS((void)empty.result(), flotilla::usage_error);
}

TEST_CASE("Bulyan picks n - 2f updates by repeated Krum and averages the values nearest the median") {
  // f = 1, n = 7: theta = 5 picks, then beta = 3 values per coordinate.
  // Picks: 2 (score 10, tied with 3, smaller wins), 3, 1, 4, 0; never 5 or the outlier 100.
  // Picked {0, 1, 2, 3, 4}: median 2, nearest three {2, 1, 3}, mean 2.
  const std::vector<std::vector<double>> points{{0}, {1}, {2}, {3}, {4}, {5}, {100}};
  CHECK(result_of(flotilla::bulyan<params>(1), points) == std::vector<double>{2});
  std::vector<std::vector<double>> reversed(points.rbegin(), points.rend());
  CHECK(result_of(flotilla::bulyan<params>(1), reversed) == std::vector<double>{2});
  CHECK_THROWS_WITH_AS((void)result_of(flotilla::bulyan<params>(1), {{0}, {1}, {2}, {3}, {4}, {5}}),
                       "Bulyan with f = 1 needs at least 4f + 3 = 7 updates; the round has 6", configuration_error);
  // f = 0: every update picked, and beta = n: the plain mean.
  CHECK(result_of(flotilla::bulyan<params>(0), {{0}, {3}, {9}}) == std::vector<double>{4});
  CHECK(result_of(flotilla::bulyan<params>(), {{0}, {3}, {9}}) == std::vector<double>{4});
}

TEST_CASE("Bulyan's repeated Krum scores anew after each pick and breaks its ties by value") {
  // f = 1, n = 7, points {0, 2, 3, 4, 5, 6, 7}: theta = 5 picks, beta = 3.
  //   4 neighbours: 4 and 5 tie at 10, 4 wins.
  //   3 neighbours among {0, 2, 3, 5, 6, 7}: 38, 14, 14, 9, 11, 21: 5.
  //   2 neighbours among {0, 2, 3, 6, 7}: 13, 5, 10, 10, 17: 2.
  //   1 neighbour among {0, 3, 6, 7}: 9, 9, 1, 1: 6 and 7 are each other's nearest and tie, 6 wins.
  //   1 neighbour among {0, 3, 7}: 9, 9, 16: 0 wins the tie.
  // Picked {0, 2, 4, 5, 6}: median 4, nearest three 4, 5 and (2 or 6, tie to the smaller) 2:
  // mean 11/3. The one-shot selection of Multi-Krum would pick {2, 3, 4, 5, 6} and give 4.
  const auto result = order_free_result_of(flotilla::bulyan<params>(1), {{0}, {2}, {3}, {4}, {5}, {6}, {7}});
  REQUIRE(result.size() == 1);
  CHECK(result[0] == doctest::Approx(11.0 / 3).epsilon(1e-15));
}

TEST_CASE("robust rules merge partial rounds and forget the last round at start") {
  flotilla::coordinate_median<params> edge, root;
  edge.start(of({0}));
  root.start(of({0}));
  edge.accept(of({10}), 1);
  edge.accept(of({20}), 1);
  root.accept(of({-5}), 1);
  root.merge(edge);
  CHECK(root.accepted() == 3);
  CHECK(values_of(root.result()) == std::vector<double>{10});
  root.start(of({0}));
  CHECK(root.accepted() == 0);
  root.accept(of({1}), 1);
  CHECK(values_of(root.result()) == std::vector<double>{1});
}

TEST_CASE("a robust stage composes in front of a server optimizer") {
  // FedAvgM (η = 1, β = 0) over the median: the step is exactly to the median.
  flotilla::fedavgm<params, flotilla::coordinate_median<params>> rule({.learning_rate = 1, .momentum = 0});
  rule.start(of({0}));
  for (double v : {1.0, 2.0, 1000.0}) rule.accept(of({v}), 1);
  CHECK(values_of(rule.result()) == std::vector<double>{2});
}

TEST_CASE("the sorting network sorts every 0/1 input up to 12 values, and so every input (0-1 principle)") {
  for (std::size_t n = 1; n <= 12; ++n) {
    CAPTURE(n);
    const auto network = flotilla::detail::sorting_network(n);
    CHECK(std::ranges::all_of(network, [&](const auto& exchange) { return exchange.first < exchange.second && exchange.second < n; }));
    bool all_sorted = true;
    for (std::uint32_t bits = 0; bits < (1u << n); ++bits) {
      std::vector<int> values(n);
      for (std::size_t i = 0; i < n; ++i) values[i] = int((bits >> i) & 1u);
      for (const auto& [low, high] : network)
        if (values[low] > values[high]) std::swap(values[low], values[high]);
      all_sorted = all_sorted && std::ranges::is_sorted(values);
    }
    CHECK(all_sorted);
  }
  // Batcher's network for 8 has 19 exchanges; for 10, those of 16 that stay below 10.
  CHECK(flotilla::detail::sorting_network(8).size() == 19);
  CHECK(flotilla::detail::sorting_network(1).empty());
  // Larger rounds: random values against std::sort.
  std::mt19937 generator(3);
  for (const std::size_t n : {std::size_t{13}, std::size_t{31}, std::size_t{40}, std::size_t{100}}) {
    const auto network = flotilla::detail::sorting_network(n);
    std::vector<double> values(n);
    for (auto& v : values) v = std::uniform_real_distribution<double>(-1, 1)(generator);
    auto expected = values;
    std::ranges::sort(expected);
    for (const auto& [low, high] : network)
      if (values[low] > values[high]) std::swap(values[low], values[high]);
    CHECK(values == expected);
  }
}

TEST_CASE("a robust rule keeps an update handed over by move, without copying its values") {
  flotilla::coordinate_median<params> by_move, by_copy;
  by_move.start(of({0}));
  by_copy.start(of({0}));
  std::vector<params> updates{of({3, -1}), of({1, 5}), of({2, 0})};
  for (const auto& update : updates) by_copy.accept(update, 1);
  const double* first_values = updates[0].values().data();
  for (auto& update : updates) by_move.accept(std::move(update), 1);
  CHECK(updates[0].values().data() != first_values);  // the buffer went to the rule
  CHECK(values_of(by_move.result()) == std::vector<double>{2, 0});
  CHECK(values_of(by_move.result()) == values_of(by_copy.result()));
}
