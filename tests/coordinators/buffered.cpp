#include <flotilla/coordinators/buffered.hpp>

#include <flotilla/coordinators/synchronous.hpp>
#include <flotilla/persistence/checkpoint.hpp>
#include <flotilla/round/learner.hpp>
#include <flotilla/round/stopping.hpp>
#include <flotilla/transport/in_memory.hpp>

#include <doctest/doctest.h>

#include "scripted_transport.hpp"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

// FedBuff against hand-computed values: one buffer of every learner at one version is a FedAvg
// round; staleness weights and the staleness limit; a learner that never replies frees its slot.

using namespace scripted;

namespace {

// Training jumps to a fixed point, optionally after a pause: each update is known by hand.
struct jump {
  params p = of({0, 0});
  params target = of({0, 0});
  std::int64_t examples = 1;
  std::chrono::milliseconds pause{0};
  const params& parameters() const { return p; }
  void set_parameters(const params& q) { p = q; }
  flotilla::local_result fit(const int&, const flotilla::fit_config&) {
    std::this_thread::sleep_for(pause);
    p = target;
    return {examples, {{"loss", double(examples)}}};
  }
};
using jumper = flotilla::learner<jump, int>;

std::vector<jumper> four() {
  std::vector<jumper> out;  // examples sum to 16: every mean below is exact
  out.emplace_back(1, jump{.target = of({1, -1}), .examples = 1}, 0);
  out.emplace_back(2, jump{.target = of({2, 5}), .examples = 3}, 0);
  out.emplace_back(3, jump{.target = of({-4, 2}), .examples = 4}, 0);
  out.emplace_back(4, jump{.target = of({8, 0}), .examples = 8}, 0);
  return out;
}

}  // namespace

TEST_CASE("staleness weights against hand-computed values") {
  CHECK(flotilla::staleness::inverse_sqrt(0) == 1);
  CHECK(flotilla::staleness::inverse_sqrt(3) == 0.5);
  CHECK(flotilla::staleness::constant(1000) == 1);
  CHECK(flotilla::staleness::polynomial(2)(1) == 0.25);
  CHECK(flotilla::staleness::polynomial(0.5)(8) == doctest::Approx(1 / 3.0).epsilon(1e-15));
  CHECK_THROWS_WITH_AS((void)flotilla::staleness::polynomial(-1), "the polynomial staleness exponent must be non-negative",
                       flotilla::configuration_error);
}

TEST_CASE("one buffer of every learner at one version, constant weights, rate 1: a FedAvg round exactly") {
  flotilla::in_memory_transport sync_transport(four(), 1);
  flotilla::coordinator fedavg(sync_transport, of({0.5, 0.25}), {.quorum = 4});
  fedavg.run_round();

  flotilla::in_memory_transport transport(four(), 1);  // one worker: the four first replies come first
  flotilla::buffered_coordinator buffered(transport, of({0.5, 0.25}),
                                          {.concurrency = 4, .buffer_size = 4, .staleness_weight = flotilla::staleness::constant});
  const auto& record = buffered.update();
  CHECK(record.status == flotilla::round_status::aggregated);
  CHECK(record.round == 1);
  CHECK(buffered.version() == 1);
  CHECK(record.participants == std::vector<learner_id>{1, 2, 3, 4});
  CHECK(record.examples == 16);
  CHECK(record.central_metrics.at("staleness.0") == 4);
  CHECK(record.central_metrics.at("staleness.max") == 0);
  CHECK(record.fit_metrics.at("loss") == fedavg.history().rounds[0].fit_metrics.at("loss"));
  // (1 - 2 * 3 ... ) / 16: (1 + 6 - 16 + 64) / 16 = 3.4375 and (-1 + 15 + 8) / 16 = 1.375.
  CHECK(values_of(buffered.global()) == std::vector<double>{3.4375, 1.375});
  CHECK(values_of(buffered.global()) == values_of(fedavg.global()));

  // Learners that reply with their update: the same, and no version is kept for them.
  std::vector<flotilla::delta_learner<jumper>> deltas;
  for (auto& one : four()) deltas.emplace_back(std::move(one));
  flotilla::in_memory_transport delta_transport(std::move(deltas), 1);
  flotilla::buffered_coordinator from_deltas(delta_transport, of({0.5, 0.25}),
                                             {.concurrency = 4, .buffer_size = 4, .staleness_weight = flotilla::staleness::constant,
                                              .learners_send_deltas = true});
  from_deltas.update();
  CHECK(values_of(from_deltas.global()) == values_of(fedavg.global()));
}

TEST_CASE("a stale reply counts 1 / sqrt(1 + s) of its update, from the version it was trained on") {
  std::vector<jumper> two;
  two.emplace_back(1, jump{.target = of({4, 0})}, 0);
  two.emplace_back(2, jump{.target = of({0, 8})}, 0);
  flotilla::in_memory_transport transport(std::move(two), 1);
  flotilla::buffered_coordinator buffered(transport, of({0, 0}), {.concurrency = 2, .buffer_size = 1, .seed = 5});
  const auto first = buffered.update();  // the first learner to be asked, from version 0
  REQUIRE(first.participants.size() == 1);
  const auto fast = first.participants[0];
  const auto& second = buffered.update();  // the other one, also from version 0: one version stale
  REQUIRE(second.participants == std::vector<learner_id>{fast == 1 ? learner_id{2} : learner_id{1}});
  CHECK(second.central_metrics.at("staleness.1") == 1);
  const auto fast_target = fast == 1 ? std::vector<double>{4, 0} : std::vector<double>{0, 8};
  const auto slow_target = fast == 1 ? std::vector<double>{0, 8} : std::vector<double>{4, 0};
  const auto now = values_of(buffered.global());
  for (std::size_t i = 0; i < 2; ++i) CHECK(now[i] == doctest::Approx(fast_target[i] + slow_target[i] / std::sqrt(2.0)));
}

TEST_CASE("a reply staler than max_staleness is rejected with the reason") {
  std::vector<jumper> two;
  two.emplace_back(1, jump{.target = of({4, 0})}, 0);
  two.emplace_back(2, jump{.target = of({0, 8})}, 0);
  flotilla::in_memory_transport transport(std::move(two), 1);
  flotilla::buffered_coordinator buffered(transport, of({0, 0}),
                                          {.concurrency = 2, .buffer_size = 1, .max_staleness = 0, .seed = 5});
  const auto fast = buffered.update().participants.at(0);
  const auto& second = buffered.update();
  REQUIRE(second.rejections.size() == 1);
  CHECK(second.rejections[0].learner != fast);
  CHECK(second.rejections[0].reason == "reply is 1 versions stale; the limit is 0 (max_staleness)");
  CHECK(second.participants == std::vector<learner_id>{fast});  // its next reply, from version 1
  CHECK(second.central_metrics.at("staleness.0") == 1);
}

TEST_CASE("a learner that does not reply frees its slot at the task timeout") {
  std::vector<jumper> two;
  two.emplace_back(1, jump{.target = of({1, 1}), .pause = std::chrono::milliseconds(400)}, 0);
  two.emplace_back(2, jump{.target = of({2, 2})}, 0);
  flotilla::in_memory_transport transport(std::move(two), 2);
  flotilla::buffered_coordinator buffered(transport, of({0, 0}),
                                          {.concurrency = 1, .buffer_size = 1, .task_timeout = std::chrono::milliseconds(50)});
  bool given_up = false;
  for (int update = 0; update < 20 && !given_up; ++update)
    for (const auto& rejection : buffered.update().rejections)
      given_up = given_up || (rejection.learner == 1 && rejection.reason == "no reply within the task timeout of 0.05 s");
  CHECK(given_up);
  CHECK(values_of(buffered.global()) == std::vector<double>{2, 2});  // learner 2 took the slot
}

TEST_CASE("settings that cannot work are refused by name") {
  scripted_transport transport{.learners = {1}};
  const auto refused = [&](flotilla::buffered_options options) {
    try {
      flotilla::buffered_coordinator buffered(transport, of({0}), std::move(options));
    } catch (const flotilla::configuration_error& error) {
      return std::string(error.what());
    }
    return std::string("accepted");
  };
  CHECK(refused({.concurrency = 0}) == "concurrency must be at least one learner");
  CHECK(refused({.buffer_size = 0}) == "buffer_size must be at least one reply");
  CHECK(refused({.server_momentum = 1}) == "server_momentum must be in [0, 1)");
  CHECK(refused({.staleness_weight = nullptr}) == "staleness_weight is empty");
}

TEST_CASE("a checkpoint keeps version, model, momentum and history, and the run goes on from it") {
  flotilla::in_memory_transport transport(four(), 1);
  const flotilla::buffered_options options{.concurrency = 2, .buffer_size = 2, .server_momentum = 0.5, .seed = 3};
  flotilla::buffered_coordinator buffered(transport, of({0, 0}), options);
  buffered.run(flotilla::stop::after_rounds(3));
  const auto path = std::filesystem::temp_directory_path() / "flotilla_buffered_checkpoint.bin";
  flotilla::save_checkpoint(buffered, path);
  // A transport of its own: tasks the first coordinator still has out belong to the old one.
  flotilla::in_memory_transport fresh(four(), 1);
  flotilla::buffered_coordinator resumed(fresh, of({0, 0}), options);
  flotilla::load_checkpoint(resumed, path);
  std::filesystem::remove(path);
  CHECK(resumed.version() == 3);
  CHECK(values_of(resumed.global()) == values_of(buffered.global()));
  CHECK(resumed.rule().momentum == buffered.rule().momentum);
  CHECK(resumed.rule().tasks == buffered.rule().tasks);
  CHECK(resumed.history().rounds.size() == 3);
  CHECK(resumed.history().rounds[2].participants == buffered.history().rounds[2].participants);
  CHECK(resumed.update().round == 4);

  flotilla::buffered_coordinator plain(fresh, of({0, 0}), {.concurrency = 2, .buffer_size = 2});  // no momentum
  flotilla::save_checkpoint(buffered, path);
  CHECK_THROWS_WITH_AS(flotilla::load_checkpoint(plain, path),
                       "the restored server momentum holds 2 values; this coordinator keeps 0", flotilla::configuration_error);
  std::filesystem::remove(path);
}

TEST_CASE("learners made on demand: at most `concurrency` at work, one record per buffer") {
  flotilla::on_demand_transport<jumper> transport(100, [](learner_id id) {
    return jumper(id, jump{.target = of({double(id), 1})}, 0);
  }, 2);
  flotilla::buffered_coordinator buffered(transport, of({0, 0}), {.concurrency = 10, .buffer_size = 10, .seed = 1});
  std::size_t most = 0;
  buffered.on_round([&](const flotilla::round_record&) { most = std::max(most, buffered.in_flight()); });
  buffered.run(flotilla::stop::after_rounds(5));
  CHECK(buffered.history().rounds.size() == 5);
  CHECK(buffered.version() == 5);
  CHECK(most <= 10);
  for (const auto& record : buffered.history().rounds) {
    CHECK(record.participants.size() == 10);
    CHECK(record.examples == 10);
  }
  CHECK(buffered.history().stop_reason == "reached the round budget of 5");
}
