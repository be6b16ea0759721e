#include <flotilla/transport/in_memory.hpp>

#include "../archetypes/archetypes.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

namespace {

using params = archetypes::parameter_set;
using namespace std::chrono_literals;

struct shared_state {
  std::atomic<int> running{0};
  std::atomic<int> most_running{0};
  std::vector<const params*> seen = std::vector<const params*>(64, nullptr);
};

// A learner that records the parameter object it was handed and how many learners ran at once;
// it waits on `gate` (if set), and throws when `fail` is set.
struct probe_learner {
  using parameters_type = params;
  flotilla::learner_id learner_id = 0;
  std::shared_ptr<shared_state> state;
  std::shared_future<void> gate;
  bool fail = false;

  flotilla::learner_id id() const { return learner_id; }
  flotilla::reply<params> handle(const flotilla::task<params>& work) {
    const int now = ++state->running;
    int best = state->most_running;
    while (now > best && !state->most_running.compare_exchange_weak(best, now)) {}
    state->seen[learner_id] = work.parameters.get();
    if (gate.valid()) gate.wait();
    else std::this_thread::sleep_for(5ms);
    --state->running;
    if (fail) throw std::runtime_error("boom");
    return {learner_id, work.kind, work.round, {1, {}}, *work.parameters};
  }
};
static_assert(flotilla::Learner<probe_learner>);

flotilla::task<params> fit_task(std::uint64_t round) {
  return {flotilla::task_kind::fit, round, std::make_shared<const params>(params{{1.0, 2.0}}), {}};
}

std::vector<flotilla::message<params>> drain(flotilla::in_memory_transport<probe_learner>& transport, std::size_t count) {
  std::vector<flotilla::message<params>> out;
  while (out.size() < count) {
    auto next = transport.receive(flotilla::deadline_clock::now() + 10s);
    REQUIRE(next);
    out.push_back(std::move(*next));
  }
  return out;
}

}  // namespace

static_assert(flotilla::Transport<flotilla::in_memory_transport<probe_learner>>);

TEST_CASE("every learner gets the same parameter object, and at most `workers` run at once") {
  auto state = std::make_shared<shared_state>();
  std::vector<probe_learner> learners;
  for (flotilla::learner_id id = 0; id < 8; ++id) learners.push_back({id, state, {}, false});
  flotilla::in_memory_transport transport(std::move(learners), 2);
  const auto work = fit_task(1);
  const std::vector<flotilla::learner_id> all{0, 1, 2, 3, 4, 5, 6, 7};
  transport.send(work, all);
  const auto replies = drain(transport, 8);
  for (const auto& message : replies) CHECK(std::holds_alternative<flotilla::reply<params>>(message));
  for (flotilla::learner_id id = 0; id < 8; ++id) CHECK(state->seen[id] == work.parameters.get());
  CHECK(state->most_running <= 2);
  CHECK(transport.worker_count() == 2);
}

TEST_CASE("a learner that throws fails alone, with the exception's message") {
  auto state = std::make_shared<shared_state>();
  std::vector<probe_learner> learners{{0, state, {}, false}, {1, state, {}, true}, {2, state, {}, false}};
  flotilla::in_memory_transport transport(std::move(learners), 2);
  transport.send(fit_task(3), std::vector<flotilla::learner_id>{0, 1, 2});
  int replies = 0;
  for (auto& message : drain(transport, 3)) {
    if (auto* failed = std::get_if<flotilla::failure>(&message)) {
      CHECK(failed->learner == 1);
      CHECK(failed->round == 3);
      CHECK(failed->reason == "learner threw: boom");
    } else {
      ++replies;
    }
  }
  CHECK(replies == 2);
}

TEST_CASE("a busy learner is not available, and a task sent to it anyway fails") {
  auto state = std::make_shared<shared_state>();
  std::promise<void> open;
  std::vector<probe_learner> learners{{0, state, open.get_future().share(), false}, {1, state, {}, false}};
  flotilla::in_memory_transport transport(std::move(learners), 2);
  transport.send(fit_task(1), std::vector<flotilla::learner_id>{0});
  while (state->running == 0) std::this_thread::yield();
  CHECK(transport.available() == std::vector<flotilla::learner_id>{1});
  transport.send(fit_task(2), std::vector<flotilla::learner_id>{0, 42});
  auto messages = drain(transport, 2);
  const auto& busy = std::get<flotilla::failure>(messages[0]);
  CHECK(busy.reason == "learner is still busy with an earlier task");
  CHECK(busy.round == 2);
  const auto& unknown = std::get<flotilla::failure>(messages[1]);
  CHECK(unknown.learner == 42);
  CHECK(unknown.reason == "no learner with this id in the federation");
  open.set_value();
  const auto late = drain(transport, 1);
  CHECK(std::get<flotilla::reply<params>>(late[0]).round == 1);
  CHECK(transport.available().size() == 2);
}

TEST_CASE("receive gives up at the deadline") {
  auto state = std::make_shared<shared_state>();
  flotilla::in_memory_transport transport(std::vector<probe_learner>{{0, state, {}, false}}, 1);
  CHECK_FALSE(transport.receive(flotilla::deadline_clock::now() + 20ms));
}

TEST_CASE("two learners with one id are refused") {
  auto state = std::make_shared<shared_state>();
  CHECK_THROWS_WITH_AS(
      flotilla::in_memory_transport(std::vector<probe_learner>{{4, state, {}, false}, {4, state, {}, false}}),
      "two learners share id 4", flotilla::configuration_error);
}
