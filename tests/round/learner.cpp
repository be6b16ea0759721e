#include <flotilla/round/learner.hpp>

#include "../archetypes/archetypes.hpp"

#include <doctest/doctest.h>

#include <memory>

namespace {
// Records what it was given; "trains" by adding 1 to every parameter.
struct counting_model {
  archetypes::parameter_set p;
  std::uint64_t last_seed = 0;
  const archetypes::parameter_set& parameters() const { return p; }
  void set_parameters(const archetypes::parameter_set& q) { p = q; }
  flotilla::local_result fit(const int& data, const flotilla::fit_config& config) {
    last_seed = config.seed;
    for (auto& v : p.data) v += 1;
    return {data, {{"loss", 0.5}}};
  }
  flotilla::local_result evaluate(const int& data) const { return {data, {{"accuracy", p.data[0]}}}; }
};
using task_type = flotilla::task<archetypes::parameter_set>;
task_type make_task(flotilla::task_kind kind) {
  return {kind, 4, std::make_shared<const archetypes::parameter_set>(archetypes::parameter_set{{1.0, 2.0}}),
          {.round = 4, .seed = 10, .values = {}}};
}
}  // namespace

TEST_CASE("a fit task loads the global parameters, trains on local data and replies") {
  flotilla::learner<counting_model, int> learner(7, {}, 25);
  const auto answer = learner.handle(make_task(flotilla::task_kind::fit));
  CHECK(answer.learner == 7);
  CHECK(answer.round == 4);
  CHECK(answer.kind == flotilla::task_kind::fit);
  CHECK(answer.result.examples == 25);
  CHECK(answer.result.metrics.at("loss") == 0.5);
  REQUIRE(answer.parameters);
  CHECK(answer.parameters->data == std::array<double, 2>{2.0, 3.0});
  // Each learner's seed mixes the round seed with its id.
  CHECK(learner.model().last_seed == flotilla::mix_seed(10, 7));
  flotilla::learner<counting_model, int> other(8, {}, 25);
  (void)other.handle(make_task(flotilla::task_kind::fit));
  CHECK(other.model().last_seed != learner.model().last_seed);
}

TEST_CASE("an evaluate task evaluates the given parameters on the local evaluation data") {
  flotilla::learner<counting_model, int> learner(3, {}, 25, 40);
  const auto answer = learner.handle(make_task(flotilla::task_kind::evaluate));
  CHECK(answer.result.examples == 40);
  CHECK(answer.result.metrics.at("accuracy") == 1.0);  // evaluated the task's parameters, untrained
  CHECK_FALSE(answer.parameters);
}

TEST_CASE("a learner refuses work it cannot do") {
  flotilla::learner<counting_model, int> no_evaluation_data(3, {}, 25);
  CHECK_THROWS_WITH((void)no_evaluation_data.handle(make_task(flotilla::task_kind::evaluate)),
                    "learner 3 has no evaluation data");
  flotilla::learner<archetypes::trainable_model, archetypes::dataset> cannot_evaluate(5, {}, {}, archetypes::dataset{});
  CHECK_THROWS_WITH((void)cannot_evaluate.handle(
                        {flotilla::task_kind::evaluate, 1, std::make_shared<const archetypes::parameter_set>(), {}}),
                    "the model of learner 5 cannot evaluate");
  auto empty = make_task(flotilla::task_kind::fit);
  empty.parameters.reset();
  CHECK_THROWS_WITH((void)no_evaluation_data.handle(empty), "task for round 4 carries no parameters");
}
