#include <flotilla/transport/in_memory.hpp>

#include "../archetypes/archetypes.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
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

template <class Transport>
std::vector<flotilla::message<params>> drain(Transport& transport, std::size_t count) {
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

namespace {
// Counts the learners alive at once: a member of every learner an on-demand transport makes.
struct lifetime {
  std::shared_ptr<std::atomic<int>> alive;
  explicit lifetime(std::shared_ptr<std::atomic<int>> counter) : alive(std::move(counter)) { ++*alive; }
  lifetime(const lifetime& other) : alive(other.alive) { ++*alive; }
  lifetime& operator=(const lifetime&) = delete;
  ~lifetime() { --*alive; }
};

struct made_learner {
  using parameters_type = params;
  probe_learner probe;
  lifetime life;
  flotilla::learner_id id() const { return probe.id(); }
  flotilla::reply<params> handle(const flotilla::task<params>& work) { return probe.handle(work); }
};
}  // namespace

static_assert(flotilla::Transport<flotilla::on_demand_transport<made_learner>>);

TEST_CASE("an on-demand learner exists only while it works, and at most `workers` work at once") {
  auto state = std::make_shared<shared_state>();
  auto alive = std::make_shared<std::atomic<int>>(0);
  std::atomic<int> made{0};
  flotilla::on_demand_transport<made_learner> transport(
      10'000,
      [&](flotilla::learner_id id) {
        ++made;
        return made_learner{{id, state, {}, id == 7}, lifetime(alive)};
      },
      2);
  CHECK(transport.learner_count() == 10'000);
  CHECK(transport.available().size() == 10'000);
  CHECK(made == 0);
  const auto work = fit_task(4);
  transport.send(work, std::vector<flotilla::learner_id>{3, 7, 42, 63});
  auto messages = drain(transport, 4);
  CHECK(made == 4);
  CHECK(*alive == 0);
  CHECK(state->most_running <= 2);
  std::vector<flotilla::learner_id> replied;
  for (const auto& message : messages) {
    if (const auto* failed = std::get_if<flotilla::failure>(&message)) {
      CHECK(failed->learner == 7);
      CHECK(failed->reason == "learner threw: boom");
    } else {
      const auto& answer = std::get<flotilla::reply<params>>(message);
      CHECK(answer.round == 4);
      replied.push_back(answer.learner);
      CHECK(state->seen[answer.learner] == work.parameters.get());
    }
  }
  std::ranges::sort(replied);
  CHECK(replied == std::vector<flotilla::learner_id>{3, 42, 63});
  CHECK(transport.available().size() == 10'000);
}

TEST_CASE("an on-demand learner that cannot be made, or is busy, or unknown, fails alone with the reason") {
  auto state = std::make_shared<shared_state>();
  auto alive = std::make_shared<std::atomic<int>>(0);
  std::promise<void> open;
  const auto gate = open.get_future().share();
  flotilla::on_demand_transport<made_learner> transport(
      5,
      [&](flotilla::learner_id id) {
        if (id == 1) throw std::runtime_error("no data for learner 1");
        if (id == 2) return made_learner{{3, state, {}, false}, lifetime(alive)};  // the wrong one
        return made_learner{{id, state, id == 0 ? gate : std::shared_future<void>{}, false}, lifetime(alive)};
      },
      2);
  transport.send(fit_task(1), std::vector<flotilla::learner_id>{0});
  while (state->running == 0) std::this_thread::yield();
  CHECK(transport.available() == std::vector<flotilla::learner_id>{1, 2, 3, 4});
  transport.send(fit_task(2), std::vector<flotilla::learner_id>{0, 5, 1, 2});
  auto messages = drain(transport, 4);
  std::vector<std::string> reasons;
  for (const auto& message : messages) {
    const auto& failed = std::get<flotilla::failure>(message);
    CHECK(failed.round == 2);
    reasons.push_back(std::to_string(failed.learner) + ": " + failed.reason);
  }
  std::ranges::sort(reasons);
  CHECK(reasons == std::vector<std::string>{"0: learner is still busy with an earlier task",
                                            "1: making the learner failed: no data for learner 1",
                                            "2: the factory made learner 3 when asked for this one",
                                            "5: no learner with this id in the federation of 5"});
  open.set_value();
  CHECK(std::get<flotilla::reply<params>>(drain(transport, 1)[0]).round == 1);
  CHECK(*alive == 0);
}

TEST_CASE("an on-demand federation needs learners and a factory") {
  const auto make = [](flotilla::learner_id) -> made_learner { throw std::logic_error("unused"); };
  CHECK_THROWS_WITH_AS(flotilla::on_demand_transport<made_learner>(0, make),
                       "an on-demand federation needs at least one learner", flotilla::configuration_error);
  CHECK_THROWS_WITH_AS(flotilla::on_demand_transport<made_learner>(3, nullptr),
                       "an on-demand federation needs a function that makes its learners",
                       flotilla::configuration_error);
}

TEST_CASE("an on-demand share holds only the ids given: listed in order, others unknown, none twice") {
  auto state = std::make_shared<shared_state>();
  auto alive = std::make_shared<std::atomic<int>>(0);
  const auto make = [&](flotilla::learner_id id) { return made_learner{{id, state, {}, false}, lifetime(alive)}; };
  flotilla::on_demand_transport<made_learner> share(std::vector<flotilla::learner_id>{12, 3, 7}, make, 2);
  CHECK(share.learner_count() == 3);
  CHECK(share.available() == std::vector<flotilla::learner_id>{3, 7, 12});
  share.send(fit_task(1), std::vector<flotilla::learner_id>{7, 4});
  std::vector<std::string> outcomes;
  for (const auto& message : drain(share, 2)) {
    if (const auto* failed = std::get_if<flotilla::failure>(&message))
      outcomes.push_back(std::to_string(failed->learner) + ": " + failed->reason);
    else
      outcomes.push_back(std::to_string(std::get<flotilla::reply<params>>(message).learner) + ": replied");
  }
  std::ranges::sort(outcomes);
  CHECK(outcomes == std::vector<std::string>{"4: no learner with this id in the federation of 3", "7: replied"});
  CHECK_THROWS_WITH_AS(flotilla::on_demand_transport<made_learner>(std::vector<flotilla::learner_id>{5, 2, 5}, make),
                       "learner id 5 is given twice", flotilla::configuration_error);
  CHECK_THROWS_WITH_AS(flotilla::on_demand_transport<made_learner>(std::vector<flotilla::learner_id>{}, make),
                       "an on-demand federation needs at least one learner", flotilla::configuration_error);
}

TEST_CASE("with a deadline already passed, receive returns a waiting message or nothing, without blocking") {
  auto state = std::make_shared<shared_state>();
  flotilla::in_memory_transport transport(std::vector<probe_learner>{{0, state, {}, false}}, 1);
  CHECK_FALSE(transport.receive(flotilla::deadline_clock::now()));  // nothing sent, nothing waiting
  transport.send(fit_task(1), std::vector<flotilla::learner_id>{0});
  std::optional<flotilla::message<params>> waiting;
  const auto give_up = flotilla::deadline_clock::now() + 10s;
  while (!waiting && flotilla::deadline_clock::now() < give_up) waiting = transport.receive(flotilla::deadline_clock::now());
  REQUIRE(waiting);
  CHECK(std::get<flotilla::reply<params>>(*waiting).round == 1);
  CHECK_FALSE(transport.receive(flotilla::deadline_clock::time_point::min()));
}
