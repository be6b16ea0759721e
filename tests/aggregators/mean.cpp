#include <flotilla/aggregators/mean.hpp>

#include <flotilla/parameters.hpp>

#include <doctest/doctest.h>

#include "small_parameters.hpp"

#include <vector>

namespace {
using namespace rule_test;
const params global = of({100, 100});
}  // namespace

TEST_CASE("FedAvg weights each update by its example count") {
  flotilla::weighted_mean<params> rule;
  rule.start(global);
  rule.accept(of({1, 2}), 1);
  rule.accept(of({3, 4}), 3);
  rule.accept(of({-2, 0}), 4);
  // (1*[1,2] + 3*[3,4] + 4*[-2,0]) / 8 = [2, 14] / 8
  CHECK(values_of(rule.result()) == std::vector<double>{0.25, 1.75});
  CHECK(rule.accepted() == 3);
  CHECK(rule.total_weight() == 8.0);
}

TEST_CASE("FedAvg with equal counts is the plain mean") {
  flotilla::weighted_mean<params> rule;
  rule.start(global);
  rule.accept(of({1, 2}), 5);
  rule.accept(of({3, 6}), 5);
  CHECK(values_of(rule.result()) == std::vector<double>{2, 4});
}

TEST_CASE("the unweighted mean ignores example counts") {
  flotilla::mean<params> rule;
  rule.start(global);
  rule.accept(of({1, 2}), 1);
  rule.accept(of({3, 4}), 3);
  rule.accept(of({-1, 0}), 1000);
  CHECK(values_of(rule.result()) == std::vector<double>{1, 2});
}

TEST_CASE("weights renormalize over the learners that replied") {
  // Of three learners with 2, 2 and 4 examples only the first two replied: the third's missing
  // weight must not shrink the result toward zero.
  flotilla::weighted_mean<params> rule;
  rule.start(global);
  rule.accept(of({2, 2}), 2);
  rule.accept(of({4, 4}), 2);
  CHECK(values_of(rule.result()) == std::vector<double>{3, 3});
}

TEST_CASE("an outlier moves the mean by its weight share") {
  flotilla::weighted_mean<params> rule;
  rule.start(global);
  for (int i = 0; i < 9; ++i) rule.accept(of({0, 0}), 1);
  rule.accept(of({1000, -1000}), 1);
  CHECK(values_of(rule.result()) == std::vector<double>{100, -100});
}

TEST_CASE("the result does not depend on arrival order") {
  const std::vector<std::pair<params, std::int64_t>> updates{{of({1, 2}), 1}, {of({3, 4}), 3}, {of({-2, 0}), 4}};
  flotilla::weighted_mean<params> forward, backward;
  forward.start(global);
  backward.start(global);
  for (const auto& [update, examples] : updates) forward.accept(update, examples);
  for (auto it = updates.rbegin(); it != updates.rend(); ++it) backward.accept(it->first, it->second);
  CHECK(values_of(forward.result()) == values_of(backward.result()));
}

TEST_CASE("merged partial results equal one rule that saw everything") {
  flotilla::weighted_mean<params> edge_a, edge_b, root, single;
  for (auto* rule : {&edge_a, &edge_b, &root, &single}) rule->start(global);
  edge_a.accept(of({1, 2}), 1);
  edge_a.accept(of({3, 4}), 3);
  edge_b.accept(of({-2, 0}), 4);
  root.merge(edge_a);
  root.merge(edge_b);
  single.accept(of({1, 2}), 1);
  single.accept(of({3, 4}), 3);
  single.accept(of({-2, 0}), 4);
  CHECK(values_of(root.result()) == values_of(single.result()));
  CHECK(root.accepted() == 3);
  // Merging an empty partial result changes nothing; merging into an unstarted rule adopts it.
  flotilla::weighted_mean<params> empty, fresh;
  empty.start(global);
  root.merge(empty);
  CHECK(values_of(root.result()) == std::vector<double>{0.25, 1.75});
  fresh.merge(edge_b);
  CHECK(values_of(fresh.result()) == std::vector<double>{-2, 0});
}

TEST_CASE("start forgets the previous round") {
  flotilla::weighted_mean<params> rule;
  rule.start(global);
  rule.accept(of({10, 10}), 1);
  rule.start(global);
  CHECK(rule.accepted() == 0);
  rule.accept(of({1, 3}), 2);
  CHECK(values_of(rule.result()) == std::vector<double>{1, 3});
}

TEST_CASE("misuse is reported, not averaged") {
  flotilla::weighted_mean<params> rule;
  CHECK_THROWS_WITH_AS(rule.accept(of({1, 2}), 1), "accept() before start(): the rule has no layout yet",
                       std::logic_error);
  rule.start(global);
  CHECK_THROWS_WITH_AS((void)rule.result(), "mean of a round with no accepted updates", std::logic_error);
  CHECK_THROWS_AS(rule.accept(of({1, 2, 3}), 1), flotilla::layout_error);
}
