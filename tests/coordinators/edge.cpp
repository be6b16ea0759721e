#include <flotilla/coordinators/edge.hpp>

#include <flotilla/models/linear_regression.hpp>
#include <flotilla/persistence/checkpoint.hpp>
#include <flotilla/persistence/history_export.hpp>
#include <flotilla/round/learner.hpp>
#include <flotilla/round/stopping.hpp>
#include <flotilla/transport/in_memory.hpp>

#include <doctest/doctest.h>

#include "scripted_transport.hpp"

#include <cmath>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

// Edge aggregators in one process: FedAvg over edges equals flat FedAvg three levels deep, the
// HierFAVG mode against hand-computed means, and failures below and at an edge.

using namespace scripted;

namespace {

using model = flotilla::linear_regression<double>;
using data = model::data_type;
using plain = flotilla::learner<model, data>;

// Learner i's data: y = 1 + 2 x0 - x1 + i / 10 on 20 + 5 i points; one full batch per epoch, so
// training does not depend on the order of the examples beyond float rounding.
plain make_learner(learner_id i) {
  const Eigen::Index n = 20 + 5 * Eigen::Index(i);
  data local{Eigen::MatrixXd(2, n), Eigen::VectorXd(n)};
  for (Eigen::Index k = 0; k < n; ++k) {
    local.features(0, k) = std::sin(double(k + 7 * i));
    local.features(1, k) = std::cos(double(3 * k + i));
    local.targets(k) = 1 + 2 * local.features(0, k) - local.features(1, k) + double(i) / 10;
  }
  return plain(i, model(2, {.learning_rate = 0.2, .epochs = 2, .batch_size = 1000}), std::move(local));
}

std::vector<plain> learners(std::initializer_list<learner_id> ids) {
  std::vector<plain> out;
  for (auto id : ids) out.push_back(make_learner(id));
  return out;
}

}  // namespace

TEST_CASE("FedAvg over edges equals flat FedAvg over their learners, three levels deep") {
  const auto initial = model(2).parameters();
  // Flat: eight learners, every one asked each round.
  flotilla::in_memory_transport flat(learners({1, 2, 3, 4, 5, 6, 7, 8}), 2);
  flotilla::coordinator reference(flat, initial, {.quorum = 8});
  reference.run(flotilla::stop::after_rounds(3));

  // The tree: a root over two edges, each over two edges of two learners.
  using lower_edge = flotilla::edge_aggregator<flotilla::in_memory_transport<plain>>;
  using upper_edge = flotilla::edge_aggregator<flotilla::in_memory_transport<lower_edge>>;
  std::vector<std::unique_ptr<flotilla::in_memory_transport<plain>>> leaves;
  for (auto pair : {std::pair{1, 2}, {3, 4}, {5, 6}, {7, 8}})
    leaves.push_back(std::make_unique<flotilla::in_memory_transport<plain>>(
        learners({learner_id(pair.first), learner_id(pair.second)}), 1));
  const flotilla::edge_options lower{.coordinator = {.quorum = 2}};
  std::vector<std::unique_ptr<flotilla::in_memory_transport<lower_edge>>> middles;
  for (std::size_t half = 0; half < 2; ++half) {
    std::vector<lower_edge> edges;
    for (std::size_t leaf = 0; leaf < 2; ++leaf)
      edges.emplace_back(100 + 2 * half + leaf, *leaves[2 * half + leaf], initial, lower);
    middles.push_back(std::make_unique<flotilla::in_memory_transport<lower_edge>>(std::move(edges), 1));
  }
  std::vector<upper_edge> tops;
  tops.emplace_back(10, *middles[0], initial, lower);
  tops.emplace_back(11, *middles[1], initial, lower);
  flotilla::in_memory_transport root_transport(std::move(tops), 2);
  flotilla::coordinator root(root_transport, initial, {.quorum = 2});
  root.run(flotilla::stop::after_rounds(3));

  for (const auto& record : root.history().rounds) {
    CHECK(record.status == flotilla::round_status::aggregated);
    CHECK(record.examples == reference.history().rounds[record.round - 1].examples);  // 8 * 20 + 5 * 36 = 340
    CHECK(record.fit_metrics.at("edge.learners") == 2);  // each upper edge aggregated its two lower ones
  }
  CHECK(root.history().rounds[0].examples == 340);
  // The root's history shows the tree: each edge, whose updates it holds, and the same below.
  const auto& edges = root.history().rounds[0].edges;
  REQUIRE(edges.size() == 2);
  const auto& upper = edges[0].edge == 10 ? edges[0] : edges[1];
  CHECK(upper.learners == std::vector<learner_id>{100, 101});
  CHECK(upper.rejections.empty());
  REQUIRE(upper.below.size() == 2);
  const auto& lower_left = upper.below[0].edge == 100 ? upper.below[0] : upper.below[1];
  CHECK(lower_left.learners == std::vector<learner_id>{1, 2});
  CHECK(lower_left.below.empty());
  const auto json = flotilla::to_json(root.history());
  CHECK(json.find("\"edges\":[{\"edge\":") != std::string::npos);
  CHECK(json.find("\"learners\":[1,2],\"rejections\":[],\"below\":[]") != std::string::npos);

  // A checkpoint keeps the tree.
  const auto path = std::filesystem::temp_directory_path() / "flotilla_edge_checkpoint.bin";
  flotilla::save_checkpoint(root, path);
  flotilla::coordinator restored(root_transport, initial, {.quorum = 2});
  flotilla::load_checkpoint(restored, path);
  std::filesystem::remove(path);
  REQUIRE(restored.history().rounds[2].edges.size() == 2);
  CHECK(flotilla::to_json(restored.history()) == json);
  const auto tree = root.global().values(), expected = reference.global().values();
  for (std::size_t i = 0; i < expected.size(); ++i) CHECK(tree[i] == doctest::Approx(expected[i]).epsilon(1e-12));
  CHECK(tree[0] != 0);
}

TEST_CASE("HierFAVG: several inner rounds per outer round, weighted by the edge's examples") {
  // Learners that jump to a fixed point: an edge's mean after any number of inner rounds is the
  // example-weighted mean of its learners' points.
  struct jump {
    params p = of({0, 0});
    params target = of({0, 0});
    std::int64_t examples = 1;
    const params& parameters() const { return p; }
    void set_parameters(const params& q) { p = q; }
    flotilla::local_result fit(const int&, const flotilla::fit_config& config) {
      p = target;
      return {examples, {{"step", config.get("learning_rate", 0)}}};
    }
  };
  using jumper = flotilla::learner<jump, int>;
  std::vector<jumper> a, b;
  a.emplace_back(1, jump{.target = of({1, 0}), .examples = 1}, 0);
  a.emplace_back(2, jump{.target = of({4, 0}), .examples = 3}, 0);
  b.emplace_back(3, jump{.target = of({0, 8}), .examples = 4}, 0);
  flotilla::in_memory_transport left(std::move(a), 1), right(std::move(b), 1);
  using edge = flotilla::edge_aggregator<flotilla::in_memory_transport<jumper>>;
  std::vector<edge> edges;
  edges.emplace_back(10, left, of({0, 0}), flotilla::edge_options{.rounds_per_fit = 3, .coordinator = {.quorum = 2}});
  edges.emplace_back(11, right, of({0, 0}), flotilla::edge_options{.rounds_per_fit = 3});
  flotilla::in_memory_transport root_transport(std::move(edges), 2);
  flotilla::coordinator root(root_transport, of({0, 0}), {.quorum = 2, .fit_settings = {{"learning_rate", 0.25}}});
  const auto& record = root.run_round();
  REQUIRE(record.status == flotilla::round_status::aggregated);
  // Left edge: (1 * 1 + 3 * 4) / 4 = 3.25 on 4 examples a round; right edge: (0, 8) on 4.
  CHECK(values_of(root.global()) == std::vector<double>{3.25 / 2, 4});
  CHECK(record.examples == 8);
  CHECK(record.fit_metrics.at("edge.rounds") == 3);
  CHECK(record.fit_metrics.at("step") == 0.25);  // the root's setting reached the learners
  CHECK(root_transport.learners()[0]->history().rounds.size() == 3);
}

TEST_CASE("a learner that fails behind an edge is in the edge's history; an edge with none left fails at the root") {
  struct flaky {
    params p = of({0});
    bool fails = false;
    const params& parameters() const { return p; }
    void set_parameters(const params& q) { p = q; }
    flotilla::local_result fit(const int&, const flotilla::fit_config&) {
      if (fails) throw flotilla::task_error("out of memory");
      p = of({2});
      return {1, {}};
    }
  };
  using learner = flotilla::learner<flaky, int>;
  std::vector<learner> a, b;
  a.emplace_back(1, flaky{}, 0);
  a.emplace_back(2, flaky{.fails = true}, 0);
  b.emplace_back(3, flaky{.fails = true}, 0);
  flotilla::in_memory_transport left(std::move(a), 1), right(std::move(b), 1);
  using edge = flotilla::edge_aggregator<flotilla::in_memory_transport<learner>>;
  std::vector<edge> edges;
  edges.emplace_back(10, left, of({0}));
  edges.emplace_back(11, right, of({0}));
  flotilla::in_memory_transport root_transport(std::move(edges), 2);
  flotilla::coordinator root(root_transport, of({0}), {.quorum = 1});
  const auto& record = root.run_round();
  REQUIRE(record.status == flotilla::round_status::aggregated);
  CHECK(record.participants == std::vector<learner_id>{10});
  CHECK(values_of(root.global()) == std::vector<double>{2});
  CHECK(record.fit_metrics.at("edge.rejections") == 1);
  REQUIRE(record.rejections.size() == 1);
  CHECK(record.rejections[0].learner == 11);
  CHECK(record.rejections[0].reason ==
        "learner threw: edge 11: no inner round aggregated (quorum not met: 0 accepted replies, 1 required; global "
        "parameters kept)");
  REQUIRE(record.edges.size() == 1);  // the edge that failed sent no report: its failure is above
  CHECK(record.edges[0].edge == 10);
  CHECK(record.edges[0].learners == std::vector<learner_id>{1});
  REQUIRE(record.edges[0].rejections.size() == 1);
  CHECK(record.edges[0].rejections[0].learner == 2);
  const auto& below = root_transport.learners()[0]->history().rounds.at(0);
  REQUIRE(below.rejections.size() == 1);
  CHECK(below.rejections[0].learner == 2);
  CHECK(below.rejections[0].reason == "learner threw: out of memory");
}

TEST_CASE("an edge evaluates on its learners and refuses settings that cannot work") {
  using edge = flotilla::edge_aggregator<flotilla::in_memory_transport<plain>>;
  flotilla::in_memory_transport below(learners({1, 2}), 1);
  CHECK_THROWS_WITH_AS(edge(1, below, model(2).parameters(), {.rounds_per_fit = 0}),
                       "an edge must run at least one inner round per fit task", flotilla::configuration_error);
  CHECK_THROWS_WITH_AS(edge(1, below, model(2).parameters(), {.evaluation_fraction = 0}),
                       "an edge's evaluation_fraction must be in (0, 1]", flotilla::configuration_error);
}

TEST_CASE("an edge report is checked at the door like everything else from below") {
  scripted_transport transport{.learners = {1, 2}};
  transport.respond = [](const flotilla::task<params>& work, std::span<const learner_id>) -> std::vector<message> {
    auto honest = fit_reply(1, work.round, of({2}));
    honest.payload = flotilla::encode_subtree({.edge = 1, .learners = {7, 8}});
    auto broken = fit_reply(2, work.round, of({4}));
    broken.payload = {1, 2, 3};
    return {honest, broken};
  };
  flotilla::coordinator root(transport, of({0}), {.quorum = 1});
  const auto& record = root.run_round();
  CHECK(values_of(root.global()) == std::vector<double>{2});
  REQUIRE(record.edges.size() == 1);
  CHECK(record.edges[0].learners == std::vector<learner_id>{7, 8});
  REQUIRE(record.rejections.size() == 1);
  CHECK(record.rejections[0].reason.starts_with("edge report: "));

  // Nesting beyond max_subtree_depth is refused before it is followed further.
  flotilla::subtree_record deep{.edge = 0};
  for (learner_id level = 1; level <= flotilla::max_subtree_depth; ++level) deep = {.edge = level, .below = {deep}};
  CHECK_THROWS_WITH_AS((void)flotilla::decode_subtree(flotilla::encode_subtree(deep)),
                       "an edge report nests deeper than 16 levels", flotilla::decode_error);
  deep = deep.below[0];
  CHECK(flotilla::decode_subtree(flotilla::encode_subtree(deep)).edge == flotilla::max_subtree_depth - 1);
}
