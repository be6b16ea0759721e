#include <flotilla/coordinators/buffered.hpp>

#include <flotilla/round/learner.hpp>
#include <flotilla/round/phases.hpp>
#include <flotilla/round/stopping.hpp>
#include <flotilla/transport/tcp/learner_client.hpp>
#include <flotilla/transport/tcp/server_transport.hpp>

#include <doctest/doctest.h>

#include "scripted_transport.hpp"

#include <chrono>
#include <memory>
#include <thread>
#include <vector>

// FedBuff over real TCP sockets: learners get their next task as soon as they reply, every
// version travels with its task, and the bounded inbox holds whatever arrives meanwhile.

using namespace scripted;
using namespace std::chrono_literals;

namespace {
struct jump {
  params p = of({0, 0});
  params target = of({0, 0});
  const params& parameters() const { return p; }
  void set_parameters(const params& q) { p = q; }
  flotilla::local_result fit(const int&, const flotilla::fit_config&) {
    p = target;
    return {2, {}};
  }
};
using jumper = flotilla::learner<jump, int>;
}  // namespace

TEST_CASE("buffered updates over TCP") {
  flotilla::tcp::server_transport<params> transport(
      {.heartbeat_interval = 100ms, .heartbeat_timeout = 2000ms, .insecure_allow_unauthenticated_network = true});
  std::vector<jumper> learners;
  for (learner_id id = 1; id <= 3; ++id) learners.emplace_back(id, jump{.target = of({double(id), 0})}, 0);
  std::vector<std::unique_ptr<flotilla::tcp::learner_client<jumper>>> clients;
  std::vector<std::thread> threads;
  for (auto& learner : learners)
    clients.push_back(std::make_unique<flotilla::tcp::learner_client<jumper>>(
        learner, flotilla::tcp::client_options{.port = transport.port(), .first_backoff = 50ms, .max_backoff = 200ms}));
  for (auto& client : clients) threads.emplace_back([&client] { (void)client->run(); });
  REQUIRE(flotilla::wait_for_learners(transport, 3, 10s));
  flotilla::buffered_coordinator buffered(transport, of({0, 0}),
                                          {.concurrency = 3, .buffer_size = 2, .task_timeout = 10s, .seed = 2});
  buffered.run(flotilla::stop::after_rounds(6));
  CHECK(buffered.version() == 6);
  for (const auto& record : buffered.history().rounds) {
    CHECK(record.status == flotilla::round_status::aggregated);
    CHECK(record.participants.size() == 2);
    CHECK(record.examples == 4);
    CHECK(record.rejections.empty());
  }
  // Every update moves towards the learners' points (1 to 3, 0) and never past them.
  CHECK(buffered.global().values()[0] > 0);
  CHECK(buffered.global().values()[0] <= 3);
  CHECK(buffered.global().values()[1] == 0);
  transport.say_goodbye();
  for (auto& thread : threads) thread.join();
}
