#include <flotilla/models/linear_regression.hpp>

#include <doctest/doctest.h>

using model = flotilla::linear_regression<double>;

namespace {
model::data_type two_points() {
  // x = 1 -> y = 3, x = 2 -> y = 5 (the line y = 2x + 1)
  return {Eigen::MatrixXd{{1.0, 2.0}}, Eigen::VectorXd{{3.0, 5.0}}};
}
}  // namespace

TEST_CASE("one full-batch step matches the hand-computed gradient") {
  model m(1, {.learning_rate = 0.1, .epochs = 1, .batch_size = 0});
  const auto result = m.fit(two_points(), {});
  // Residuals at w = b = 0: -3 and -5. Gradient of mean squared error:
  // dw = 2/2 * (-3*1 + -5*2) = -13, db = 2/2 * (-3 + -5) = -8; step 0.1.
  CHECK(m.parameters().values("weight")[0] == doctest::Approx(1.3));
  CHECK(m.parameters().values("bias")[0] == doctest::Approx(0.8));
  CHECK(result.examples == 2);
  CHECK(result.metrics.at("loss") == doctest::Approx(17.0));  // (9 + 25) / 2, before the step
}

TEST_CASE("evaluate reports the mean squared error") {
  model m(1);
  auto p = m.parameters();
  p.values("weight")[0] = 2.0;
  p.values("bias")[0] = 0.0;
  m.set_parameters(p);
  const auto result = m.evaluate(two_points());
  CHECK(result.metrics.at("loss") == doctest::Approx(1.0));  // residuals -1, -1
  CHECK(result.examples == 2);
}

TEST_CASE("enough steps recover the line") {
  model m(1, {.learning_rate = 0.1, .epochs = 5000, .batch_size = 0});
  m.fit(two_points(), {});
  CHECK(m.parameters().values("weight")[0] == doctest::Approx(2.0).epsilon(1e-6));
  CHECK(m.parameters().values("bias")[0] == doctest::Approx(1.0).epsilon(1e-6));
}

TEST_CASE("fit_config values override the model's own settings") {
  model m(1, {.learning_rate = 0.1, .epochs = 1, .batch_size = 0});
  m.fit(two_points(), {.round = 1, .seed = 0, .values = {{"learning_rate", 0.2}}});
  CHECK(m.parameters().values("weight")[0] == doctest::Approx(2.6));
  CHECK_THROWS_WITH_AS(m.fit(two_points(), {.round = 1, .seed = 0, .values = {{"learning_rate", -1}}}),
                       "learning_rate must be positive; got -1.000000", flotilla::configuration_error);
  CHECK_THROWS_WITH_AS(m.fit(two_points(), {.round = 1, .seed = 0, .values = {{"epochs", 1.5}}}),
                       "epochs must be a whole number >= 0; got 1.500000", flotilla::configuration_error);
  CHECK_THROWS_WITH_AS(m.fit(two_points(), {.round = 1, .seed = 0, .values = {{"batch_size", -2}}}),
                       "batch_size must be a whole number >= 0; got -2.000000", flotilla::configuration_error);
}

TEST_CASE("mismatched data and parameters are refused") {
  model m(2);
  CHECK_THROWS_WITH_AS(m.fit(two_points(), {}), "data has 1 features; the model expects 2", flotilla::layout_error);
  CHECK_THROWS_WITH_AS(m.set_parameters(model(3).parameters()),
                       "new parameters has 4 parameters; the linear regression model has 3", flotilla::layout_error);
}

TEST_CASE("FedProx's proximal term adds mu (w - w_global) to every step's gradient") {
  // Two full-batch steps, rate 0.1. Step 1 starts at the global model, where the term is zero:
  // w = 1.3, b = 0.8 as in the plain test above. Step 2 at (1.3, 0.8): residuals -0.9 and -1.6,
  // dw = -0.9 - 3.2 = -4.1, db = -2.5, so plain SGD reaches (1.71, 1.05); the proximal term
  // adds 0.1 * mu * (1.3, 0.8) = (0.065, 0.04) for mu = 0.5 and pulls back to (1.645, 1.01).
  model plain(1, {.learning_rate = 0.1, .epochs = 2, .batch_size = 0});
  plain.fit(two_points(), {});
  CHECK(plain.parameters().values("weight")[0] == doctest::Approx(1.71));
  CHECK(plain.parameters().values("bias")[0] == doctest::Approx(1.05));
  model proximal(1, {.learning_rate = 0.1, .epochs = 2, .batch_size = 0, .proximal_mu = 0.5});
  proximal.fit(two_points(), {});
  CHECK(proximal.parameters().values("weight")[0] == doctest::Approx(1.645));
  CHECK(proximal.parameters().values("bias")[0] == doctest::Approx(1.01));
  // The coordinator turns it on for every learner through fit_config.
  model configured(1, {.learning_rate = 0.1, .epochs = 2, .batch_size = 0});
  configured.fit(two_points(), {.round = 1, .seed = 0, .values = {{"proximal_mu", 0.5}}});
  CHECK(configured.parameters() == proximal.parameters());
  CHECK_THROWS_WITH_AS(configured.fit(two_points(), {.round = 1, .seed = 0, .values = {{"proximal_mu", -1}}}),
                       "proximal_mu must be >= 0; got -1.000000", flotilla::configuration_error);
}
