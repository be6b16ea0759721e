#include <flotilla/round/door.hpp>

#include <flotilla/parameters.hpp>

#include <doctest/doctest.h>

#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace {
using params = flotilla::parameters<double>;
using flotilla::learner_id;

params model(std::vector<double> values) {
  params p(flotilla::tensor_layout({{"w", {values.size()}}}));
  for (std::size_t i = 0; i < values.size(); ++i) p.values()[i] = values[i];
  return p;
}

flotilla::task<params> fit_task(std::uint64_t round) {
  return {.kind = flotilla::task_kind::fit, .round = round, .parameters = std::make_shared<const params>(model({0, 0})),
          .config = {}};
}

flotilla::reply<params> fit_reply(learner_id learner, std::uint64_t round, std::optional<params> update,
                                  std::int64_t examples = 10) {
  return {.learner = learner, .kind = flotilla::task_kind::fit, .round = round,
          .result = {.examples = examples, .metrics = {{"loss", 0.5}}}, .parameters = std::move(update)};
}

std::string reason(const std::optional<std::string>& problem) { return problem.value_or("admitted"); }
}  // namespace

TEST_CASE("the door admits a valid reply once and sums its examples") {
  const std::vector<learner_id> asked{1, 2};
  flotilla::reply_door<params> door(fit_task(3), asked, flotilla::reply_parameters::required, 100);
  CHECK(reason(door.admit(fit_reply(1, 3, model({1, 2}), 10))) == "admitted");
  CHECK(reason(door.admit(fit_reply(2, 3, model({3, 4}), 32))) == "admitted");
  CHECK(door.pending().empty());
  CHECK(door.examples() == 42);
  CHECK(reason(door.admit(fit_reply(1, 3, model({1, 2})))) ==
        "learner was not asked for this task or has already answered it");
}

TEST_CASE("the door names every reason a reply cannot be used") {
  const std::vector<learner_id> asked{1};
  flotilla::reply_door<params> door(fit_task(3), asked, flotilla::reply_parameters::required, 100);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  SUBCASE("another round") {
    CHECK(reason(door.admit(fit_reply(1, 2, model({1, 2})))) == "fit reply belongs to round 2; the current round is 3");
    CHECK(door.pending().size() == 1);  // a stray reply releases nobody
  }
  SUBCASE("another phase") {
    auto answer = fit_reply(1, 3, std::nullopt);
    answer.kind = flotilla::task_kind::evaluate;
    CHECK(reason(door.admit(answer)) == "evaluate reply arrived during the fit phase");
    answer.kind = flotilla::custom_task_kind(2);
    CHECK(reason(door.admit(answer)) == "stage 18 reply arrived during the fit phase");
    CHECK(door.pending().size() == 1);
  }
  SUBCASE("a learner that was not asked") {
    CHECK(reason(door.admit(fit_reply(7, 3, model({1, 2})))) ==
          "learner was not asked for this task or has already answered it");
  }
  SUBCASE("no examples, or more than the limit") {
    CHECK(reason(door.admit(fit_reply(1, 3, model({1, 2}), 0))) == "reply claims 0 examples; at least one is required");
    CHECK(door.pending().empty());  // a bad reply to this task releases its learner
  }
  SUBCASE("more examples than the limit") {
    CHECK(reason(door.admit(fit_reply(1, 3, model({1, 2}), 101))) ==
          "reply claims 101 examples; the limit is 100 (max_examples_per_reply)");
  }
  SUBCASE("a metric that is not finite") {
    auto answer = fit_reply(1, 3, model({1, 2}));
    answer.result.metrics["loss"] = nan;
    CHECK(reason(door.admit(answer)) == "metric 'loss' is nan");
  }
  SUBCASE("no parameters") {
    CHECK(reason(door.admit(fit_reply(1, 3, std::nullopt))) == "fit reply carries no parameters");
  }
  SUBCASE("another layout") {
    CHECK(reason(door.admit(fit_reply(1, 3, model({1, 2, 3})))) == "update has 3 parameters; the global model has 2");
  }
  SUBCASE("a value that is not finite") {
    CHECK(reason(door.admit(fit_reply(1, 3, model({1, -std::numeric_limits<double>::infinity()})))) ==
          "update holds a non-finite value (-inf) at parameter index 1");
    CHECK(reason(door.admit(fit_reply(1, 3, model({nan, 0})))) ==
          "learner was not asked for this task or has already answered it");
  }
  CHECK(door.examples() == 0);
}

TEST_CASE("the door refuses examples that would overflow the round's count") {
  const std::vector<learner_id> asked{1, 2};
  const auto most = std::numeric_limits<std::int64_t>::max();
  flotilla::reply_door<params> door(fit_task(1), asked, flotilla::reply_parameters::required, most);
  CHECK(reason(door.admit(fit_reply(1, 1, model({1, 2}), most - 1))) == "admitted");
  CHECK(reason(door.admit(fit_reply(2, 1, model({1, 2}), 2))) == "the round's example count would overflow");
  CHECK(door.examples() == most - 1);
}

TEST_CASE("a stage whose replies carry no parameters ignores any they hold") {
  const std::vector<learner_id> asked{4};
  auto work = fit_task(1);
  work.kind = flotilla::custom_task_kind(0);
  flotilla::reply_door<params> door(work, asked, flotilla::reply_parameters::none, 100);
  auto answer = fit_reply(4, 1, model({std::numeric_limits<double>::quiet_NaN()}));
  answer.kind = flotilla::custom_task_kind(0);
  CHECK(reason(door.admit(answer)) == "admitted");
  CHECK(door.answers(4, flotilla::custom_task_kind(0), 1) == false);  // answered already
}

TEST_CASE("a failure releases only a learner pending for this very task") {
  const std::vector<learner_id> asked{1, 2};
  flotilla::reply_door<params> door(fit_task(5), asked, flotilla::reply_parameters::required, 100);
  CHECK(door.answers(1, flotilla::task_kind::fit, 5));
  CHECK_FALSE(door.answers(1, flotilla::task_kind::fit, 4));
  CHECK_FALSE(door.answers(1, flotilla::task_kind::evaluate, 5));
  CHECK_FALSE(door.answers(3, flotilla::task_kind::fit, 5));
  door.release(1);
  CHECK(door.pending() == std::set<learner_id>{2});
}

TEST_CASE("task kinds are open: custom ones have names and a range") {
  CHECK(flotilla::to_string(flotilla::task_kind::fit) == "fit");
  CHECK(flotilla::to_string(flotilla::task_kind::evaluate) == "evaluate");
  CHECK(flotilla::to_string(flotilla::custom_task_kind(0)) == "stage 16");
  CHECK(static_cast<unsigned>(flotilla::custom_task_kind(239)) == 255);
  CHECK_THROWS_WITH_AS((void)flotilla::custom_task_kind(240),
                       "custom task kind 240 is out of range; there are 240 (0 to 239)", flotilla::configuration_error);
}
