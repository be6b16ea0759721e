// The mean's two accumulators: float64 sums accurate for many float32 updates, and exact
// fixed-point sums whose bits do not depend on order, batching, threads or processes.
#include <flotilla/aggregators/mean.hpp>
#include <flotilla/aggregators/server_optimizer.hpp>
#include <flotilla/detail/fixed_point.hpp>

#include <flotilla/parameters.hpp>
#include <flotilla/wire/codec.hpp>

#include <doctest/doctest.h>

#include "small_parameters.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <span>
#include <vector>

namespace {
using namespace rule_test;
using floats = flotilla::parameters<float>;
using flotilla::detail::fixed_sum;

floats float_vector(std::size_t size) { return floats(flotilla::tensor_layout({{"w", {size}}})); }

// The bits of every value, so that CHECK compares results exactly (NaN-safe, -0 distinct from 0).
template <class P>
std::vector<std::uint64_t> bits_of(const P& p) {
  std::vector<std::uint64_t> bits;
  for (const auto value : p.values()) bits.push_back(std::bit_cast<std::uint64_t>(double(value)));
  return bits;
}

fixed_sum sum_of(std::initializer_list<fixed_sum> terms) {
  fixed_sum sum;
  for (const auto& term : terms) flotilla::detail::add_fixed(sum, term);
  return sum;
}
}  // namespace

TEST_CASE("fixed-point terms are w * x in units of 2^-64, rounded to nearest, ties away from zero") {
  using flotilla::detail::to_fixed;
  CHECK(to_fixed(1.0f, 1).low == 0);
  CHECK(to_fixed(1.0f, 1).middle == 1);  // 1.0 = 2^64 units: the middle limb's lowest bit
  CHECK(to_fixed(1.5f, 3).middle == 4);  // 4.5 = 4 * 2^64 + 2^63
  CHECK(to_fixed(1.5f, 3).low == std::uint64_t{1} << 63);
  CHECK(to_fixed(0x1p-64f, 1).low == 1);
  CHECK(to_fixed(0x1p-65f, 1).low == 1);          // half a unit: away from zero
  CHECK(to_fixed(0x1.8p-66f, 1).low == 0);        // 0.375 units: down
  CHECK(to_fixed(0x1p-149f, 1).low == 0);         // float32's smallest subnormal
  CHECK(to_fixed(0x1p-40f, std::uint64_t{1} << 30).middle == 0);
  CHECK(to_fixed(0x1p-40f, std::uint64_t{1} << 30).low == std::uint64_t{1} << 54);
  // 2^39 * 2^53 = 2^92 = 2^(92 + 64 - 128) in the high limb: the largest term's range is used.
  const auto largest = to_fixed(0x1p39, std::uint64_t{1} << 53);
  CHECK(largest.high == std::int64_t{1} << 28);
  CHECK(largest.middle == 0);
  CHECK(largest.low == 0);
  // Negative terms are two's complement across all three limbs.
  const auto minus_one_unit = to_fixed(-0x1p-64, 1);
  CHECK(minus_one_unit.low == ~std::uint64_t{0});
  CHECK(minus_one_unit.middle == ~std::uint64_t{0});
  CHECK(minus_one_unit.high == -1);
  CHECK(flotilla::detail::to_double(minus_one_unit) == -0x1p-64);
}

TEST_CASE("fixed-point sums are exact, carry across limbs, and read back as doubles") {
  using flotilla::detail::to_fixed;
  using flotilla::detail::to_double;
  // 1.5 * 3 - 2.25 * 2 = 0 exactly, in either order.
  CHECK(to_double(sum_of({to_fixed(1.5f, 3), to_fixed(-2.25f, 2)})) == 0.0);
  CHECK(to_double(sum_of({to_fixed(-2.25f, 2), to_fixed(1.5f, 3)})) == 0.0);
  // A carry out of the low 128 bits: (2^64 - 2^-64) + 2^-64 = 2^64, whose bit is the high limb's.
  fixed_sum below{~std::uint64_t{0}, ~std::uint64_t{0}, 0};
  flotilla::detail::add_fixed(below, to_fixed(0x1p-64, 1));
  CHECK(below.high == 1);
  CHECK(below.middle == 0);
  CHECK(below.low == 0);
  CHECK(to_double(below) == 0x1p64);
  // Cancellation a double sum would lose: 2^39 + 2^-60 - 2^39 leaves 2^-60 exactly.
  CHECK(to_double(sum_of({to_fixed(0x1p39, 1), to_fixed(0x1p-60, 1), to_fixed(-0x1p39, 1)})) == 0x1p-60);
  CHECK((0x1p39 + 0x1p-60) - 0x1p39 == 0.0);  // what float64 makes of it
  // A value with a high limb and a negative sign reads back within an ulp.
  CHECK(to_double(to_fixed(-0x1.234p38, std::uint64_t{1} << 40)) == -0x1.234p78);
}

TEST_CASE("the float64 sum keeps the mean of 10,000 float32 updates within 1e-6 of the exact mean") {
  // Values spanning eight orders of magnitude, of both signs, with example counts 1 to 100: a
  // float32 sum drifts by its rounding at every addition, a float64 one does not.
  constexpr std::size_t learners = 10'000, size = 64;
  std::mt19937 generator(7);
  std::uniform_real_distribution<double> exponent(-4.0, 4.0), unit(0.0, 1.0);
  std::vector<floats> updates(learners, float_vector(size));
  std::vector<std::int64_t> examples(learners);
  for (std::size_t u = 0; u < learners; ++u) {
    examples[u] = 1 + std::int64_t(unit(generator) * 100);
    for (std::size_t i = 0; i < size; ++i)
      updates[u].values()[i] = float((i % 3 == 0 ? -1.0 : 1.0) * std::pow(10.0, exponent(generator)) * (1 + unit(generator)));
  }
  // The reference: exact products (float32 times an integer below 2^29 fits float64) summed with
  // Neumaier's compensation in long double, then divided; far below 1e-6 of error.
  std::vector<double> reference(size);
  long double total_weight = 0;
  for (std::size_t u = 0; u < learners; ++u) total_weight += examples[u];
  for (std::size_t i = 0; i < size; ++i) {
    long double sum = 0, compensation = 0;
    for (std::size_t u = 0; u < learners; ++u) {
      const long double term = double(examples[u]) * double(updates[u].values()[i]);
      const long double next = sum + term;
      compensation += std::fabs(sum) >= std::fabs(term) ? (sum - next) + term : (term - next) + sum;
      sum = next;
    }
    reference[i] = double((sum + compensation) / total_weight);
  }
  flotilla::weighted_mean<floats> rule;
  rule.start(updates[0]);
  std::vector<flotilla::weighted_update<floats>> batch;
  for (std::size_t u = 0; u < learners; ++u) batch.push_back({&updates[u], examples[u]});
  for (std::size_t first = 0; first < learners; first += 100)  // batches of 100, as a busy round folds
    rule.accept_batch(std::span(batch).subspan(first, 100));
  const floats mean = rule.result();
  // What the same fold in float32 gives: the accuracy this test demands is out of its reach.
  double worst = 0, worst_float32 = 0;
  for (std::size_t i = 0; i < size; ++i) {
    float sum32 = 0;
    for (std::size_t u = 0; u < learners; ++u) sum32 += float(examples[u]) * updates[u].values()[i];
    const double scale = std::fabs(reference[i]);
    worst = std::max(worst, std::fabs(double(mean.values()[i]) - reference[i]) / scale);
    worst_float32 = std::max(worst_float32, std::fabs(double(sum32 / float(total_weight)) - reference[i]) / scale);
  }
  CHECK(worst <= 1e-6);
  CHECK(worst_float32 > 1e-6);
}

TEST_CASE("a round's first 16 float32 updates sum in float32, later ones in float64, however batched") {
  static_assert(flotilla::weighted_mean<floats>::narrow_updates == 16);
  static_assert(flotilla::weighted_mean<params>::narrow_updates == 0);  // float64 parameters: float64 throughout
  static_assert(flotilla::deterministic_weighted_mean<floats>::narrow_updates == 0);
  constexpr std::size_t learners = 40;
  std::vector<floats> updates(learners, float_vector(3));
  for (std::size_t u = 0; u < learners; ++u)
    for (std::size_t i = 0; i < 3; ++i) updates[u].values()[i] = 1.0f / float(3 + u + 7 * i);
  std::vector<flotilla::weighted_update<floats>> batch;
  for (std::size_t u = 0; u < learners; ++u) batch.push_back({&updates[u], std::int64_t(1 + u % 5)});
  flotilla::weighted_mean<floats> one_by_one;
  one_by_one.start(updates[0]);
  for (const auto& update : batch) one_by_one.accept(*update.parameters, update.examples);
  const auto expected = bits_of(one_by_one.result());
  for (const std::size_t split : {std::size_t{5}, std::size_t{15}, std::size_t{16}, std::size_t{17}, std::size_t{30}}) {
    CAPTURE(split);  // batches that end before, at and after the switch, or straddle it
    flotilla::weighted_mean<floats> batched;
    batched.start(updates[0]);
    batched.accept_batch(std::span(batch).first(split));
    batched.accept_batch(std::span(batch).subspan(split));
    CHECK(bits_of(batched.result()) == expected);
  }
  // By hand, for the first scalar: float32 sums of w/(3 + u) for u < 16, widened, then float64.
  float narrow = 0;
  double total = 0;
  for (std::size_t u = 0; u < 16; ++u) narrow += float(1 + u % 5) * updates[u].values()[0];
  double wide = narrow;
  for (std::size_t u = 16; u < learners; ++u) wide += double(1 + u % 5) * double(updates[u].values()[0]);
  for (std::size_t u = 0; u < learners; ++u) total += double(1 + u % 5);
  CHECK(one_by_one.result().values()[0] == float(wide * (1.0 / total)));
}

TEST_CASE("narrow and wide sums merge, in memory and as partial states, to the mean of all") {
  std::vector<floats> updates(30, float_vector(2));
  for (std::size_t u = 0; u < updates.size(); ++u) {
    updates[u].values()[0] = float(u);
    updates[u].values()[1] = -0.5f * float(u);
  }
  const auto fold = [&](std::size_t from, std::size_t to) {
    flotilla::weighted_mean<floats> rule;
    rule.start(updates[0]);
    for (std::size_t u = from; u < to; ++u) rule.accept(updates[u], 1);
    return rule;
  };
  // 10 + 4 (still narrow), 10 + 10 (widens), 20 (wide) + 10 (narrow): means of 0..n-1 are exact.
  for (const auto& ends : std::vector<std::pair<std::size_t, std::size_t>>{{10, 14}, {10, 20}, {20, 30}}) {
    const std::size_t a_to = ends.first, b_to = ends.second;  // plain names: CAPTURE's lambda takes them
    CAPTURE(a_to);
    auto a = fold(0, a_to);
    const auto b = fold(a_to, b_to);
    auto c = a;
    a.merge(b);
    CHECK(a.accepted() == b_to);
    CHECK(a.result().values()[0] == float(b_to - 1) / 2);
    CHECK(a.result().values()[1] == -float(b_to - 1) / 4);
    flotilla::byte_buffer bytes;
    {
      flotilla::wire_writer out(bytes);
      b.write_partial(out);
    }
    flotilla::wire_reader in(bytes, {});
    c.merge_partial(in);
    CHECK(c.accepted() == b_to);
    CHECK(c.result().values()[0] == float(b_to - 1) / 2);
  }
}

TEST_CASE("a deterministic mean gives the same bits in every arrival order; a float64 sum does not") {
  // 1e11 and -1e11 cancel; in float64 whatever 1e-5 was added to 1e11 first was rounded away.
  const std::vector<params> updates{of({1e11, 3}), of({1e-5, 0.1}), of({-1e11, 7}), of({0.3, 1.0 / 3})};
  std::vector<std::size_t> order{0, 1, 2, 3};
  std::vector<std::vector<std::uint64_t>> exact_results, float64_results;
  do {
    flotilla::deterministic_mean<params> exact;
    flotilla::mean<params> float64;
    exact.start(updates[0]);
    float64.start(updates[0]);
    for (const auto u : order) {
      exact.accept(updates[u], 1);
      float64.accept(updates[u], 1);
    }
    exact_results.push_back(bits_of(exact.result()));
    float64_results.push_back(bits_of(float64.result()));
  } while (std::ranges::next_permutation(order).found);
  CHECK(std::ranges::count(exact_results, exact_results[0]) == 24);
  CHECK(std::ranges::count(float64_results, float64_results[0]) < 24);  // the data has teeth
  // The exact sum of the first coordinate is 1e-5 + 0.3 (each rounded to 2^-64), over 4.
  flotilla::deterministic_mean<params> exact;
  exact.start(updates[0]);
  for (const auto& update : updates) exact.accept(update, 1);
  CHECK(exact.result().values()[0] == doctest::Approx((1e-5 + 0.3) / 4).epsilon(1e-15));
}

TEST_CASE("a deterministic FedAvg gives the same bits for any batching, threads, merges and partials") {
  constexpr std::size_t size = 300'007, learners = 12;  // large enough to split across threads
  std::vector<floats> updates(learners, float_vector(size));
  std::mt19937 generator(11);
  std::uniform_real_distribution<float> value(-3.0f, 3.0f);
  for (auto& update : updates)
    for (auto& v : update.values()) v = value(generator) * std::pow(10.0f, float(int(generator() % 7) - 3));
  std::vector<flotilla::weighted_update<floats>> batch;
  for (std::size_t u = 0; u < learners; ++u) batch.push_back({&updates[u], std::int64_t(1 + 13 * u % 17)});

  flotilla::deterministic_weighted_mean<floats> one_thread(1);
  one_thread.start(updates[0]);
  for (const auto& update : batch) one_thread.accept(*update.parameters, update.examples);
  const auto expected = bits_of(one_thread.result());

  for (const std::size_t threads : {std::size_t{2}, std::size_t{4}})
    for (const unsigned seed : {1u, 2u, 3u}) {
      auto shuffled = batch;
      std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(seed));
      flotilla::deterministic_weighted_mean<floats> rule(threads);
      rule.start(updates[0]);
      rule.accept_batch(std::span(shuffled).first(5));
      rule.accept_batch(std::span(shuffled).subspan(5));
      CHECK(bits_of(rule.result()) == expected);
    }
  // Two "ranks" each fold half; one merges the other in memory, another from bytes.
  flotilla::deterministic_weighted_mean<floats> rank_a(2), rank_b(2), rank_c(1);
  for (auto* rule : {&rank_a, &rank_b, &rank_c}) rule->start(updates[0]);
  rank_a.accept_batch(std::span(batch).subspan(7));
  rank_b.accept_batch(std::span(batch).first(7));
  rank_c.accept_batch(std::span(batch).first(7));
  rank_b.merge(rank_a);
  CHECK(bits_of(rank_b.result()) == expected);
  flotilla::byte_buffer bytes;
  {
    flotilla::wire_writer out(bytes);
    rank_a.write_partial(out);
  }
  flotilla::wire_reader in(bytes, {});
  rank_c.merge_partial(in);
  CHECK(in.remaining() == 0);
  CHECK(bits_of(rank_c.result()) == expected);
  CHECK(rank_c.accepted() == learners);
}

TEST_CASE("a server optimizer over a deterministic mean steps to the same bits in any order") {
  const std::vector<params> updates{of({1e11, 0.5}), of({2e-5, -0.25}), of({-1e11, 0.125})};
  std::vector<std::size_t> order{0, 1, 2};
  std::vector<std::vector<std::uint64_t>> results;
  do {
    flotilla::fedadam<params, flotilla::deterministic_weighted_mean<params>> adam;
    for (int round = 0; round < 2; ++round) {  // the second round steps from moments the first wrote
      adam.start(of({0, 0}));
      for (const auto u : order) adam.accept(updates[u], std::int64_t(u + 1));
      results.push_back(bits_of(adam.result()));
    }
  } while (std::ranges::next_permutation(order).found);
  for (std::size_t r = 0; r < results.size(); r += 2) {
    CHECK(results[r] == results[0]);
    CHECK(results[r + 1] == results[1]);
  }
}

TEST_CASE("a deterministic mean turns away values and weights outside its range, folding nothing") {
  flotilla::deterministic_weighted_mean<params> rule;
  rule.start(of({0, 0}));
  rule.accept(of({1, 2}), 2);
  static_assert(flotilla::ScreeningAggregator<flotilla::deterministic_weighted_mean<params>, params>);
  static_assert(!flotilla::ScreeningAggregator<flotilla::weighted_mean<params>, params>);
  CHECK(rule.screen(of({-0x1.fffffp39, 1})) == std::nullopt);
  CHECK(rule.screen(of({1, -0x1p40})) == "a value of magnitude 1099511627776 is outside a deterministic mean's range (below 2^40)");
  CHECK(rule.screen(of({1, HUGE_VAL})) == "a value of magnitude inf is outside a deterministic mean's range (below 2^40)");
  CHECK_THROWS_WITH_AS(rule.accept(of({0x1p41, 0}), 1),
                       "a value of magnitude 2199023255552 is outside a deterministic mean's range (below 2^40); "
                       "screen() turns such updates away at the door",
                       flotilla::usage_error);
  CHECK_THROWS_WITH_AS(rule.accept(of({1, std::nan("")}), 1),
                       "a value of magnitude inf is outside a deterministic mean's range (below 2^40); "
                       "screen() turns such updates away at the door",
                       flotilla::usage_error);
  CHECK_THROWS_WITH_AS(rule.accept(of({1, 1}), (std::int64_t{1} << 53) + 2),
                       "a deterministic mean takes whole weights from 0 to 2^53; this update weighs 9007199254740994",
                       flotilla::usage_error);
  // A batch with one bad update is refused whole.
  const params good = of({3, 4}), bad = of({0x1p45, 0});
  const std::vector<flotilla::weighted_update<params>> mixed{{&good, 1}, {&bad, 1}};
  CHECK_THROWS_AS(rule.accept_batch(mixed), flotilla::usage_error);
  CHECK(rule.accepted() == 1);
  CHECK(values_of(rule.result()) == std::vector<double>{1, 2});
}

TEST_CASE("a partial sum of another kind, size or range is refused before anything is folded") {
  flotilla::deterministic_mean<params> exact, exact_other_size;
  flotilla::mean<params> float64;
  exact.start(of({0, 0}));
  exact_other_size.start(of({0, 0, 0}));
  float64.start(of({0, 0}));
  exact.accept(of({1, 2}), 1);
  exact_other_size.accept(of({1, 2, 3}), 1);
  float64.accept(of({5, 6}), 1);
  const auto written = [](const auto& rule) {
    flotilla::byte_buffer bytes;
    flotilla::wire_writer out(bytes);
    rule.write_partial(out);
    return bytes;
  };
  const auto merge_into = [](auto& rule, const flotilla::byte_buffer& bytes) {
    flotilla::wire_reader in(bytes, {});
    rule.merge_partial(in);
  };
  CHECK_THROWS_WITH_AS(merge_into(exact, written(float64)), "a partial float64 sum for a rule that sums in fixed point",
                       flotilla::decode_error);
  CHECK_THROWS_WITH_AS(merge_into(float64, written(exact)), "a partial fixed-point sum for a rule that sums in float64",
                       flotilla::decode_error);
  CHECK_THROWS_WITH_AS(merge_into(exact, written(exact_other_size)), "a partial sum of 3 values for a model of 2",
                       flotilla::decode_error);
  // A forged sum far beyond what one update can add (its high limb past 2^29).
  flotilla::byte_buffer forged;
  {
    flotilla::wire_writer out(forged);
    out.write(std::uint64_t{1});
    out.write(1.0);
    out.write(std::uint8_t{2});
    out.write(std::uint64_t{2});
    for (const std::int64_t high : {std::int64_t{0}, std::int64_t{1} << 29}) {
      out.write(std::uint64_t{0});
      out.write(std::uint64_t{0});
      out.write(high);
    }
  }
  CHECK_THROWS_WITH_AS(merge_into(exact, forged), "partial sum value 1 is out of range for 1 updates", flotilla::decode_error);
  // More updates than one round may fold.
  flotilla::byte_buffer too_many = written(exact);
  {
    flotilla::byte_buffer count;
    flotilla::wire_writer out(count);
    out.write(std::uint64_t{1} << 23);
    std::copy(count.begin() + 1, count.end(), too_many.begin() + 1);  // past the byte-order mark
  }
  CHECK_THROWS_WITH_AS(merge_into(exact, too_many),
                       "a partial sum of 8,388,608 updates takes the round past the 8,388,608 a deterministic mean folds",
                       flotilla::decode_error);
  // A float64 partial holding a NaN.
  flotilla::byte_buffer not_finite;
  {
    flotilla::wire_writer out(not_finite);
    out.write(std::uint64_t{1});
    out.write(1.0);
    out.write(std::uint8_t{1});
    out.write(std::uint64_t{2});
    out.write(0.5);
    out.write(std::nan(""));
  }
  CHECK_THROWS_WITH_AS(merge_into(float64, not_finite), "partial sum value 1 is not finite", flotilla::decode_error);
  CHECK(exact.accepted() == 1);
  CHECK(values_of(exact.result()) == std::vector<double>{1, 2});
  CHECK(float64.accepted() == 1);
  CHECK(values_of(float64.result()) == std::vector<double>{5, 6});
}
