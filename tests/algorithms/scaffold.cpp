#include <flotilla/algorithms/scaffold/server.hpp>

#include <flotilla/algorithms/scaffold/learner.hpp>
#include <flotilla/algorithms/scaffold/wire_codec.hpp>
#include <flotilla/coordinators/synchronous.hpp>
#include <flotilla/round/learner.hpp>
#include <flotilla/models/linear_regression.hpp>
#include <flotilla/transport/in_memory.hpp>

#include <Eigen/Dense>
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

namespace {
using linear = flotilla::linear_regression<double>;
using scaffold_params = flotilla::scaffold_parameters<double>;

linear::data_type two_points() {  // x = 1 -> y = 3, x = 2 -> y = 5
  return {Eigen::MatrixXd{{1.0, 2.0}}, Eigen::VectorXd{{3.0, 5.0}}};
}
scaffold_params global_of(std::vector<double> x, std::vector<double> c) {
  scaffold_params p(linear(1).parameters());
  std::ranges::copy(x, p.model_values().begin());
  std::ranges::copy(c, p.control_values().begin());
  return p;
}
std::vector<double> list(std::span<const double> values) { return {values.begin(), values.end()}; }
}  // namespace

static_assert(flotilla::ParameterSet<scaffold_params>);
static_assert(flotilla::Aggregator<flotilla::scaffold<double>, scaffold_params>);
static_assert(flotilla::TrainableOn<flotilla::scaffold_model<linear>, linear::data_type>);

TEST_CASE("the SCAFFOLD parameter set is the model followed by its control variate") {
  const auto p = global_of({1, 2}, {3, 4});
  REQUIRE(p.layout().tensors().size() == 4);
  CHECK(p.layout().tensors()[2].name == "control/weight");
  CHECK(p.layout().tensors()[3].name == "control/bias");
  CHECK(list(p.values()) == std::vector<double>{1, 2, 3, 4});
  const auto decoded = flotilla::decode<scaffold_params>(flotilla::encode(p));
  CHECK(decoded == p);
  CHECK_THROWS_WITH_AS((void)flotilla::decode<scaffold_params>(flotilla::encode(linear(1).parameters())),
                       "parameters are not a model followed by its control variate", flotilla::decode_error);
}

TEST_CASE("a SCAFFOLD learner corrects its steps by c - c_i and replies with deltas") {
  // One full-batch step at rate 0.1 from x = (0, 0) with c = (0.5, -0.5), c_i = 0.
  // The gradient at x is (-13, -8) (see linear_regression's test), so
  // y = x - 0.1 ((-13, -8) - 0 + (0.5, -0.5)) = (1.25, 0.85), and with K = 1:
  // c_i+ = c_i - c + (x - y) / 0.1 = (-0.5, 0.5) + (-12.5, -8.5) = (-13, -8), the gradient at x.
  flotilla::scaffold_model learner(linear(1, {.learning_rate = 0.1, .epochs = 1, .batch_size = 0}));
  learner.set_parameters(global_of({0, 0}, {0.5, -0.5}));
  learner.fit(two_points(), {});
  CHECK(learner.parameters().model_values()[0] == doctest::Approx(1.25));
  CHECK(learner.parameters().model_values()[1] == doctest::Approx(0.85));
  CHECK(learner.parameters().control_values()[0] == doctest::Approx(-13.0));  // c_i+ - c_i
  CHECK(learner.parameters().control_values()[1] == doctest::Approx(-8.0));
  CHECK(learner.control().values()[0] == doctest::Approx(-13.0));  // kept for the next round
  CHECK(learner.model().last_fit().steps == 1);

  // The server with N = 2 learners and lr_g = 1, this one reply:
  // x = (0, 0) + (1.25, 0.85); c = (0.5, -0.5) + (1 / 2)(-13, -8) = (-6, -4.5).
  flotilla::scaffold<double> rule({.learning_rate = 1.0, .learners = 2});
  rule.start(global_of({0, 0}, {0.5, -0.5}));
  rule.accept(learner.parameters(), 2);
  const auto next = rule.result();
  CHECK(next.model_values()[0] == doctest::Approx(1.25));
  CHECK(next.model_values()[1] == doctest::Approx(0.85));
  CHECK(next.control_values()[0] == doctest::Approx(-6.0));
  CHECK(next.control_values()[1] == doctest::Approx(-4.5));

  // Round 2 on the same learner: its correction is now c - c_i = (-6, -4.5) - (-13, -8) = (7, 3.5),
  // so its step is a plain model's step from the same start, moved back by 0.1 (7, 3.5).
  learner.set_parameters(next);
  learner.fit(two_points(), {});
  linear plain(1, {.learning_rate = 0.1, .epochs = 1, .batch_size = 0});
  auto start = plain.parameters();
  start.values()[0] = 1.25;
  start.values()[1] = 0.85;
  plain.set_parameters(start);
  plain.fit(two_points(), {});
  CHECK(learner.parameters().model_values()[0] == doctest::Approx(plain.parameters().values()[0] - 0.7 - 1.25));
  CHECK(learner.parameters().model_values()[1] == doctest::Approx(plain.parameters().values()[1] - 0.35 - 0.85));
}

TEST_CASE("the SCAFFOLD rule refuses settings and rounds that cannot work") {
  using flotilla::configuration_error;
  CHECK_THROWS_WITH_AS(flotilla::scaffold<double>({.learners = 0}), "SCAFFOLD needs the number of learners N",
                       configuration_error);
  CHECK_THROWS_WITH_AS(flotilla::scaffold<double>({.learning_rate = 0, .learners = 3}),
                       "SCAFFOLD's learning rate must be positive", configuration_error);
  flotilla::scaffold<double> rule({.learners = 1});
  rule.start(global_of({0, 0}, {0, 0}));
  rule.accept(global_of({1, 1}, {1, 1}), 1);
  rule.accept(global_of({1, 1}, {1, 1}), 1);
  CHECK_THROWS_WITH_AS((void)rule.result(), "2 learners replied but SCAFFOLD was told there are 1", configuration_error);
}

TEST_CASE("SCAFFOLD federates learners whose data disagree and converges to the joint optimum") {
  // Three learners whose local optima differ (shifted targets); many local steps make FedAvg
  // drift towards the learners' own optima, SCAFFOLD's correction removes the drift.
  const auto data_for = [](std::size_t i) {
    flotilla::random_engine engine(60 + i);
    linear::data_type data{Eigen::MatrixXd(1, 40), Eigen::VectorXd(40)};
    for (Eigen::Index k = 0; k < 40; ++k) {
      data.features(0, k) = flotilla::standard_normal(engine) + double(i);
      data.targets(k) = 2 * data.features(0, k) + 1 + 0.5 * (double(i) - 1);
    }
    return data;
  };
  const flotilla::sgd_options local{.learning_rate = 0.05, .epochs = 5, .batch_size = 0};
  using scaffold_learner = flotilla::learner<flotilla::scaffold_model<linear>, linear::data_type>;
  std::vector<scaffold_learner> learners;
  for (std::size_t i = 0; i < 3; ++i) learners.emplace_back(i, flotilla::scaffold_model(linear(1, local)), data_for(i));
  flotilla::in_memory_transport transport(std::move(learners), 1);
  flotilla::coordinator federation(transport, scaffold_params(linear(1).parameters()), {.quorum = 3},
                                   flotilla::scaffold<double>({.learners = 3}));
  federation.run(flotilla::stop::after_rounds(150));

  // The joint least-squares optimum over all three learners' data.
  Eigen::MatrixXd features(2, 120);
  Eigen::VectorXd targets(120);
  for (std::size_t i = 0; i < 3; ++i) {
    const auto d = data_for(i);
    features.block(0, Eigen::Index(40 * i), 1, 40) = d.features;
    features.block(1, Eigen::Index(40 * i), 1, 40).setOnes();
    targets.segment(Eigen::Index(40 * i), 40) = d.targets;
  }
  const Eigen::Vector2d optimum = (features * features.transpose()).ldlt().solve(features * targets);
  const auto x = federation.global().model_values();
  CHECK(x[0] == doctest::Approx(optimum(0)).epsilon(1e-3));
  CHECK(x[1] == doctest::Approx(optimum(1)).epsilon(1e-3));

  // FedAvg with the same local work settles elsewhere: the drift SCAFFOLD corrects.
  std::vector<flotilla::learner<linear, linear::data_type>> plain_learners;
  for (std::size_t i = 0; i < 3; ++i) plain_learners.emplace_back(i, linear(1, local), data_for(i));
  flotilla::in_memory_transport plain_transport(std::move(plain_learners), 1);
  flotilla::coordinator fedavg(plain_transport, linear(1).parameters(), {.quorum = 3});
  fedavg.run(flotilla::stop::after_rounds(150));
  const auto error = [&](std::span<const double> w) { return std::hypot(w[0] - optimum(0), w[1] - optimum(1)); };
  CHECK(error(fedavg.global().values()) > 10 * error(x));
}
