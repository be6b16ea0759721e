#include <flotilla/aggregators/server_optimizer.hpp>

#include <flotilla/aggregators/robust.hpp>
#include <flotilla/errors.hpp>
#include <flotilla/parameters.hpp>

#include <doctest/doctest.h>

#include "small_parameters.hpp"

#include <cmath>
#include <vector>

namespace {
using namespace rule_test;

// One round: start from `global`, accept the updates (examples 1 each), return the result.
template <class Rule>
params round_of(Rule& rule, const params& global, std::vector<params> updates) {
  rule.start(global);
  for (const auto& update : updates) rule.accept(update, 1);
  return rule.result();
}
}  // namespace

static_assert(flotilla::Aggregator<flotilla::fedavgm<params>, params>);
static_assert(flotilla::Aggregator<flotilla::fedadam<params>, params>);
static_assert(flotilla::Aggregator<flotilla::fedyogi<params>, params>);
static_assert(flotilla::Aggregator<flotilla::fedadagrad<params>, params>);

TEST_CASE("FedAvgM with learning rate 1 and no momentum is FedAvg exactly") {
  flotilla::fedavgm<params> rule({.learning_rate = 1, .momentum = 0});
  rule.start(of({100, 100}));
  rule.accept(of({1, 2}), 1);
  rule.accept(of({3, 4}), 3);
  rule.accept(of({-2, 0}), 4);
  CHECK(values_of(rule.result()) == std::vector<double>{0.25, 1.75});  // as FedAvg's own test
  CHECK(rule.accepted() == 3);
}

TEST_CASE("FedAvgM accumulates momentum across rounds") {
  flotilla::fedavgm<params> rule({.learning_rate = 0.5, .momentum = 0.9});
  // Round 1: x = 1, mean 3, Δ = 2, m = 2, x = 1 + 0.5 * 2 = 2.
  const auto first = round_of(rule, of({1}), {of({2}), of({4})});
  CHECK(values_of(first) == std::vector<double>{2});
  // Round 2: x = 2, mean 1, Δ = -1, m = 0.9 * 2 - 1 = 0.8, x = 2 + 0.4 = 2.4.
  const auto second = round_of(rule, first, {of({1})});
  CHECK(second.values()[0] == doctest::Approx(2.4).epsilon(1e-15));
  // Rounds 3 and 4 write their moments into the buffers of rounds 1 and 2, which must not leak in.
  // Round 3: x = 2.4, mean 4.4, Δ = 2, m = 0.72 + 2 = 2.72, x = 2.4 + 1.36 = 3.76.
  const auto third = round_of(rule, second, {of({4.4})});
  CHECK(third.values()[0] == doctest::Approx(3.76).epsilon(1e-14));
  // Round 4: x = 3.76, mean 3.76, Δ = 0, m = 2.448, x = 3.76 + 1.224 = 4.984.
  const auto fourth = round_of(rule, third, {of({3.76})});
  CHECK(fourth.values()[0] == doctest::Approx(4.984).epsilon(1e-14));
}

TEST_CASE("FedAdam, FedYogi and FedAdagrad take the paper's steps") {
  // η = 0.1, β1 = 0.9, β2 = 0.99, τ = 1e-3, v starts at τ². Round 1 from x = 0 to a mean of 1:
  // Δ = 1, m = 0.1, then v by each method's rule, x = η m / (√v + τ).
  SUBCASE("FedAdam: v = β2 τ² + (1 - β2) Δ²") {
    flotilla::fedadam<params> rule;
    const auto first = round_of(rule, of({0}), {of({1})});
    CHECK(first.values()[0] == doctest::Approx(0.09900504888254243).epsilon(1e-12));
    // Round 2: Δ = 0.5, m = 0.09 + 0.05, v = 0.99 v + 0.0025.
    const auto second = round_of(rule, first, {of({first.values()[0] + 0.5})});
    CHECK(second.values()[0] == doctest::Approx(0.22360489652905582).epsilon(1e-12));
  }
  SUBCASE("FedYogi: v = v - (1 - β2) Δ² sign(v - Δ²), so v grows while Δ² > v and shrinks after") {
    flotilla::fedyogi<params> rule;
    const auto first = round_of(rule, of({0}), {of({1})});  // v = τ² + 0.01
    CHECK(first.values()[0] == doctest::Approx(0.09900499987500623).epsilon(1e-12));
    // Round 2: Δ = 0.05, Δ² = 0.0025 < v, so v = 0.010001 - 0.01 * 0.0025 = 0.009976.
    const auto second = round_of(rule, first, {of({first.values()[0] + 0.05})});
    CHECK(second.values()[0] == doctest::Approx(0.19317635979259684).epsilon(1e-12));
  }
  SUBCASE("FedAdagrad: v = v + Δ²") {
    flotilla::fedadagrad<params> rule;
    const auto first = round_of(rule, of({0}), {of({1})});
    CHECK(first.values()[0] == doctest::Approx(0.009990004999998752).epsilon(1e-12));
  }
}

TEST_CASE("a server optimizer's result can be read twice; its moments advance at the next start") {
  flotilla::fedavgm<params> rule({.learning_rate = 1, .momentum = 0.5});
  rule.start(of({0}));
  rule.accept(of({2}), 1);
  CHECK(values_of(rule.result()) == std::vector<double>{2});
  CHECK(values_of(rule.result()) == std::vector<double>{2});  // m was not advanced twice
  // A round with no result (quorum missed) leaves the moments alone: m is still 2 here.
  rule.start(of({2}));
  rule.accept(of({2}), 1);  // Δ = 0: the step is the momentum alone, 0.5 * 2
  CHECK(values_of(rule.result()) == std::vector<double>{3});
}

TEST_CASE("a server optimizer merges partial rounds through its inner rule") {
  flotilla::fedavgm<params> edge({.learning_rate = 1, .momentum = 0}), root({.learning_rate = 1, .momentum = 0});
  edge.start(of({0, 0}));
  root.start(of({0, 0}));
  edge.accept(of({4, 8}), 1);
  root.accept(of({2, 2}), 3);
  root.merge(edge);
  CHECK(root.accepted() == 2);
  CHECK(values_of(root.result()) == std::vector<double>{2.5, 3.5});  // (4 + 3 * 2) / 4, (8 + 6) / 4
}

TEST_CASE("a server optimizer starts its moments over when the model's layout changes") {
  flotilla::fedavgm<params> rule({.learning_rate = 1, .momentum = 0.9});
  (void)round_of(rule, of({0}), {of({10})});  // m = 10 for the one-scalar model
  const auto other = round_of(rule, of({0, 0}), {of({1, 1})});
  CHECK(values_of(other) == std::vector<double>{1, 1});  // no momentum carried over
}

TEST_CASE("server optimizer settings outside the method's domain are refused") {
  using flotilla::configuration_error;
  CHECK_THROWS_WITH_AS(flotilla::fedavgm<params>({.learning_rate = 0}), "FedAvgM's server learning rate must be positive",
                       configuration_error);
  CHECK_THROWS_WITH_AS(flotilla::fedavgm<params>({.momentum = 1}), "FedAvgM's momentum must be in [0, 1)",
                       configuration_error);
  CHECK_THROWS_WITH_AS(flotilla::fedadam<params>({.learning_rate = -1}), "the server learning rate must be positive",
                       configuration_error);
  CHECK_THROWS_WITH_AS(flotilla::fedadam<params>({.beta1 = 1}), "beta1 must be in [0, 1)", configuration_error);
  CHECK_THROWS_WITH_AS(flotilla::fedyogi<params>({.beta2 = -0.1}), "beta2 must be in [0, 1)", configuration_error);
  CHECK_THROWS_WITH_AS(flotilla::fedadagrad<params>({.tau = 0}), "tau must be positive", configuration_error);
  flotilla::fedadam<params> unstarted;
  CHECK_THROWS_AS((void)unstarted.result(), flotilla::usage_error);
}

namespace {
// Builds `Rule` every way a user would write it without naming the inner rule, then runs one
// round with each: all must agree, and the step must be finite.
template <class Rule>
void check_constructions() {
  static_assert(flotilla::Aggregator<Rule, params>);
  Rule defaulted;
  Rule copy_list_initialized = {};
  Rule from_options(typename Rule::options_type{});
  Rule from_options_braced{typename Rule::options_type{}};
  Rule with_inner(typename Rule::options_type{}, {});
  const auto updates = std::vector<params>{of({1}), of({2}), of({4})};
  const auto expected = round_of(defaulted, of({0}), updates);
  REQUIRE(std::isfinite(expected.values()[0]));
  CHECK(round_of(copy_list_initialized, of({0}), updates) == expected);
  CHECK(round_of(from_options, of({0}), updates) == expected);
  CHECK(round_of(from_options_braced, of({0}), updates) == expected);
  CHECK(round_of(with_inner, of({0}), updates) == expected);
}

template <template <class, class> class Optimizer>
void check_over_every_inner_rule() {
  check_constructions<Optimizer<params, flotilla::weighted_mean<params>>>();
  check_constructions<Optimizer<params, flotilla::mean<params>>>();
  check_constructions<Optimizer<params, flotilla::coordinate_median<params>>>();
  check_constructions<Optimizer<params, flotilla::trimmed_mean<params>>>();
  check_constructions<Optimizer<params, flotilla::krum<params>>>();
  check_constructions<Optimizer<params, flotilla::bulyan<params>>>();
}

template <class P, class Inner>
using fedavgm_over = flotilla::fedavgm<P, Inner>;
template <class P, class Inner>
using fedadagrad_over = flotilla::fedadagrad<P, Inner>;
template <class P, class Inner>
using fedadam_over = flotilla::fedadam<P, Inner>;
template <class P, class Inner>
using fedyogi_over = flotilla::fedyogi<P, Inner>;
}  // namespace

TEST_CASE("every server optimizer over every inner rule builds from defaults and from options alone") {
  check_over_every_inner_rule<fedavgm_over>();
  check_over_every_inner_rule<fedadagrad_over>();
  check_over_every_inner_rule<fedadam_over>();
  check_over_every_inner_rule<fedyogi_over>();
  // The default inner rules are the defaults of their own types: trimmed mean's beta is 0.2.
  CHECK(flotilla::fedavgm<params, flotilla::trimmed_mean<params>>().inner().beta() == 0.2);
}
