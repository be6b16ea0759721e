#include <flotilla/models/mlp.hpp>

#include <flotilla/arithmetic.hpp>

#include <doctest/doctest.h>

#include <cmath>

using model = flotilla::mlp<double>;

namespace {
model::data_type small_problem(std::size_t examples, std::uint64_t seed) {
  flotilla::random_engine engine(seed);
  model::data_type data{Eigen::MatrixXd(4, static_cast<Eigen::Index>(examples)), {}, 3};
  for (Eigen::Index i = 0; i < data.features.cols(); ++i) {
    for (Eigen::Index f = 0; f < 4; ++f) data.features(f, i) = flotilla::standard_normal(engine);
    const double score = data.features(0, i) - data.features(2, i);
    data.labels.push_back(score > 0.5 ? 2 : score > -0.5 ? 1 : 0);
  }
  return data;
}
}  // namespace

TEST_CASE("the layout names each layer's weight and bias") {
  const model m({4, 5, 3});
  const auto& tensors = m.parameters().layout().tensors();
  REQUIRE(tensors.size() == 4);
  CHECK(tensors[0] == flotilla::tensor_spec{"layer0.weight", {5, 4}});
  CHECK(tensors[1] == flotilla::tensor_spec{"layer0.bias", {5}});
  CHECK(tensors[2] == flotilla::tensor_spec{"layer1.weight", {3, 5}});
  CHECK(tensors[3] == flotilla::tensor_spec{"layer1.bias", {3}});
  CHECK(m.parameters().size() == 5 * 4 + 5 + 3 * 5 + 3);
  CHECK(m.layers() == 2);
  CHECK(m.inputs() == 4);
  CHECK(m.classes() == 3);
  CHECK(model({4, 5, 3}, {}, 1).parameters() == model({4, 5, 3}, {}, 1).parameters());  // seeded
  CHECK_FALSE(model({4, 5, 3}, {}, 1).parameters() == model({4, 5, 3}, {}, 2).parameters());
}

TEST_CASE("backpropagation matches finite differences of the evaluated loss") {
  // One full-batch step moves each parameter by -rate * gradient; compare with a central
  // difference of evaluate()'s mean cross-entropy.
  const auto data = small_problem(16, 5);
  const double rate = 1e-3;
  model trained({4, 6, 3}, {.learning_rate = rate, .epochs = 1, .batch_size = 0}, 11);
  const auto before = trained.parameters();
  trained.fit(data, {});
  model probe({4, 6, 3});
  double worst = 0;
  for (std::size_t i = 0; i < before.size(); ++i) {
    auto shifted = before;
    const double h = 1e-6;
    shifted.values()[i] += h;
    probe.set_parameters(shifted);
    const double up = probe.evaluate(data).metrics.at("loss");
    shifted.values()[i] -= 2 * h;
    probe.set_parameters(shifted);
    const double down = probe.evaluate(data).metrics.at("loss");
    const double numeric = (up - down) / (2 * h);
    const double analytic = (before.values()[i] - trained.parameters().values()[i]) / rate;
    worst = std::max(worst, std::abs(numeric - analytic) / std::max(1.0, std::abs(numeric)));
  }
  CHECK(worst < 1e-6);
}

TEST_CASE("evaluate reports loss and accuracy against hand-computed values") {
  // Softmax regression with zero weights and biases (b0 = ln 3): class 0 gets probability 3/5.
  flotilla::softmax_regression<double> m(1, 3);
  auto p = m.parameters();
  flotilla::fill(p, 0.0);
  p.values("layer0.bias")[0] = std::log(3.0);
  m.set_parameters(p);
  const model::data_type data{Eigen::MatrixXd{{0.0, 0.0, 0.0, 0.0}}, {0, 0, 1, 2}, 3};
  const auto result = m.evaluate(data);
  CHECK(result.examples == 4);
  CHECK(result.metrics.at("accuracy") == doctest::Approx(0.5));
  // mean of -ln(3/5), -ln(3/5), -ln(1/5), -ln(1/5)
  CHECK(result.metrics.at("loss") == doctest::Approx((2 * std::log(5.0 / 3.0) + 2 * std::log(5.0)) / 4));
}

TEST_CASE("an MLP learns a problem a linear model cannot separate") {
  const auto train = small_problem(600, 1);
  const auto test = small_problem(300, 2);
  model m({4, 16, 3}, {.learning_rate = 0.2, .epochs = 30, .batch_size = 16}, 3);
  const double before = m.evaluate(test).metrics.at("accuracy");
  m.fit(train, {.round = 1, .seed = 4, .values = {}});
  const double after = m.evaluate(test).metrics.at("accuracy");
  CHECK(after > 0.9);
  CHECK(after > before + 0.2);
}

TEST_CASE("training is reproducible for a seed") {
  const auto data = small_problem(50, 3);
  model a({4, 8, 3}, {.learning_rate = 0.1, .epochs = 2, .batch_size = 8}, 1);
  model b = a;
  a.fit(data, {.round = 1, .seed = 77, .values = {}});
  b.fit(data, {.round = 1, .seed = 77, .values = {}});
  CHECK(a.parameters() == b.parameters());
  model c({4, 8, 3}, {.learning_rate = 0.1, .epochs = 2, .batch_size = 8}, 1);
  c.fit(data, {.round = 1, .seed = 78, .values = {}});
  CHECK_FALSE(a.parameters() == c.parameters());
}

TEST_CASE("bad shapes and labels are refused") {
  CHECK_THROWS_AS(model({4}), flotilla::configuration_error);
  CHECK_THROWS_AS(model({4, 0, 3}), flotilla::configuration_error);
  model m({4, 3});
  auto data = small_problem(5, 1);
  data.labels[2] = 7;
  CHECK_THROWS_WITH_AS(m.fit(data, {}), "label 7 outside [0, 3)", flotilla::data_error);
  const model::data_type wide{Eigen::MatrixXd::Zero(5, 2), {0, 1}, 3};
  CHECK_THROWS_WITH_AS((void)m.evaluate(wide), "data has 5 features; the model expects 4", flotilla::layout_error);
  const model::data_type more_classes{Eigen::MatrixXd::Zero(4, 2), {0, 1}, 10};
  CHECK_THROWS_WITH_AS((void)m.evaluate(more_classes), "data has 10 classes; the model predicts 3",
                       flotilla::layout_error);
}

TEST_CASE("FedProx's proximal term keeps an MLP's local training closer to the global model") {
  const auto data = small_problem(200, 5);
  const model start({4, 8, 3}, {.learning_rate = 0.2, .epochs = 5, .batch_size = 16}, 2);
  const auto distance_after = [&](double mu) {
    model m = start;
    m.fit(data, {.round = 1, .seed = 9, .values = {{"proximal_mu", mu}}});
    return flotilla::l2_norm(flotilla::difference(m.parameters(), start.parameters()));
  };
  const double free = distance_after(0), held = distance_after(1.0), tight = distance_after(4.0);
  CHECK(held < 0.8 * free);
  CHECK(tight < 0.8 * held);
}
