#include <flotilla/aggregators/robust.hpp>

#include <flotilla/aggregators/mean.hpp>
#include <flotilla/aggregators/server_optimizer.hpp>
#include <flotilla/errors.hpp>
#include <flotilla/parameters.hpp>

#include <doctest/doctest.h>

#include "small_parameters.hpp"

#include <algorithm>
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
  CHECK_THROWS_WITH_AS(flotilla::trimmed_mean<params>(0.5), "trimmed mean's beta must be in [0, 0.5); got 0.500000",
                       configuration_error);
  CHECK_THROWS_AS(flotilla::trimmed_mean<params>(-0.1), configuration_error);
}

TEST_CASE("Krum picks the update closest to its n - f - 2 nearest neighbours") {
  // f = 1, n = 5: each score sums the 2 nearest squared distances.
  // 0: 1 + 4 = 5; 1: 1 + 1 = 2; 2: 1 + 1 = 2; 3: 1 + 4 = 5; 100: 97^2 + 98^2.
  // 1 and 2 tie; the tie goes to the smaller update.
  const std::vector<std::vector<double>> points{{0}, {1}, {2}, {3}, {100}};
  CHECK(order_free_result_of(flotilla::krum<params>(1), points) == std::vector<double>{1});
  // Multi-Krum picks again among the rest, {0, 2, 3, 100}, now with max(1, 4 - 1 - 2) = 1
  // neighbour: 0 -> 4, 2 -> 1, 3 -> 1; 2 and 3 tie, 2 wins: mean(1, 2) = 1.5.
  CHECK(order_free_result_of(flotilla::krum<params>(1, 2), points) == std::vector<double>{1.5});
  // Third pick among {0, 3, 100}, one neighbour each: 0 -> 9, 3 -> 9, tie to 0: mean(1, 2, 0) = 1.
  CHECK(order_free_result_of(flotilla::krum<params>(1, 3), points) == std::vector<double>{1});
  // f = 0 keeps n - 2 neighbours.
  CHECK(result_of(flotilla::krum<params>(0), {{0}, {10}, {11}}) == std::vector<double>{10});
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
  CHECK_THROWS_AS((void)empty.result(), std::logic_error);
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
