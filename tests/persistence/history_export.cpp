#include <flotilla/persistence/history_export.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <string>

namespace {
flotilla::history sample() {
  flotilla::history h;
  h.stop_reason = "reached the round budget of 2";
  flotilla::round_record first;
  first.round = 1;
  first.status = flotilla::round_status::aggregated;
  first.selected = {1, 2, 3};
  first.participants = {1, 3};
  first.rejections = {{2, flotilla::task_kind::fit, 1, "learner threw: disk full, \"sda\""}};
  first.examples = 30;
  first.fit_metrics = {{"loss", 0.5}};
  first.central_metrics = {{"accuracy", 0.75}};
  first.fit_seconds = 1.5;
  first.round_seconds = 2;
  first.elapsed_seconds = 2;
  flotilla::round_record second;
  second.round = 2;
  second.note = "quorum not met";
  second.selected = {1};
  second.federated_metrics = {{"loss", NAN}};
  h.rounds = {first, second};
  return h;
}
}  // namespace

TEST_CASE("CSV has one row per round, metric columns by source and quoted reasons") {
  const auto csv = flotilla::to_csv(sample());
  CHECK(csv ==
        "round,status,selected,participants,evaluated,rejected,examples,fit_seconds,evaluate_seconds,round_seconds,"
        "elapsed_seconds,central.accuracy,federated.loss,fit.loss,rejections\n"
        "1,aggregated,3,2,0,1,30,1.5,0,2,2,0.75,,0.5,\"learner 2 fit: learner threw: disk full, \"\"sda\"\"\"\n"
        "2,discarded,1,0,0,0,0,0,0,0,0,,nan,,\n");
}

TEST_CASE("JSON holds every round's participants, rejections and metrics") {
  const auto json = flotilla::to_json(sample());
  CHECK(json ==
        "{\"stop_reason\":\"reached the round budget of 2\",\"rounds\":["
        "{\"round\":1,\"status\":\"aggregated\",\"note\":\"\",\"selected\":[1,2,3],\"participants\":[1,3],"
        "\"evaluated\":[],\"examples\":30,\"rejections\":[{\"learner\":2,\"kind\":\"fit\",\"round\":1,"
        "\"reason\":\"learner threw: disk full, \\\"sda\\\"\"}],\"fit_metrics\":{\"loss\":0.5},"
        "\"federated_metrics\":{},\"central_metrics\":{\"accuracy\":0.75},\"fit_seconds\":1.5,"
        "\"evaluate_seconds\":0,\"round_seconds\":2,\"elapsed_seconds\":2},"
        "{\"round\":2,\"status\":\"discarded\",\"note\":\"quorum not met\",\"selected\":[1],\"participants\":[],"
        "\"evaluated\":[],\"examples\":0,\"rejections\":[],\"fit_metrics\":{},\"federated_metrics\":{\"loss\":null},"
        "\"central_metrics\":{},\"fit_seconds\":0,\"evaluate_seconds\":0,\"round_seconds\":0,\"elapsed_seconds\":0}]}");
}

TEST_CASE("JSON escapes control characters") {
  flotilla::history h;
  h.stop_reason = std::string("a\nb\tc") + char(1);
  CHECK(flotilla::to_json(h) == "{\"stop_reason\":\"a\\nb\\tc\\u0001\",\"rounds\":[]}");
}
