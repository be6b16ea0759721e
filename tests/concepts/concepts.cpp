// Each concept accepts its archetype and the library's own types, and rejects each near-miss.
#include "../archetypes/archetypes.hpp"

#include <flotilla/flotilla.hpp>
#include <flotilla/models.hpp>

#include <doctest/doctest.h>

namespace {

using namespace archetypes;

static_assert(flotilla::ParameterSet<parameter_set>);
static_assert(flotilla::ParameterSet<flotilla::parameters<float>>);
static_assert(!flotilla::ParameterSet<integer_parameters>);
static_assert(!flotilla::ParameterSet<unlaid_parameters>);
static_assert(!flotilla::ParameterSet<int>);
static_assert(!flotilla::ParameterSet<vector_valued_parameters>);
static_assert(flotilla::ParameterSet<heap_parameters>);

// A type whose shape its type fixes gets a wire codec from the library; others need their own.
static_assert(flotilla::FixedShapeParameters<parameter_set>);
static_assert(flotilla::WireCodable<parameter_set>);
static_assert(!flotilla::FixedShapeParameters<heap_parameters>);
static_assert(!flotilla::CountedParameters<heap_parameters>);  // it cannot be made from a count
static_assert(!flotilla::WireCodable<heap_parameters>);
static_assert(!flotilla::FixedShapeParameters<flotilla::parameters<float>>);  // its own codec carries the layout
static_assert(!flotilla::CountedParameters<flotilla::parameters<float>>);
static_assert(!flotilla::CountedParameters<parameter_set>);  // fixed-shape: that codec, not this one
static_assert(flotilla::WireCodable<flotilla::parameters<float>>);

static_assert(flotilla::Model<model>);
static_assert(!flotilla::Model<read_only_model>);
static_assert(!flotilla::TrainableOn<model, dataset>);
static_assert(flotilla::TrainableOn<trainable_model, dataset>);
static_assert(!flotilla::TrainableOn<trainable_model, int>);
static_assert(!flotilla::EvaluableOn<trainable_model, dataset>);
static_assert(flotilla::EvaluableOn<evaluable_model, dataset>);
static_assert(flotilla::TrainableOn<flotilla::mlp<float>, flotilla::classification_data<float>>);
static_assert(flotilla::EvaluableOn<flotilla::mlp<float>, flotilla::classification_data<float>>);
static_assert(flotilla::EvaluableOn<flotilla::softmax_regression<double>, flotilla::classification_data<double>>);
static_assert(flotilla::EvaluableOn<flotilla::linear_regression<double>, flotilla::regression_data<double>>);

static_assert(flotilla::Aggregator<aggregator, parameter_set>);
static_assert(flotilla::Aggregator<flotilla::weighted_mean<parameter_set>, parameter_set>);
static_assert(flotilla::Aggregator<flotilla::mean<flotilla::parameters<float>>, flotilla::parameters<float>>);
static_assert(!flotilla::Aggregator<unmergeable_aggregator, parameter_set>);
static_assert(!flotilla::Aggregator<aggregator, flotilla::parameters<float>>);  // wrong parameter type

static_assert(flotilla::Transport<transport>);
static_assert(flotilla::Transport<flotilla::in_memory_transport<flotilla::learner<evaluable_model, dataset>>>);
static_assert(!flotilla::Transport<deaf_transport>);

static_assert(flotilla::Learner<flotilla::learner<trainable_model, dataset>>);
static_assert(!flotilla::Learner<anonymous_learner>);

}  // namespace

TEST_CASE("the concepts' documented minimal types compile and run in a coordinator") {
  // The archetypes are not only checked: a round runs with them (no learners: quorum unmet).
  transport nobody;
  flotilla::coordinator<transport, aggregator> federation(nobody, parameter_set{{1.0, 2.0}});
  const auto& record = federation.run_round();
  CHECK(record.status == flotilla::round_status::discarded);
  CHECK(record.note == "only 0 learners available; the quorum is 1");
  CHECK(federation.global().data[0] == 1.0);
}
