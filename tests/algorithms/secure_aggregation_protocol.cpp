#include <flotilla/algorithms/secure_aggregation/server.hpp>

#include <flotilla/algorithms/secure_aggregation/learner.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <functional>
#include <optional>
#include <set>
#include <vector>

// Whole secure rounds between in-process learner sessions and an aggregator session: the
// unmasked sum equals the sum of the quantized updates exactly, with or without dropouts at
// every stage; too many dropouts end the round with the reason.

namespace secagg = flotilla::secure_aggregation;
using seeded = flotilla::privacy::seeded_random_for_tests_only;

namespace {

struct dropouts {
  std::set<std::uint64_t> after_advertising{}, after_sharing{}, after_masking{};
};

struct outcome {
  std::vector<std::uint32_t> sum{};           // unmasked by the aggregator
  std::vector<std::vector<std::uint32_t>> seen{};  // every masked input the aggregator received
  std::size_t most_key_shares_of_a_contributor = 0;
  std::vector<std::uint32_t> expected{};      // the contributors' quantized updates, summed in the clear
  std::vector<std::uint64_t> contributors{};
  std::optional<std::string> failure{};
};

std::vector<float> update_of(std::uint64_t index, std::size_t values) {
  std::vector<float> update(values);
  for (std::size_t i = 0; i < values; ++i) update[i] = float(std::sin(double(index * 31 + i)) * 3);
  return update;
}

outcome run_round(std::size_t n, std::size_t degree, std::size_t threshold, const dropouts& drop, std::size_t values = 257) {
  const secagg::quantization q{};
  secagg::server_session server(7, secagg::harary_graph::random(n, degree), threshold, values, q);
  std::vector<secagg::learner_session> learners;
  for (std::uint64_t i = 1; i <= n; ++i) learners.emplace_back(server.setup_for(i));
  for (auto& learner : learners) REQUIRE_FALSE(server.receive_keys(learner.advertise()));
  outcome out;
  try {
    for (std::uint64_t i = 1; i <= n; ++i) {
      if (drop.after_advertising.contains(i)) continue;
      const auto keys = server.keys_for(i);
      REQUIRE_FALSE(server.receive_shares(i, learners[i - 1].share_keys(keys)));
    }
    for (std::uint64_t i = 1; i <= n; ++i) {
      if (drop.after_advertising.contains(i) || drop.after_sharing.contains(i)) continue;
      const auto update = update_of(i, values);
      const auto input = learners[i - 1].mask(std::span<const float>(update), server.shares_for(i), seeded(i));
      REQUIRE_FALSE(server.receive_masked(input));
      out.seen.push_back(input.values);
    }
    for (std::uint64_t i = 1; i <= n; ++i) {
      if (drop.after_advertising.contains(i) || drop.after_sharing.contains(i) || drop.after_masking.contains(i)) continue;
      REQUIRE_FALSE(server.receive_unmask(learners[i - 1].unmask(server.request_for(i))));
    }
    out.contributors = server.contributors();
    for (const auto i : out.contributors)
      out.most_key_shares_of_a_contributor = std::max(out.most_key_shares_of_a_contributor, server.mask_key_shares_held(i));
    out.sum = server.unmasked_sum();
  } catch (const flotilla::security_error& error) {
    out.failure = error.what();
  }
  // The same quantization in the clear (the same rounding streams).
  out.expected.assign(values, 0);
  for (const auto i : out.contributors) {
    const auto update = update_of(i, values);
    std::vector<std::uint32_t> quantized(values);
    secagg::quantize(std::span<const float>(update), q, quantized, seeded(i));
    for (std::size_t v = 0; v < values; ++v) out.expected[v] += quantized[v];
  }
  return out;
}

}  // namespace

TEST_CASE("without dropouts the unmasked sum is the sum of the quantized updates, exactly") {
  SUBCASE("the complete graph (Bonawitz et al.)") {
    const auto result = run_round(6, 5, 3, {});
    REQUIRE_FALSE(result.failure);
    CHECK(result.contributors.size() == 6);
    CHECK(result.sum == result.expected);
  }
  SUBCASE("a sparse Harary graph (SecAgg+)") {
    const auto result = run_round(20, 8, 4, {});
    REQUIRE_FALSE(result.failure);
    CHECK(result.contributors.size() == 20);
    CHECK(result.sum == result.expected);
  }
}

TEST_CASE("dropouts at every stage: the sum of exactly the right survivors") {
  const auto result = run_round(20, 10, 4, {.after_advertising = {2}, .after_sharing = {5, 11}, .after_masking = {7}});
  REQUIRE_FALSE(result.failure);
  // 2 never shared and 5, 11 never sent input: 17 contributors, 7 among them (its input counts;
  // its self seed is rebuilt from its neighbours' shares).
  CHECK(result.contributors.size() == 17);
  CHECK(std::find(result.contributors.begin(), result.contributors.end(), 7) != result.contributors.end());
  CHECK(result.sum == result.expected);
}

TEST_CASE("too many dropouts abort with the reason") {
  // Complete graph of 5, threshold 4: two learners that send input and then vanish leave their
  // self seeds with only 3 holders.
  const auto result = run_round(5, 4, 4, {.after_masking = {1, 2}});
  REQUIRE(result.failure);
  CHECK(result.failure->find("self-mask seed has 3 shares; the threshold is 4") != std::string::npos);
}

TEST_CASE("the learner refuses to hand over both shares of one neighbour") {
  secagg::server_session server(1, secagg::harary_graph::random(4, 3), 2, 3, {});
  std::vector<secagg::learner_session> learners;
  for (std::uint64_t i = 1; i <= 4; ++i) learners.emplace_back(server.setup_for(i));
  for (auto& learner : learners) REQUIRE_FALSE(server.receive_keys(learner.advertise()));
  for (std::uint64_t i = 1; i <= 4; ++i) REQUIRE_FALSE(server.receive_shares(i, learners[i - 1].share_keys(server.keys_for(i))));
  const std::vector<float> update{0.5f, -1, 2};
  (void)learners[0].mask(std::span<const float>(update), server.shares_for(1), seeded(1));
  CHECK_THROWS_WITH_AS((void)learners[0].unmask({.self_seed_of = {2}, .mask_key_of = {2}}),
                       "the aggregator asked for both shares of learner 2; refused", flotilla::security_error);
}

TEST_CASE("forged and misdirected messages are set aside with the reason; the round goes on") {
  secagg::server_session server(3, secagg::harary_graph::random(6, 5), 3, 4, {});
  std::vector<secagg::learner_session> learners;
  for (std::uint64_t i = 1; i <= 6; ++i) learners.emplace_back(server.setup_for(i));
  std::vector<secagg::advertised_keys> advertised;
  for (auto& learner : learners) advertised.push_back(learner.advertise());
  for (const auto& keys : advertised) REQUIRE_FALSE(server.receive_keys(keys));
  CHECK(server.receive_keys(advertised[0]) == "keys from learner 1 a second time");
  CHECK(server.receive_keys({.index = 9}) == "a message from learner 9, not in this round of 6");
  std::vector<std::vector<secagg::sealed_shares>> sent(6);
  for (std::uint64_t i = 1; i <= 6; ++i) sent[i - 1] = learners[i - 1].share_keys(server.keys_for(i));
  auto forged_sender = sent[1];
  forged_sender[0].from = 3;
  CHECK(server.receive_shares(2, forged_sender) ==
        "learner 2 sent a share message from 3 to " + std::to_string(forged_sender[0].to) + ", not to one of its neighbours");
  for (std::uint64_t i = 1; i <= 6; ++i) REQUIRE_FALSE(server.receive_shares(i, sent[i - 1]));
  // Learner 1 receives its real shares plus a copy with a flipped byte and one meant for learner 4.
  auto inbox = server.shares_for(1);
  auto damaged = inbox[0];
  damaged.ciphertext[5] ^= 1;
  auto misdirected = server.shares_for(4)[0];
  std::vector<secagg::sealed_shares> received{damaged, misdirected};
  received.insert(received.end(), inbox.begin() + 1, inbox.end());
  const std::vector<float> update{1, 2, 3, 4};
  const auto input = learners[0].mask(std::span<const float>(update), received, seeded(1));
  const auto& reasons = learners[0].rejections();
  REQUIRE(reasons.size() == 2);
  CHECK(reasons[0] == "shares from learner " + std::to_string(damaged.from) + " fail authentication");
  CHECK(reasons[1] == "shares for learner 4 reached learner 1");
  // The damaged sender still counts as masked with (the pair depends on public keys only).
  CHECK(input.masked_with.size() == 5);
  auto short_input = input;
  short_input.values.pop_back();
  CHECK(server.receive_masked(short_input) == "masked input from learner 1 holds 3 values; the round expects 4");
}

TEST_CASE("the aggregator's view: masked inputs look uniform, and no contributor's mask key can be rebuilt") {
  const auto result = run_round(12, 6, 3, {.after_sharing = {4}}, 4096);
  REQUIRE_FALSE(result.failure);
  // Chi-square of each masked vector's top 4 bits over 16 buckets (15 degrees of freedom): the
  // 1e-7 critical value is about 61, while a quantized update alone (values near 2^21) puts
  // every value in one bucket (a statistic near 61,000).
  for (const auto& values : result.seen) {
    std::array<double, 16> counts{};
    for (const auto v : values) counts[v >> 28] += 1;
    const double expected = double(values.size()) / 16;
    double chi_square = 0;
    for (const double c : counts) chi_square += (c - expected) * (c - expected) / expected;
    CHECK(chi_square < 61);
  }
  // The aggregator asked only for self-seed shares of learners that sent input.
  CHECK(result.most_key_shares_of_a_contributor == 0);
  CHECK(result.sum == result.expected);
}

TEST_CASE("stages run once each and in order") {
  secagg::server_session server(1, secagg::harary_graph::random(3, 2), 2, 2, {});
  secagg::learner_session learner(server.setup_for(1));
  CHECK_THROWS_WITH_AS((void)learner.share_keys({}), "share_keys() out of order in a secure round", flotilla::usage_error);
  CHECK_THROWS_WITH_AS((void)learner.unmask({}), "unmask() before mask(): this learner sent no input", flotilla::usage_error);
  (void)learner.advertise();
  CHECK_THROWS_WITH_AS((void)learner.advertise(), "advertise() out of order in a secure round", flotilla::usage_error);
}

TEST_CASE("between stages the aggregator says when too few learners are left") {
  secagg::server_session server(1, secagg::harary_graph::random(5, 4), 3, 2, {});
  std::vector<secagg::learner_session> learners;
  for (std::uint64_t i = 1; i <= 5; ++i) learners.emplace_back(server.setup_for(i));
  CHECK(server.abort_reason() == "only 0 learners advertised keys; the threshold is 3");
  for (std::uint64_t i = 1; i <= 4; ++i) REQUIRE_FALSE(server.receive_keys(learners[i - 1].advertise()));
  CHECK_FALSE(server.abort_reason());
  REQUIRE_FALSE(server.receive_shares(1, learners[0].share_keys(server.keys_for(1))));
  CHECK(server.abort_reason() == "only 1 learners shared keys; the threshold is 3");
}
