#include <flotilla/algorithms/privacy/server.hpp>

#include <flotilla/aggregators/robust.hpp>
#include <flotilla/aggregators/server_optimizer.hpp>
#include <flotilla/algorithms/privacy/learner.hpp>
#include <flotilla/coordinators/synchronous.hpp>
#include <flotilla/persistence/checkpoint.hpp>
#include <flotilla/round/learner.hpp>
#include <flotilla/round/selection.hpp>
#include <flotilla/round/stopping.hpp>
#include <flotilla/transport/in_memory.hpp>

#include <doctest/doctest.h>

#include "../coordinators/scripted_transport.hpp"

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

// Differential privacy's rules in the round: clipping by hand, the noise's moments, adaptive
// clipping's sequence, the learner side and the door, Poisson selection and the budget stop.

namespace privacy = flotilla::privacy;
using namespace scripted;

namespace {
using seeded = privacy::seeded_random_for_tests_only;

std::string message_of(auto&& action) {
  try {
    action();
  } catch (const flotilla::configuration_error& error) {
    return error.what();
  }
  return "no error";
}

// A learner's model whose training moves it to a fixed point: its update is known by hand.
struct jump_model {
  params p = of({0, 0});
  params target = of({0, 0});
  const params& parameters() const { return p; }
  void set_parameters(const params& q) { p = q; }
  flotilla::local_result fit(const int&, const flotilla::fit_config&) {
    p = target;
    return {1, {}};
  }
};
}  // namespace

TEST_CASE("clipping by hand: deltas below, at and above the bound") {
  const auto global = of({1, 1});
  CHECK(privacy::delta_norm(of({4, 5}), global) == 5);
  CHECK(privacy::clip_factor(0.5, 1) == 1);
  CHECK(privacy::clip_factor(1, 1) == 1);
  CHECK(privacy::clip_factor(5, 1) == 0.2);
  auto scaled = of({4, 5});
  privacy::scale_delta(scaled, global, 0.2, scaled);
  CHECK(values_of(scaled) == std::vector<double>{1.6, 1.8});

  privacy::clip_updates<params> rule(1.0);
  rule.start(global);
  rule.accept(of({1.3, 1.4}), 100);  // norm 0.5: kept (and its 100 examples count as one)
  rule.accept(of({1.6, 1.8}), 1);    // norm 1: at the bound, kept
  rule.accept(of({4, 5}), 1);        // norm 5: scaled to (0.6, 0.8)
  CHECK(rule.accepted() == 3);
  CHECK(rule.within_bound() == 2);
  const auto mean = rule.result();  // 1 + ((0.3, 0.4) + (0.6, 0.8) + (0.6, 0.8)) / 3
  CHECK(mean.values()[0] == doctest::Approx(1.5).epsilon(1e-15));
  CHECK(mean.values()[1] == doctest::Approx(1 + 2.0 / 3).epsilon(1e-15));
}

TEST_CASE("clipping before a robust rule: the median of clipped updates") {
  privacy::clip_updates<params, flotilla::coordinate_median<params>> rule(2.0);
  rule.start(of({0}));
  for (double x : {-10.0, 1.0, 1.5, 30.0, 0.5}) rule.accept(of({x}), 1);
  CHECK(values_of(rule.result()) == std::vector<double>{1.0});  // median of {-2, 1, 1.5, 2, 0.5}
}

TEST_CASE("dp_mean adds N(0, (z C / m)^2) to the clipped mean") {
  const std::size_t size = 400'000;
  params global(flotilla::tensor_layout({{"w", {size}}}));
  flotilla::fill(global, 0.25);
  privacy::dp_mean<params, seeded> rule({.noise_multiplier = 2, .clip_norm = 0.5}, seeded(9));
  rule.start(global);
  for (int i = 0; i < 4; ++i) rule.accept(global, 1);  // zero deltas: the result is global plus noise
  const auto noisy = rule.result();
  const double expected = 2 * 0.5 / 4;
  double sum = 0, squares = 0;
  for (double x : noisy.values()) sum += x - 0.25;
  const double mean = sum / double(size);
  for (double x : noisy.values()) squares += (x - 0.25 - mean) * (x - 0.25 - mean);
  const double variance = squares / double(size - 1);
  CHECK(std::abs(mean) < 5 * expected / std::sqrt(double(size)));
  CHECK(std::abs(variance - expected * expected) < 5 * expected * expected * std::sqrt(2.0 / double(size)));
  CHECK(rule.round_metrics().at("privacy.noise_stddev") == expected);
}

TEST_CASE("adaptive clipping follows the norms' quantile: the sequence by hand with noise off") {
  // Three updates of norms 0.05, 0.2 and 0.3, target quantile 0.5, learning rate 0.2: one of
  // three is within the bound every round here, so C <- C exp(-0.2 (1/3 - 0.5)) each round.
  privacy::dp_mean<params, seeded> rule(
      {.noise_multiplier = 0, .clip_norm = 0.1, .adaptive = privacy::adaptive_clipping{.expected_learners = 3}}, seeded(1));
  double clip = 0.1;
  for (int round = 1; round <= 4; ++round) {
    CAPTURE(round);
    rule.start(of({0}));
    for (double x : {0.05, 0.2, 0.3}) rule.accept(of({x}), 1);
    const auto result = rule.result();
    CHECK(result.values()[0] == doctest::Approx((0.05 + 2 * clip) / 3).epsilon(1e-14));
    CHECK(rule.round_metrics().at("privacy.clip_norm") == doctest::Approx(clip).epsilon(1e-14));
    clip *= std::exp(-0.2 * (1.0 / 3 - 0.5));
    CHECK(rule.next_clip_norm() == doctest::Approx(clip).epsilon(1e-14));
  }
  CHECK(clip == doctest::Approx(0.1 * std::exp(4 * 0.2 / 6)).epsilon(1e-14));
}

TEST_CASE("adaptive clipping splits the noise: z_update = (z^-2 - (2 sigma_b)^-2)^-1/2") {
  const privacy::dp_mean_options options{.noise_multiplier = 1.0,
                                         .adaptive = privacy::adaptive_clipping{.expected_learners = 100}};
  CHECK(options.count_noise() == 5);  // m / 20
  CHECK(options.update_noise_multiplier() == doctest::Approx(1 / std::sqrt(1 - 1 / 100.0)).epsilon(1e-15));
}

TEST_CASE("invalid DP settings are refused with messages naming the value") {
  using options = privacy::dp_mean_options;
  CHECK(message_of([] { options{.noise_multiplier = -1}.validate(); }) ==
        "noise_multiplier must be zero (no noise) or positive; got -1");
  CHECK(message_of([] { options{.clip_norm = 0}.validate(); }) == "clip_norm must be positive and finite; got 0");
  CHECK(message_of([] { options{.clip_norm = -3}.validate(); }) == "clip_norm must be positive and finite; got -3");
  CHECK(message_of([] { options{.noise_multiplier = 1.2, .accounting = privacy::accountant(1.0, 0.1, 1e-5)}.validate(); }) ==
        "the accountant's noise multiplier 1 differs from noise_multiplier 1.2");
  CHECK(message_of([] { options{.noise_multiplier = 0, .accounting = privacy::accountant(1.0, 0.1, 1e-5)}.validate(); }) ==
        "an accountant was given but noise_multiplier is 0: without noise there is no privacy to account");
  CHECK(message_of([] {
          options{.clipping = privacy::clipping_side::learners, .adaptive = privacy::adaptive_clipping{.expected_learners = 10}}
              .validate();
        }) == "adaptive clipping needs every update's norm at the server; with clipping by learners it has none (use "
              "clipping_side::server)");
  CHECK(message_of([] { options{.adaptive = privacy::adaptive_clipping{}}.validate(); }) ==
        "adaptive clipping needs expected_learners, the learners expected per round; got 0");
  CHECK(message_of([] { options{.adaptive = privacy::adaptive_clipping{.target_quantile = 1, .expected_learners = 10}}.validate(); }) ==
        "adaptive clipping's target_quantile must be in (0, 1); got 1");
  CHECK(message_of([] {
          options{.adaptive = privacy::adaptive_clipping{.expected_learners = 10, .count_stddev = std::nan("")}}.validate();
        }) == "adaptive clipping's count_stddev must be finite; got nan");
  // z = 1 with 10 expected learners: count noise 0.5, and 2 * 0.5 does not exceed z.
  CHECK(message_of([] { options{.noise_multiplier = 1, .adaptive = privacy::adaptive_clipping{.expected_learners = 10}}.validate(); }) ==
        "adaptive clipping cannot keep noise_multiplier 1: the count's noise (count_stddev 0.5) must exceed half of it, "
        "as the update's noise multiplier is (z^-2 - (2 count_stddev)^-2)^-1/2; raise count_stddev or expected_learners");
  CHECK(message_of([] { privacy::clip_updates<params> rule(0); }) == "the clip norm must be positive; got 0");
  CHECK(message_of([] { privacy::private_model<jump_model>(jump_model{}, {.clip_norm = -1}); }) ==
        "clip_norm must be positive and finite; got -1");
  CHECK(message_of([] { privacy::private_model<jump_model>(jump_model{}, {.local = privacy::local_noise{.epsilon = 2}}); }) ==
        "local noise: epsilon must be in (0, 1), where the classic Gaussian mechanism's calibration holds; got 2");
  CHECK(message_of([] { privacy::private_model<jump_model>(jump_model{}, {.local = privacy::local_noise{.delta = 0}}); }) ==
        "local noise: delta must be in (0, 1); got 0");
}

TEST_CASE("the learner clips its own update to just under C, and adds local noise when asked") {
  privacy::private_model<jump_model, seeded> model(jump_model{.target = of({3, 4})}, {.clip_norm = 1}, seeded(3));
  model.set_parameters(of({0, 0}));
  (void)model.fit(0, {});
  const double norm = privacy::delta_norm(model.parameters(), of({0, 0}));
  CHECK(norm <= 1);
  CHECK(norm > 1 - 1e-9);
  CHECK(model.parameters().values()[0] / model.parameters().values()[1] == doctest::Approx(0.75).epsilon(1e-12));

  privacy::private_model<jump_model, seeded> noisy(jump_model{.target = of({3, 4})},
                                                    {.clip_norm = 1, .local = privacy::local_noise{.epsilon = 0.5, .delta = 1e-5}},
                                                    seeded(3));
  CHECK(noisy.local_stddev() == doctest::Approx(std::sqrt(2 * std::log(1.25e5)) / 0.5).epsilon(1e-15));
  noisy.set_parameters(of({0, 0}));
  (void)noisy.fit(0, {});
  CHECK(privacy::delta_norm(noisy.parameters(), model.parameters()) > 0);  // the same clipped update, plus noise
}

TEST_CASE("with clipping by learners, the door rejects a reply whose delta exceeds C, with the reason") {
  scripted_transport transport{.learners = {1, 2, 3}};
  transport.respond = [](const flotilla::task<params>& work, std::span<const learner_id>) -> std::vector<message> {
    return {fit_reply(1, work.round, of({0.3, 0.4})), fit_reply(2, work.round, of({3, 4})),
            fit_reply(3, work.round, of({0, 1}))};
  };
  privacy::dp_mean<params, seeded> rule({.noise_multiplier = 0, .clip_norm = 1, .clipping = privacy::clipping_side::learners},
                                        seeded(2));
  flotilla::coordinator federation(transport, of({0, 0}), {.quorum = 1}, rule);
  const auto& record = federation.run_round();
  CHECK(record.participants == std::vector<learner_id>{1, 3});
  CHECK(reasons(record) ==
        std::vector<std::string>{"2: update's delta from the global parameters has L2 norm 5; learners must clip it to 1"});
  CHECK(values_of(federation.global()) == std::vector<double>{0.15, 0.7});  // the mean of the two admitted, unclipped
}

TEST_CASE("honest clipping learners are never rejected by a server checking at the same bound") {
  std::vector<flotilla::learner<privacy::private_model<jump_model, seeded>, int>> learners;
  for (learner_id id = 0; id < 6; ++id)
    learners.emplace_back(id, privacy::private_model<jump_model, seeded>(
                                  jump_model{.target = of({1e3 * double(id + 1), -7.5 * double(id)})}, {.clip_norm = 0.5},
                                  seeded(id)),
                          0);
  flotilla::in_memory_transport transport(std::move(learners), 2);
  privacy::dp_mean<params, seeded> rule({.noise_multiplier = 1, .clip_norm = 0.5, .clipping = privacy::clipping_side::learners,
                                         .accounting = privacy::accountant(1, 1, 1e-5)},
                                        seeded(4));
  flotilla::coordinator federation(transport, of({12345.678, -0.001}), {.quorum = 6}, rule);
  federation.run(flotilla::stop::after_rounds(3));
  for (const auto& record : federation.history().rounds) {
    CHECK(record.rejections.empty());
    CHECK(record.participants.size() == 6);
    CHECK(record.central_metrics.at("privacy.epsilon") == privacy::accountant(1, 1, 1e-5).epsilon(record.round));
  }
}

TEST_CASE("Poisson selection: each learner with probability q, in id order, reproducibly") {
  std::vector<learner_id> population(10'000);
  for (learner_id id = 0; id < population.size(); ++id) population[id] = id;
  const flotilla::selection_options poisson{.fraction = 0.1, .minimum = 5000, .draw = flotilla::sampling::poisson};
  flotilla::random_engine engine(17), again(17);
  double total = 0;
  std::vector<std::size_t> sizes;
  for (int draw = 0; draw < 20; ++draw) {
    const auto chosen = flotilla::select_learners(population, poisson, engine);
    CHECK(chosen == flotilla::select_learners(population, poisson, again));
    CHECK(std::is_sorted(chosen.begin(), chosen.end()));
    sizes.push_back(chosen.size());
    total += double(chosen.size());
  }
  // 200,000 independent trials of probability 0.1: the mean count is 1,000 with standard error
  // sqrt(10,000 * 0.1 * 0.9 / 20) = 6.7; the minimum of 5,000 does not apply.
  CHECK(std::abs(total / 20 - 1000) < 5 * 6.71);
  CHECK(*std::max_element(sizes.begin(), sizes.end()) != *std::min_element(sizes.begin(), sizes.end()));
  CHECK(message_of([] {
          flotilla::selection_options{.draw = flotilla::sampling::poisson, .weight = [](learner_id, const flotilla::settings&) { return 1.0; }}
              .validate();
        }) == "Poisson sampling gives every learner the same probability; it cannot also weight them");
}

TEST_CASE("the budget stops the run before the round that would exceed it") {
  scripted_transport transport{.learners = {1, 2}};
  transport.respond = [](const flotilla::task<params>& work, std::span<const learner_id>) -> std::vector<message> {
    return {fit_reply(1, work.round, of({0.1, 0})), fit_reply(2, work.round, of({0, 0.1}))};
  };
  const privacy::accountant accountant(2.0, 1.0, 1e-5);
  const double budget = (accountant.epsilon(3) + accountant.epsilon(4)) / 2;  // room for 3 rounds, not 4
  privacy::dp_mean<params, seeded> rule({.noise_multiplier = 2, .clip_norm = 1, .accounting = accountant}, seeded(5));
  flotilla::coordinator federation(transport, of({0, 0}), {.quorum = 2}, rule);
  const auto& history = federation.run(flotilla::stop::when_privacy_budget_spent(budget, accountant) ||
                                       flotilla::stop::after_rounds(50));
  REQUIRE(history.rounds.size() == 3);
  CHECK(history.rounds.back().metric("privacy.epsilon") == accountant.epsilon(3));
  CHECK(*history.rounds.back().metric("privacy.epsilon") <= budget);
  CHECK(history.stop_reason.starts_with("the privacy budget: round 4 would spend epsilon " +
                                        flotilla::detail::number(accountant.epsilon(4))));
  CHECK_THROWS_WITH_AS((void)flotilla::stop::when_privacy_budget_spent(0, accountant), "epsilon must be positive and finite; got 0",
                       flotilla::configuration_error);
}

TEST_CASE("a checkpoint keeps the rounds charged and the adaptive clip norm") {
  scripted_transport transport{.learners = {1, 2}};
  transport.respond = [](const flotilla::task<params>& work, std::span<const learner_id>) -> std::vector<message> {
    return {fit_reply(1, work.round, of({0.4})), fit_reply(2, work.round, of({0.5}))};  // both beyond C: it grows
  };
  using rule_type = flotilla::fedavgm<params, privacy::dp_mean<params, seeded>>;
  const privacy::dp_mean_options options{.noise_multiplier = 0, .clip_norm = 0.1,
                                         .adaptive = privacy::adaptive_clipping{.expected_learners = 2}};
  flotilla::coordinator federation(transport, of({0}), {.quorum = 2},
                                   rule_type({.learning_rate = 1, .momentum = 0.5}, privacy::dp_mean<params, seeded>(options, seeded(1))));
  federation.run(flotilla::stop::after_rounds(2));
  const auto path = std::filesystem::temp_directory_path() / "flotilla_privacy_checkpoint.bin";
  flotilla::save_checkpoint(federation, path);
  flotilla::coordinator restored(transport, of({0}), {.quorum = 2},
                                 rule_type({.learning_rate = 1, .momentum = 0.5}, privacy::dp_mean<params, seeded>(options, seeded(1))));
  flotilla::load_checkpoint(restored, path);
  std::filesystem::remove(path);
  CHECK(restored.rule().inner().rounds() == 2);
  CHECK(restored.rule().inner().next_clip_norm() == federation.rule().inner().next_clip_norm());
  CHECK(federation.rule().inner().next_clip_norm() != 0.1);
  // Both go on identically: the same clip norm, momentum and global parameters.
  federation.run_round();
  restored.run_round();
  CHECK(values_of(restored.global()) == values_of(federation.global()));
  CHECK(restored.history().rounds.back().metric("privacy.clip_norm") == federation.history().rounds.back().metric("privacy.clip_norm"));
}
