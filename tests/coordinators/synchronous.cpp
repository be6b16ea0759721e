#include <flotilla/coordinators/synchronous.hpp>

#include <flotilla/parameters.hpp>

#include <doctest/doctest.h>

#include "scripted_transport.hpp"

#include <cmath>
#include <concepts>
#include <deque>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

// The coordinator's door, tested message by message through the scripted transport.

using namespace scripted;

TEST_CASE("every invalid reply is rejected at the door with its reason, and the round goes on") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  scripted_transport transport{.learners = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}};
  transport.respond = [&](const flotilla::task<params>& work, std::span<const learner_id>) -> std::vector<message> {
    if (work.kind != task_kind::fit) return {};
    return {fit_reply(1, 1, of({4, 8}), 2),
            fit_reply(2, 1, of({1, 2, 3})),                        // wrong size
            fit_reply(3, 1, of({1, 2}, "v")),                      // wrong tensor names
            fit_reply(4, 1, of({1, nan})),
            fit_reply(5, 1, of({inf, 1})),
            fit_reply(6, 1, of({1, 1}), 0),
            fit_reply(7, 1, of({1, 1}), -3),
            fit_reply(8, 1, std::nullopt),
            fit_reply(9, 0, of({1, 1})),                           // an earlier round's reply
            flotilla::reply<params>{10, task_kind::evaluate, 1, {5, {}}, std::nullopt},
            fit_reply(1, 1, of({100, 100})),                       // a second reply from learner 1
            fit_reply(99, 1, of({1, 1})),                          // never asked
            flotilla::failure{11, task_kind::fit, 1, "learner threw: out of memory"},
            fit_reply(12, 1, of({2, 2}), 1, {{"loss", nan}}),
            fit_reply(10, 1, of({1, 2}), 2, {{"loss", 0.5}})};
  };
  flotilla::coordinator federation(transport, of({0, 0}), {.selection = {.fraction = 1.0}, .quorum = 2});
  const auto& record = federation.run_round();

  CHECK(record.status == flotilla::round_status::aggregated);
  CHECK(record.participants == std::vector<learner_id>{1, 10});
  CHECK(record.examples == 4);
  CHECK(values_of(federation.global()) == std::vector<double>{2.5, 5});  // (2*[4,8] + 2*[1,2]) / 4
  CHECK(record.fit_metrics.at("loss") == 0.5);  // only learner 10 reported a loss
  CHECK(reasons(record) == std::vector<std::string>{
      "2: update has 3 parameters; the global model has 2",
      "3: update has 2 parameters like the global model, but its tensor layout (names or shapes) differs",
      "4: update holds a non-finite value (nan) at parameter index 1",
      "5: update holds a non-finite value (inf) at parameter index 0",
      "6: reply claims 0 examples; at least one is required",
      "7: reply claims -3 examples; at least one is required",
      "8: fit reply carries no parameters",
      "9: fit reply belongs to round 0; the current round is 1",
      "10: evaluate reply arrived during the fit phase",
      "1: learner was not asked for this task or has already answered it",
      "99: learner was not asked for this task or has already answered it",
      "11: learner threw: out of memory",
      "12: metric 'loss' is nan",
      "9: no reply within the phase deadline of 600 s",
  });
}

TEST_CASE("a round below quorum is discarded and the global parameters are kept") {
  scripted_transport transport{.learners = {1, 2, 3}};
  transport.respond = [](const flotilla::task<params>&, std::span<const learner_id>) -> std::vector<message> {
    return {fit_reply(1, 1, of({5, 5})), fit_reply(2, 1, of({7, std::nan("")}))};
  };
  flotilla::coordinator federation(transport, of({1, 1}), {.quorum = 2});
  const auto& record = federation.run_round();
  CHECK(record.status == flotilla::round_status::discarded);
  CHECK(record.note == "quorum not met: 1 accepted replies, 2 required; global parameters kept");
  CHECK(record.participants == std::vector<learner_id>{1});
  CHECK(values_of(federation.global()) == std::vector<double>{1, 1});
  CHECK(reasons(record) == std::vector<std::string>{"2: update holds a non-finite value (nan) at parameter index 1",
                                                    "3: no reply within the phase deadline of 600 s"});
}

TEST_CASE("no task is sent when fewer learners are available than the quorum") {
  scripted_transport transport{.learners = {1}};
  transport.respond = [](const flotilla::task<params>&, std::span<const learner_id>) { return std::vector<message>{}; };
  flotilla::coordinator federation(transport, of({1, 1}), {.quorum = 2});
  const auto& record = federation.run_round();
  CHECK(record.status == flotilla::round_status::discarded);
  CHECK(record.note == "only 1 learners available; the quorum is 2");
  CHECK(transport.sent.empty());
}

TEST_CASE("a late reply is recognised by its round and recorded in the round it arrives in") {
  scripted_transport transport{.learners = {1, 2}};
  transport.respond = [](const flotilla::task<params>& work, std::span<const learner_id>) -> std::vector<message> {
    if (work.round == 1) return {fit_reply(1, 1, of({2, 2}))};           // learner 2 is slow
    return {fit_reply(2, 1, of({9, 9})), fit_reply(1, 2, of({4, 4})), fit_reply(2, 2, of({6, 6}))};
  };
  flotilla::coordinator federation(transport, of({0, 0}));
  CHECK(reasons(federation.run_round()) == std::vector<std::string>{"2: no reply within the phase deadline of 600 s"});
  const auto& second = federation.run_round();
  CHECK(reasons(second) == std::vector<std::string>{"2: fit reply belongs to round 1; the current round is 2"});
  CHECK(second.rejections[0].round == 1);
  CHECK(second.participants == std::vector<learner_id>{1, 2});
  CHECK(values_of(federation.global()) == std::vector<double>{5, 5});
}

TEST_CASE("one encoded task goes to all selected learners with the round's configuration") {
  scripted_transport transport{.learners = {1, 2, 3}};
  transport.respond = [](const flotilla::task<params>& work, std::span<const learner_id> to) {
    std::vector<message> out;
    for (auto id : to) out.push_back(fit_reply(id, work.round, of({1, 1})));
    return out;
  };
  flotilla::coordinator federation(transport, of({0, 0}), {.seed = 5, .fit_settings = {{"epochs", 3}}});
  federation.run_round();
  REQUIRE(transport.sent.size() == 1);
  CHECK(transport.recipients[0] == std::vector<learner_id>{1, 2, 3});
  const auto& work = transport.sent[0];
  CHECK(work.kind == task_kind::fit);
  CHECK(work.config.round == 1);
  CHECK(work.config.seed == flotilla::mix_seed(5, 1));
  CHECK(work.config.get_integer("epochs", 0) == 3);
  CHECK(values_of(*work.parameters) == std::vector<double>{0, 0});
}

TEST_CASE("configure_fit gives each learner its own settings; the parameters stay shared") {
  scripted_transport transport{.learners = {1, 2, 3}};
  transport.respond = [](const flotilla::task<params>& work, std::span<const learner_id> to) {
    std::vector<message> out;
    for (auto id : to) out.push_back(fit_reply(id, work.round, of({1, 1})));
    return out;
  };
  std::vector<std::pair<learner_id, std::uint64_t>> asked;
  flotilla::coordinator federation(
      transport, of({0, 0}),
      {.fit_settings = {{"epochs", 1}, {"learning_rate", 0.1}},
       .configure_fit = [&](learner_id learner, const flotilla::settings& properties, std::uint64_t round) {
         CHECK(properties.empty());  // this transport reports none
         asked.emplace_back(learner, round);
         flotilla::settings own{{"batch_size", std::int64_t(learner * 10)}};
         if (learner == 2) own["optimizer"] = "adam";
         if (learner == 3) own["learning_rate"] = 0.5;
         return own;
       }});
  CHECK(federation.run_round().participants == std::vector<learner_id>{1, 2, 3});
  CHECK(asked == std::vector<std::pair<learner_id, std::uint64_t>>{{1, 1}, {2, 1}, {3, 1}});
  REQUIRE(transport.sent.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(transport.recipients[i] == std::vector<learner_id>{i + 1});
    CHECK(transport.sent[i].parameters == transport.sent[0].parameters);  // one shared copy
    CHECK(transport.sent[i].config.get_integer("batch_size", 0) == std::int64_t(10 * (i + 1)));
    CHECK(transport.sent[i].config.get_integer("epochs", 0) == 1);
  }
  CHECK(transport.sent[0].config.get_text("optimizer", "sgd") == "sgd");
  CHECK(transport.sent[1].config.get_text("optimizer", "sgd") == "adam");
  CHECK(transport.sent[2].config.get("learning_rate", 0.0) == 0.5);  // over the round's 0.1
  CHECK(transport.sent[0].config.get("learning_rate", 0.0) == 0.1);
  CHECK_THROWS_WITH_AS((void)transport.sent[1].config.get("optimizer", 0.0), "setting 'optimizer' is text; a number was expected",
                       flotilla::task_error);
  CHECK_THROWS_WITH_AS((void)transport.sent[2].config.get_integer("learning_rate", 0),
                       "setting 'learning_rate' is not an integer", flotilla::task_error);
}

TEST_CASE("observers run before and after each round, in the order they were added") {
  scripted_transport transport{.learners = {1}};
  transport.respond = [](const flotilla::task<params>& work, std::span<const learner_id>) -> std::vector<message> {
    return {fit_reply(1, work.round, of({1, 1}))};
  };
  flotilla::coordinator federation(transport, of({0, 0}), flotilla::mean<params>{});  // a rule without options
  static_assert(std::same_as<decltype(federation), flotilla::coordinator<scripted_transport, flotilla::mean<params>>>);
  std::vector<std::string> calls;
  federation.on_round_start([&](std::uint64_t round) {
    calls.push_back("start " + std::to_string(round) + " after " + std::to_string(transport.sent.size()) + " tasks");
  });
  federation.on_round_start([&](std::uint64_t round) { calls.push_back("second start " + std::to_string(round)); });
  federation.on_round([&](const flotilla::round_record& record) { calls.push_back("end " + std::to_string(record.round)); });
  federation.run(flotilla::stop::after_rounds(2));
  CHECK(calls == std::vector<std::string>{"start 1 after 0 tasks", "second start 1", "end 1", "start 2 after 1 tasks",
                                          "second start 2", "end 2"});
}

TEST_CASE("a fit schedule sets each round's values over the fixed settings; evaluation tasks keep the fixed ones") {
  scripted_transport transport{.learners = {1}};
  transport.respond = [](const flotilla::task<params>& work, std::span<const learner_id>) -> std::vector<message> {
    if (work.kind == task_kind::fit) return {fit_reply(1, work.round, of({1, 1}))};
    return {flotilla::reply<params>{1, task_kind::evaluate, work.round, {1, {}}, std::nullopt}};
  };
  flotilla::coordinator federation(
      transport, of({0, 0}),
      {.evaluation_fraction = 1.0,
       .fit_settings = {{"learning_rate", 0.1}, {"epochs", 2}},
       .fit_schedule = [](std::uint64_t round) {
         return flotilla::settings{{"learning_rate", 0.1 / double(round)}};
       }});
  federation.run_round();
  federation.run_round();
  REQUIRE(transport.sent.size() == 4);
  CHECK(transport.sent[0].config.values == flotilla::settings{{"epochs", std::int64_t{2}}, {"learning_rate", 0.1}});
  CHECK(transport.sent[1].kind == task_kind::evaluate);
  CHECK(transport.sent[1].config.get("learning_rate", 0.0) == 0.1);
  CHECK(transport.sent[2].config.values == flotilla::settings{{"epochs", std::int64_t{2}}, {"learning_rate", 0.05}});
}

TEST_CASE("federated evaluation is weighted by examples; central evaluation sees the new global") {
  scripted_transport transport{.learners = {1, 2}};
  transport.respond = [](const flotilla::task<params>& work, std::span<const learner_id>) -> std::vector<message> {
    if (work.kind == task_kind::fit) return {fit_reply(1, 1, of({1, 3}), 1), fit_reply(2, 1, of({3, 1}), 1)};
    return {flotilla::reply<params>{1, task_kind::evaluate, 1, {1, {{"accuracy", 1.0}}}, std::nullopt},
            flotilla::reply<params>{2, task_kind::evaluate, 1, {3, {{"accuracy", 0.0}}}, std::nullopt}};
  };
  flotilla::coordinator federation(transport, of({0, 0}), {.evaluation_fraction = 1.0});
  std::vector<double> evaluated_at;
  federation.evaluate_centrally([&](const params& global) {
    evaluated_at = values_of(global);
    return flotilla::metrics{{"accuracy", 0.5}};
  });
  const auto& record = federation.run_round();
  CHECK(evaluated_at == std::vector<double>{2, 2});
  CHECK(record.central_metrics.at("accuracy") == 0.5);
  CHECK(record.federated_metrics.at("accuracy") == 0.25);
  CHECK(record.evaluated == std::vector<learner_id>{1, 2});
  REQUIRE(transport.sent.size() == 2);
  CHECK(transport.sent[1].kind == task_kind::evaluate);
  CHECK(values_of(*transport.sent[1].parameters) == std::vector<double>{2, 2});
}

TEST_CASE("run stops on its criterion, records why, and reports each round") {
  scripted_transport transport{.learners = {1}};
  transport.respond = [](const flotilla::task<params>& work, std::span<const learner_id>) -> std::vector<message> {
    return {fit_reply(1, work.round, of({double(work.round), 0}), 1, {{"loss", 1.0 / double(work.round)}})};
  };
  flotilla::coordinator federation(transport, of({0, 0}));
  int observed = 0;
  federation.on_round([&](const flotilla::round_record&) { ++observed; });
  const auto& history =
      federation.run(flotilla::stop::after_rounds(10) ||
                     flotilla::stop::when_metric_reaches("fit.loss", 0.25, flotilla::better::lower));
  CHECK(history.rounds.size() == 4);
  CHECK(observed == 4);
  CHECK(history.stop_reason == "fit.loss reached 0.25 (target 0.25)");
  CHECK(federation.rounds_run() == 4);
  CHECK(values_of(federation.global()) == std::vector<double>{4, 0});
  for (const auto& r : history.rounds) CHECK(r.elapsed_seconds >= r.round_seconds);
}

TEST_CASE("the same seed selects the same learners round after round") {
  const auto selections = [](std::uint64_t seed) {
    scripted_transport transport{.learners = {}};
    for (learner_id id = 0; id < 20; ++id) transport.learners.push_back(id);
    transport.respond = [](const flotilla::task<params>&, std::span<const learner_id>) { return std::vector<message>{}; };
    flotilla::coordinator federation(transport, of({0}), {.selection = {.fraction = 0.3}, .seed = seed});
    federation.run(flotilla::stop::after_rounds(5));
    return transport.recipients;
  };
  CHECK(selections(11) == selections(11));
  CHECK(selections(11) != selections(12));
  CHECK(selections(11)[0].size() == 6);
}

TEST_CASE("settings that cannot work are refused when the coordinator is made") {
  scripted_transport transport;
  CHECK_THROWS_WITH_AS(flotilla::coordinator(transport, of({0}), {.quorum = 0}), "quorum must be at least one reply",
                       flotilla::configuration_error);
  CHECK_THROWS_WITH_AS(flotilla::coordinator(transport, of({0}), {.round_timeout = std::chrono::seconds(0)}),
                       "round_timeout must be positive", flotilla::configuration_error);
  CHECK_THROWS_AS(flotilla::coordinator(transport, of({0}), {.selection = {.fraction = 2}}),
                  flotilla::configuration_error);
  CHECK_THROWS_AS(flotilla::coordinator(transport, of({0}), {.evaluation_fraction = -1}), flotilla::configuration_error);
}

TEST_CASE("metrics are weighted by examples unless a reducer is named for them") {
  scripted_transport transport{.learners = {1, 2, 3}};
  transport.respond = [](const flotilla::task<params>&, std::span<const learner_id>) -> std::vector<message> {
    return {fit_reply(1, 1, of({0}), 1, {{"loss", 4.0}, {"steps", 10}, {"accuracy", 0.5}}),
            fit_reply(2, 1, of({0}), 3, {{"loss", 1.0}, {"steps", 30}, {"accuracy", 1.0}}),
            fit_reply(3, 1, of({0}), 4, {{"loss", 2.0}, {"steps", 40}})};
  };
  flotilla::coordinator federation(
      transport, of({0}),
      {.quorum = 3, .metric_reducers = {{"steps", flotilla::reduce::sum}, {"loss", flotilla::reduce::max}}});
  const auto& record = federation.run_round();
  CHECK(record.fit_metrics.at("loss") == 4.0);                       // the worst learner
  CHECK(record.fit_metrics.at("steps") == 80.0);                     // 10 + 30 + 40
  CHECK(record.fit_metrics.at("accuracy") == doctest::Approx(0.875));  // (0.5 * 1 + 1.0 * 3) / 4
}

TEST_CASE("the ready-made metric reducers") {
  const std::vector<flotilla::metric_sample> samples{{2.0, 1}, {-1.0, 3}, {5.0, 4}};
  CHECK(flotilla::reduce::weighted_mean(samples) == doctest::Approx((2.0 - 3.0 + 20.0) / 8));
  CHECK(flotilla::reduce::mean(samples) == 2.0);
  CHECK(flotilla::reduce::sum(samples) == 6.0);
  CHECK(flotilla::reduce::min(samples) == -1.0);
  CHECK(flotilla::reduce::max(samples) == 5.0);
  scripted_transport transport{.learners = {1}};
  CHECK_THROWS_WITH_AS(flotilla::coordinator(transport, of({0}), {.metric_reducers = {{"loss", nullptr}}}),
                       "metric 'loss' has an empty reducer", flotilla::configuration_error);
}

namespace {
// A mean that records how the coordinator handed it updates.
struct batch_recorder {
  flotilla::mean<params> inner;
  std::vector<std::size_t> batches;
  void start(const params& global) { inner.start(global); }
  void accept(const params& update, std::int64_t examples) {
    batches.push_back(1);
    inner.accept(update, examples);
  }
  void accept_batch(std::span<const flotilla::weighted_update<params>> updates) {
    batches.push_back(updates.size());
    inner.accept_batch(updates);
  }
  void merge(const batch_recorder& other) { inner.merge(other.inner); }
  std::size_t accepted() const { return inner.accepted(); }
  params result() const { return inner.result(); }
};
static_assert(flotilla::BatchAggregator<batch_recorder, params>);
}  // namespace

TEST_CASE("replies already waiting are folded as one batch; rejected ones are left out of it") {
  scripted_transport transport{.learners = {1, 2, 3, 4}};
  transport.respond = [](const flotilla::task<params>&, std::span<const learner_id>) -> std::vector<message> {
    return {fit_reply(1, 1, of({1, 1})), fit_reply(2, 1, of({1, 2, 3})), fit_reply(3, 1, of({3, 5})),
            fit_reply(1, 1, of({9, 9})), fit_reply(4, 1, of({5, 3}))};
  };
  flotilla::coordinator<scripted_transport, batch_recorder> federation(transport, of({0, 0}), {.quorum = 3});
  const auto& record = federation.run_round();
  CHECK(federation.rule().batches == std::vector<std::size_t>{3});
  CHECK(record.participants == std::vector<learner_id>{1, 3, 4});
  CHECK(reasons(record) == std::vector<std::string>{"2: update has 3 parameters; the global model has 2",
                                                    "1: learner was not asked for this task or has already answered it"});
  CHECK(values_of(federation.global()) == std::vector<double>{3, 3});
}

TEST_CASE("claimed example counts are capped and their sum checked") {
  scripted_transport transport{.learners = {1, 2, 3}};
  transport.respond = [&](const flotilla::task<params>& work, std::span<const learner_id>) -> std::vector<message> {
    if (work.kind != task_kind::fit) return {};
    return {fit_reply(1, work.round, of({1}), 10), fit_reply(2, work.round, of({0}), std::int64_t{1} << 62),
            fit_reply(3, work.round, of({3}), 30)};
  };
  SUBCASE("a reply over the cap is rejected; the others decide the mean") {
    flotilla::coordinator federation(transport, of({0}), {.selection = {.fraction = 1.0}, .quorum = 1});
    const auto& record = federation.run_round();
    CHECK(record.participants == std::vector<learner_id>{1, 3});
    CHECK(values_of(federation.global()) == std::vector<double>{2.5});  // (10 * 1 + 30 * 3) / 40
    CHECK(reasons(record) == std::vector<std::string>{
        "2: reply claims 4611686018427387904 examples; the limit is 1000000000 (max_examples_per_reply)"});
  }
  SUBCASE("with the cap lifted, a sum that would overflow is refused instead") {
    transport.respond = [&](const flotilla::task<params>& work, std::span<const learner_id>) -> std::vector<message> {
      const auto most = std::numeric_limits<std::int64_t>::max();
      return {fit_reply(1, work.round, of({1}), most - 5), fit_reply(2, work.round, of({1}), 6),
              fit_reply(3, work.round, of({1}), 5)};
    };
    flotilla::coordinator federation(transport, of({0}),
                                     {.selection = {.fraction = 1.0}, .quorum = 1,
                                      .max_examples_per_reply = std::numeric_limits<std::int64_t>::max()});
    const auto& record = federation.run_round();
    CHECK(record.participants == std::vector<learner_id>{1, 3});
    CHECK(record.examples == std::numeric_limits<std::int64_t>::max());
    CHECK(reasons(record) == std::vector<std::string>{"2: the round's example count would overflow"});
  }
  CHECK_THROWS_AS(flotilla::coordinator(transport, of({0}), {.max_examples_per_reply = 0}),
                  flotilla::configuration_error);
}

TEST_CASE("an aggregate that is not finite is refused and the global parameters are kept") {
  // Each update is finite, but their weighted sum overflows double.
  scripted_transport transport{.learners = {1, 2}};
  transport.respond = [&](const flotilla::task<params>& work, std::span<const learner_id>) -> std::vector<message> {
    if (work.kind != task_kind::fit) return {};
    if (work.round == 1) return {fit_reply(1, 1, of({1e308, 1}), 4), fit_reply(2, 1, of({1e308, 1}), 4)};
    return {fit_reply(1, work.round, of({2, 2})), fit_reply(2, work.round, of({4, 4}))};
  };
  flotilla::coordinator federation(transport, of({7, 7}), {.selection = {.fraction = 1.0}, .quorum = 2});
  const auto first = federation.run_round();
  CHECK(first.status == flotilla::round_status::discarded);
  CHECK(first.note == "the aggregate holds a non-finite value (inf) at parameter index 0; global parameters kept");
  CHECK(values_of(federation.global()) == std::vector<double>{7, 7});
  const auto second = federation.run_round();  // the run goes on from the kept model
  CHECK(second.status == flotilla::round_status::aggregated);
  CHECK(values_of(federation.global()) == std::vector<double>{3, 3});
}

TEST_CASE("rejections are recorded one by one up to a cap per learner, then counted") {
  scripted_transport transport{.learners = {1, 2}};
  transport.respond = [&](const flotilla::task<params>& work, std::span<const learner_id>) -> std::vector<message> {
    std::vector<message> out;
    for (int i = 0; i < 5000; ++i) out.push_back(flotilla::failure{1, task_kind::fit, 99, "noise " + std::to_string(i)});
    out.push_back(fit_reply(2, work.round, of({1})));
    return out;
  };
  flotilla::coordinator federation(transport, of({0}),
                                   {.selection = {.fraction = 1.0}, .quorum = 1, .max_rejections_per_learner = 3});
  const auto& record = federation.run_round();
  CHECK(record.participants == std::vector<learner_id>{2});
  CHECK(reasons(record) == std::vector<std::string>{
      "1: noise 0", "1: noise 1", "1: noise 2",
      "1: and 4997 more messages from this learner rejected, not recorded one by one",
      "1: no reply within the phase deadline of 600 s"});
}
