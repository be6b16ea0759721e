// Synthetic linear regression: 8 learners each hold noisy samples of y = w.x + b with the same
// w and b; FedAvg over the built-in linear_regression model recovers the coefficients.
#include <flotilla/flotilla.hpp>
#include <flotilla/models.hpp>

#include <cmath>
#include <cstdio>
#include <vector>

int main() {
  using model = flotilla::linear_regression<double>;
  const Eigen::Vector3d true_weight(1.5, -2.0, 0.5);
  const double true_bias = 3.0;

  flotilla::random_engine engine(2024);
  std::vector<flotilla::learner<model, model::data_type>> learners;
  for (flotilla::learner_id id = 0; id < 8; ++id) {
    model::data_type local{Eigen::MatrixXd(3, 200), Eigen::VectorXd(200)};
    for (Eigen::Index i = 0; i < 200; ++i) {
      for (Eigen::Index f = 0; f < 3; ++f) local.features(f, i) = flotilla::standard_normal(engine);
      local.targets(i) = true_weight.dot(local.features.col(i)) + true_bias + 0.1 * flotilla::standard_normal(engine);
    }
    learners.emplace_back(id, model(3, {.learning_rate = 0.05, .epochs = 1, .batch_size = 20}), std::move(local));
  }

  flotilla::in_memory_transport transport(std::move(learners));
  flotilla::coordinator federation(transport, model(3).parameters(), {.quorum = 8, .seed = 1});
  federation.on_round([](const flotilla::round_record& r) {
    std::printf("round %llu: training loss %.5f\n", static_cast<unsigned long long>(r.round),
                r.metric("fit.loss").value_or(NAN));
  });
  federation.run(flotilla::stop::after_rounds(50) ||
                 flotilla::stop::when_no_improvement("fit.loss", 3, flotilla::better::lower, 1e-6));

  const auto weight = federation.global().vector("weight");
  const double bias = federation.global().values("bias")[0];
  std::printf("weight=(%.3f, %.3f, %.3f) bias=%.3f  (true: 1.5, -2, 0.5, 3)\n", weight(0), weight(1), weight(2), bias);
  const double error = (weight - true_weight).norm() + std::abs(bias - true_bias);
  return error < 0.05 ? 0 : 1;
}
