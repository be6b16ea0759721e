#include <flotilla/aggregators/mean.hpp>

#include <flotilla/parameters.hpp>
#include <flotilla/wire/codec.hpp>

#include <doctest/doctest.h>

#include "small_parameters.hpp"

#include <algorithm>
#include <limits>
#include <span>
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

TEST_CASE("a partial state sent as bytes merges as merge() does (how an MPI rank sends its fold)") {
  static_assert(flotilla::PartialAggregator<flotilla::weighted_mean<params>, params>);
  flotilla::weighted_mean<params> rank_a, rank_b;
  rank_a.start(global);
  rank_b.start(global);
  rank_a.accept(of({1, 2}), 1);
  rank_a.accept(of({3, 4}), 3);
  rank_b.accept(of({-2, 0}), 4);
  flotilla::byte_buffer bytes;
  {
    flotilla::wire_writer out(bytes);
    rank_a.write_partial(out);
  }
  flotilla::wire_reader in(bytes, {});
  rank_b.merge_partial(in);
  CHECK(in.remaining() == 0);
  CHECK(values_of(rank_b.result()) == std::vector<double>{0.25, 1.75});  // as hand-computed above
  CHECK(rank_b.accepted() == 3);
  CHECK(rank_b.total_weight() == 8.0);
  // Into a rule that accepted nothing: the sum is adopted.
  flotilla::weighted_mean<params> fresh;
  fresh.start(global);
  flotilla::wire_reader again(bytes, {});
  fresh.merge_partial(again);
  CHECK(values_of(fresh.result()) == std::vector<double>{2.5, 3.5});
  // An empty partial is two numbers and changes nothing.
  flotilla::weighted_mean<params> empty;
  empty.start(global);
  flotilla::byte_buffer nothing;
  {
    flotilla::wire_writer out(nothing);
    empty.write_partial(out);
  }
  CHECK(nothing.size() == 1 + 8 + 8);  // the writer's byte-order mark, the count, the weight
  flotilla::wire_reader none(nothing, {});
  fresh.merge_partial(none);
  CHECK(fresh.accepted() == 2);
}

TEST_CASE("a partial state that is malformed, of another layout, or cut short is refused with the reason") {
  flotilla::weighted_mean<params> rule;
  rule.start(global);
  const auto refused = [&](const flotilla::byte_buffer& bytes) {
    flotilla::wire_reader in(bytes, {});
    rule.merge_partial(in);
  };
  flotilla::byte_buffer bad_weight;
  {
    flotilla::wire_writer out(bad_weight);
    out.write(std::uint64_t{2});
    out.write(std::numeric_limits<double>::quiet_NaN());
  }
  CHECK_THROWS_WITH_AS(refused(bad_weight), "a partial mean of 2 updates has total weight nan", flotilla::decode_error);
  flotilla::weighted_mean<params> wider;
  wider.start(of({1, 2, 3}));
  wider.accept(of({1, 2, 3}), 2);
  flotilla::byte_buffer other_layout;
  {
    flotilla::wire_writer out(other_layout);
    wider.write_partial(out);
  }
  CHECK_THROWS_WITH_AS(refused(other_layout), "a partial sum of 3 values for a model of 2", flotilla::decode_error);
  auto cut = other_layout;
  cut.resize(cut.size() - 4);
  CHECK_THROWS_AS(refused(cut), flotilla::decode_error);
  CHECK(rule.accepted() == 0);  // nothing refused was folded in
  flotilla::weighted_mean<params> unstarted;
  flotilla::wire_reader in(other_layout, {});
  CHECK_THROWS_WITH_AS(unstarted.merge_partial(in), "merge_partial() before start(): the rule has no layout yet",
                       flotilla::usage_error);
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
                       flotilla::usage_error);
  rule.start(global);
  CHECK_THROWS_WITH_AS((void)rule.result(), "mean of a round with no accepted updates", flotilla::usage_error);
  CHECK_THROWS_AS(rule.accept(of({1, 2, 3}), 1), flotilla::layout_error);
}

TEST_CASE("a batch folds to the same bits as accepting its updates one by one") {
  const std::vector<params> updates{of({0.1, 2}), of({0.3, -4}), of({1.0 / 3, 0.7}), of({-0.2, 5})};
  const std::vector<std::int64_t> examples{3, 1, 7, 2};
  flotilla::weighted_mean<params> one_by_one, batched;
  one_by_one.start(global);
  batched.start(global);
  for (std::size_t u = 0; u < updates.size(); ++u) one_by_one.accept(updates[u], examples[u]);
  // Two batches of two: the second adds to what the first wrote.
  std::vector<flotilla::weighted_update<params>> batch;
  for (std::size_t u = 0; u < updates.size(); ++u) batch.push_back({&updates[u], examples[u]});
  batched.accept_batch(std::span(batch).first(2));
  batched.accept_batch(std::span(batch).subspan(2));
  CHECK(batched.accepted() == 4);
  CHECK(batched.total_weight() == 13.0);
  CHECK(values_of(batched.result()) == values_of(one_by_one.result()));
  // (3*[0.1, 2] + [0.3, -4] + 7*[1/3, 0.7] + 2*[-0.2, 5]) / 13 = [2.5333.../13, 16.9/13]
  CHECK(batched.result().values()[0] == doctest::Approx((0.3 + 0.3 + 7.0 / 3 - 0.4) / 13));
  CHECK(batched.result().values()[1] == doctest::Approx(16.9 / 13));
  static_assert(flotilla::BatchAggregator<flotilla::weighted_mean<params>, params>);
}

TEST_CASE("a batch with one update of another layout is refused whole") {
  flotilla::weighted_mean<params> rule;
  rule.start(global);
  rule.accept(of({1, 2}), 1);
  const params good = of({3, 4}), bad = of({1, 2, 3});
  const std::vector<flotilla::weighted_update<params>> batch{{&good, 1}, {&bad, 1}};
  CHECK_THROWS_AS(rule.accept_batch(batch), flotilla::layout_error);
  CHECK(rule.accepted() == 1);
  CHECK(values_of(rule.result()) == std::vector<double>{1, 2});
}

TEST_CASE("merging into a started rule that accepted nothing adopts the other's sum") {
  flotilla::weighted_mean<params> root, edge;
  root.start(global);
  root.accept(of({50, 50}), 1);
  root.start(global);  // the old sum is still in the buffer, but the round is empty
  edge.start(global);
  edge.accept(of({1, 2}), 1);
  edge.accept(of({3, 2}), 1);
  root.merge(edge);
  CHECK(values_of(root.result()) == std::vector<double>{2, 2});
}

TEST_CASE("a model split across threads folds to the same bits as one thread") {
  // 1,000,003 scalars: four pieces of 250,048 with a ragged last one when split four ways.
  using floats = flotilla::parameters<float>;
  constexpr std::size_t size = 1'000'003;
  const floats start(flotilla::tensor_layout({{"w", {size}}}));
  std::vector<floats> updates(3, start);
  for (std::size_t u = 0; u < updates.size(); ++u)
    for (std::size_t i = 0; i < size; ++i) updates[u].values()[i] = float((i * (u + 3)) % 101) * 0.25f - 7.0f;
  std::vector<flotilla::weighted_update<floats>> batch;
  for (std::size_t u = 0; u < updates.size(); ++u) batch.push_back({&updates[u], std::int64_t(u + 1)});

  flotilla::weighted_mean<floats> single(1), split(4);
  single.start(start);
  split.start(start);
  for (const auto& update : batch) single.accept(*update.parameters, update.examples);
  split.accept_batch(batch);
  const floats a = single.result(), b = split.result();
  CHECK(std::ranges::equal(a.values(), b.values()));
  for (const std::size_t i : {std::size_t{0}, std::size_t{250'047}, std::size_t{250'048}, size - 1}) {
    double expected = 0;
    for (std::size_t u = 0; u < updates.size(); ++u) expected += double(u + 1) * updates[u].values()[i];
    CHECK(b.values()[i] == doctest::Approx(expected / 6).epsilon(1e-6));
  }
}

TEST_CASE("fold_updates adds its sources in order, or overwrites with the first") {
  std::vector<double> out(5000, 1.0), a(5000), b(5000);
  for (std::size_t i = 0; i < a.size(); ++i) {
    a[i] = double(i);
    b[i] = -2.0 * double(i);
  }
  const std::vector<const double*> sources{a.data(), b.data()};
  const std::vector<const flotilla::compression::coded_values*> plain{nullptr, nullptr};
  const std::vector<double> weights{3.0, 0.5};
  flotilla::detail::fold_updates<double, double>(out.data(), sources, plain, weights, false, 10, 4999);
  CHECK(out[9] == 1.0);                         // outside [begin, end): untouched
  CHECK(out[10] == 1.0 + 30.0 - 10.0);          // 1 + 3*10 + 0.5*(-20)
  CHECK(out[4998] == 1.0 + 2.0 * 4998.0);       // 1 + 3i - i
  CHECK(out[4999] == 1.0);
  flotilla::detail::fold_updates<double, double>(out.data(), sources, plain, weights, true, 0, 5000);
  CHECK(out[0] == 0.0);
  CHECK(out[4999] == 2.0 * 4999.0);             // the old 1 is gone
}
