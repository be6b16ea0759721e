// Whole federations over the real in-memory transport: the coordinator, learners, rules and
// models together.
#include <flotilla/flotilla.hpp>
#include <flotilla/models.hpp>

#include <doctest/doctest.h>

#include <array>
#include <chrono>
#include <cmath>
#include <numeric>
#include <span>
#include <stdexcept>
#include <thread>
#include <vector>

namespace {

// A user-defined ParameterSet and Model: estimates the mean of its local numbers.
struct mean_parameters {
  using scalar_type = double;
  std::array<double, 1> value{};
  std::span<double> values() { return value; }
  std::span<const double> values() const { return value; }
  int layout() const { return 1; }  // a single fixed shape
};

struct mean_model {
  mean_parameters p;
  const mean_parameters& parameters() const { return p; }
  void set_parameters(const mean_parameters& q) { p = q; }
  flotilla::local_result fit(const std::vector<double>& data, const flotilla::fit_config&) {
    p.value[0] = std::accumulate(data.begin(), data.end(), 0.0) / double(data.size());
    return {static_cast<std::int64_t>(data.size()), {}};
  }
};

using linear = flotilla::linear_regression<double>;

linear::data_type regression_data(std::size_t examples, std::uint64_t seed, double shift) {
  flotilla::random_engine engine(seed);
  linear::data_type data{Eigen::MatrixXd(3, static_cast<Eigen::Index>(examples)),
                         Eigen::VectorXd(static_cast<Eigen::Index>(examples))};
  for (Eigen::Index i = 0; i < data.features.cols(); ++i) {
    for (Eigen::Index f = 0; f < 3; ++f) data.features(f, i) = flotilla::standard_normal(engine) + shift;
    data.targets(i) = 2 * data.features(0, i) - data.features(1, i) + 0.5 + shift;
  }
  return data;
}

linear::data_type concatenate(const std::vector<linear::data_type>& parts) {
  Eigen::Index total = 0;
  for (const auto& part : parts) total += part.features.cols();
  linear::data_type all{Eigen::MatrixXd(3, total), Eigen::VectorXd(total)};
  Eigen::Index at = 0;
  for (const auto& part : parts) {
    all.features.middleCols(at, part.features.cols()) = part.features;
    all.targets.segment(at, part.targets.size()) = part.targets;
    at += part.features.cols();
  }
  return all;
}

}  // namespace

TEST_CASE("a model with its own ParameterSet type federates: FedAvg of local means is the global mean") {
  std::vector<flotilla::learner<mean_model, std::vector<double>>> learners;
  learners.emplace_back(0, mean_model{}, std::vector<double>{1, 2, 3});
  learners.emplace_back(1, mean_model{}, std::vector<double>{10});
  learners.emplace_back(2, mean_model{}, std::vector<double>{-4, 4, 0, 8});
  flotilla::in_memory_transport transport(std::move(learners), 2);
  flotilla::coordinator federation(transport, mean_parameters{}, {.quorum = 3});
  const auto& record = federation.run_round();
  CHECK(record.participants.size() == 3);
  CHECK(record.examples == 8);
  // (1 + 2 + 3 + 10 - 4 + 4 + 0 + 8) / 8 = 24 / 8
  CHECK(federation.global().value[0] == doctest::Approx(3.0).epsilon(1e-15));
}

TEST_CASE("one step of full-batch gradient descent per round: federated equals centralized") {
  // Learners hold different amounts of differently distributed data. With one full-batch step
  // per round, FedAvg's example-weighted mean of local steps is exactly one step on the union.
  const std::vector<linear::data_type> parts{regression_data(10, 1, 0.0), regression_data(25, 2, 1.0),
                                             regression_data(7, 3, -2.0), regression_data(40, 4, 0.5)};
  const flotilla::sgd_options one_step{.learning_rate = 0.05, .epochs = 1, .batch_size = 0};
  std::vector<flotilla::learner<linear, linear::data_type>> learners;
  for (std::size_t i = 0; i < parts.size(); ++i) learners.emplace_back(i, linear(3, one_step), parts[i]);
  flotilla::in_memory_transport transport(std::move(learners), 2);
  flotilla::coordinator federation(transport, linear(3).parameters(), {.quorum = 4});
  federation.run(flotilla::stop::after_rounds(5));

  linear centralized(3, one_step);
  const auto all = concatenate(parts);
  for (std::uint64_t round = 1; round <= 5; ++round) centralized.fit(all, {.round = round});

  const auto federated = federation.global().values();
  const auto expected = centralized.parameters().values();
  REQUIRE(federated.size() == expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) CHECK(federated[i] == doctest::Approx(expected[i]).epsilon(1e-12));
  CHECK(flotilla::l2_norm(federation.global()) > 0.1);  // the model moved: the comparison means something
}

namespace {
// Trains like linear_regression but can be told to misbehave.
struct unreliable {
  enum class fault { none, throws, nan, slow };
  linear model{3, {.learning_rate = 0.05, .epochs = 1, .batch_size = 0}};
  fault how = fault::none;
  const linear::parameters_type& parameters() const { return model.parameters(); }
  void set_parameters(const linear::parameters_type& p) { model.set_parameters(p); }
  flotilla::local_result fit(const linear::data_type& data, const flotilla::fit_config& config) {
    auto result = model.fit(data, config);
    if (how == fault::throws) throw std::runtime_error("sensor offline");
    if (how == fault::nan) {
      auto copy = model.parameters();
      copy.values()[2] = std::nan("");
      model.set_parameters(copy);
    }
    if (how == fault::slow) std::this_thread::sleep_for(std::chrono::milliseconds(300));
    return result;
  }
};
}  // namespace

TEST_CASE("faulty learners are recorded and the round goes on while the quorum holds") {
  std::vector<flotilla::learner<unreliable, linear::data_type>> learners;
  const unreliable::fault faults[] = {unreliable::fault::none, unreliable::fault::throws, unreliable::fault::nan,
                                      unreliable::fault::none, unreliable::fault::slow};
  for (flotilla::learner_id id = 0; id < 5; ++id)
    learners.emplace_back(id, unreliable{.how = faults[id]}, regression_data(20, id, 0.0));
  flotilla::in_memory_transport transport(std::move(learners), 2);
  flotilla::coordinator federation(transport, linear(3).parameters(),
                                   {.quorum = 2, .round_timeout = std::chrono::milliseconds(100)});
  const auto first = federation.run_round();
  CHECK(first.status == flotilla::round_status::aggregated);
  CHECK(first.participants == std::vector<flotilla::learner_id>{0, 3});
  std::vector<std::string> seen;
  for (const auto& r : first.rejections) seen.push_back(std::to_string(r.learner) + ": " + r.reason);
  std::ranges::sort(seen);
  CHECK(seen == std::vector<std::string>{"1: learner threw: sensor offline",
                                         "2: update holds a non-finite value (nan) at parameter index 2",
                                         "4: no reply within the phase deadline of 0.1 s"});

  // Once the slow learner's reply is in, the next round rejects it by its round number. While it
  // was still training it was not available, so it was not asked again.
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  const auto second = federation.run_round();
  bool late_reply_recorded = false;
  for (const auto& r : second.rejections)
    late_reply_recorded |= r.learner == 4 && r.round == 1 && r.reason == "fit reply belongs to round 1; the current round is 2";
  CHECK(late_reply_recorded);
  CHECK(second.status == flotilla::round_status::aggregated);
}

TEST_CASE("every reply appears in the history as used or rejected") {
  std::vector<flotilla::learner<unreliable, linear::data_type>> learners;
  for (flotilla::learner_id id = 0; id < 6; ++id)
    learners.emplace_back(id, unreliable{.how = id % 3 == 1 ? unreliable::fault::throws : unreliable::fault::none},
                          regression_data(10, id, 0.0));
  flotilla::in_memory_transport transport(std::move(learners), 2);
  flotilla::coordinator federation(transport, linear(3).parameters(), {.selection = {.fraction = 0.5}, .seed = 3});
  const auto& history = federation.run(flotilla::stop::after_rounds(6));
  for (const auto& r : history.rounds) {
    CHECK(r.participants.size() + r.rejections.size() == r.selected.size());
    for (const auto& rejected : r.rejections) CHECK(rejected.reason == "learner threw: sensor offline");
  }
}

TEST_CASE("federated evaluation over learners' test splits equals evaluation on the whole test set") {
  using model = flotilla::softmax_regression<double>;
  flotilla::classification_data<double> test{Eigen::MatrixXd(2, 12), {}, 2};
  flotilla::random_engine engine(9);
  for (Eigen::Index i = 0; i < 12; ++i) {
    test.features(0, i) = flotilla::standard_normal(engine);
    test.features(1, i) = flotilla::standard_normal(engine);
    test.labels.push_back(test.features(0, i) > 0.3 ? 1 : 0);
  }
  const std::vector<std::vector<std::size_t>> splits{{0, 1, 2}, {3, 4, 5, 6, 7}, {8, 9, 10, 11}};
  std::vector<flotilla::learner<model, model::data_type>> learners;
  for (std::size_t i = 0; i < splits.size(); ++i)
    learners.emplace_back(i, model(2, 2), test.subset(splits[i]), test.subset(splits[i]));
  flotilla::in_memory_transport transport(std::move(learners), 2);
  flotilla::coordinator federation(transport, model(2, 2).parameters(), {.evaluation_fraction = 1.0});
  model central(2, 2);
  federation.evaluate_centrally([&](const model::parameters_type& p) {
    central.set_parameters(p);
    return central.evaluate(test).metrics;
  });
  const auto& record = federation.run_round();
  CHECK(record.evaluated.size() == 3);
  CHECK(record.federated_metrics.at("accuracy") == doctest::Approx(record.central_metrics.at("accuracy")));
  CHECK(record.federated_metrics.at("loss") == doctest::Approx(record.central_metrics.at("loss")));
}

namespace {
// A learner that trains honestly, then sends the update sign-flipped and scaled: the attack the
// robust rules are built for. It reports many examples, to pull FedAvg harder.
struct sign_flipper {
  linear model{3, {.learning_rate = 0.05, .epochs = 5, .batch_size = 0}};
  bool attacks = false;
  linear::parameters_type sent{};
  const linear::parameters_type& parameters() const { return attacks ? sent : model.parameters(); }
  void set_parameters(const linear::parameters_type& p) { model.set_parameters(p); }
  flotilla::local_result fit(const linear::data_type& data, const flotilla::fit_config& config) {
    const auto before = model.parameters();
    auto result = model.fit(data, config);
    if (!attacks) return result;
    sent = before;  // before - 10 (after - before): ten times the honest step, backwards
    flotilla::axpy(sent, -10.0, flotilla::difference(model.parameters(), before));
    return {result.examples * 10, result.metrics};
  }
};

// Distance of a linear model's weights and bias from the truth: weights (2, -1, 0), bias 0.5.
double error_of(const linear::parameters_type& p) {
  const auto w = p.values();
  return std::sqrt((w[0] - 2) * (w[0] - 2) + (w[1] + 1) * (w[1] + 1) + w[2] * w[2] + (w[3] - 0.5) * (w[3] - 0.5));
}

// Trains 11 learners, 2 of them attackers, with `rule` for 30 rounds; returns the final error.
template <class Rule>
double attacked_error(Rule rule) {
  std::vector<flotilla::learner<sign_flipper, linear::data_type>> learners;
  for (std::size_t i = 0; i < 11; ++i)
    learners.emplace_back(i, sign_flipper{.attacks = i < 2}, regression_data(40, 50 + i, 0.0));
  flotilla::in_memory_transport transport(std::move(learners), 2);
  flotilla::coordinator federation(transport, linear(3).parameters(), {.quorum = 11}, std::move(rule));
  federation.run(flotilla::stop::after_rounds(30));
  return error_of(federation.global());
}
}  // namespace

TEST_CASE("under sign-flipping attackers the robust rules keep the model while FedAvg is dragged away") {
  using params = linear::parameters_type;
  const double fedavg = attacked_error(flotilla::weighted_mean<params>{});
  CHECK(fedavg > 1.0);
  CHECK(attacked_error(flotilla::coordinate_median<params>{}) < 0.05);
  CHECK(attacked_error(flotilla::trimmed_mean<params>(0.2)) < 0.05);
  CHECK(attacked_error(flotilla::krum<params>(2)) < 0.05);
  CHECK(attacked_error(flotilla::krum<params>(2, 5)) < 0.05);
  CHECK(attacked_error(flotilla::bulyan<params>(2)) < 0.05);
}

TEST_CASE("a federation runs with a server optimizer as its rule") {
  using params = linear::parameters_type;
  const auto error_with = [](auto rule) {
    std::vector<flotilla::learner<linear, linear::data_type>> learners;
    for (std::size_t i = 0; i < 4; ++i)
      learners.emplace_back(i, linear(3, {.learning_rate = 0.05, .epochs = 2, .batch_size = 0}),
                            regression_data(40, 80 + i, 0.0));
    flotilla::in_memory_transport transport(std::move(learners), 2);
    flotilla::coordinator federation(transport, linear(3).parameters(), {.quorum = 4}, std::move(rule));
    federation.run(flotilla::stop::after_rounds(60));
    return error_of(federation.global());
  };
  CHECK(error_with(flotilla::fedavgm<params>({.learning_rate = 1.0, .momentum = 0.5})) < 0.01);
  CHECK(error_with(flotilla::fedadam<params>({.learning_rate = 0.05})) < 0.05);
  CHECK(error_with(flotilla::fedyogi<params>({.learning_rate = 0.05})) < 0.05);
  CHECK(error_with(flotilla::fedadagrad<params>({.learning_rate = 0.5})) < 0.05);
}
