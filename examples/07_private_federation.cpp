// Learner-level differential privacy on Fashion-MNIST (DP-FedAvg, McMahan et al. 2018): 6,000
// simulated learners of 10 images each, made on demand; each round draws every learner with
// probability q (Poisson sampling), the server clips each update's delta to a norm that adapts
// to the updates' median (Andrew et al. 2021), adds Gaussian noise calibrated so the whole run
// stays (epsilon, 1e-5)-DP, and steps with server momentum (post-processing: no privacy cost).
// The accountant reports epsilon every round, and the run stops before the budget is exceeded.
// Usage: 07_private_federation [--epsilon E | --epsilon none] [--rounds T] [--learners N]
//                              [--sampling-rate Q] [--data DIR] [--history-csv FILE]
#include "fashion_mnist_common.hpp"

#include <flotilla/algorithms/privacy/server.hpp>

#include <fstream>

namespace {

using model = flotilla::softmax_regression<float>;
using P = model::parameters_type;

void print_private_round(const flotilla::round_record& r) {
  std::printf("round %3llu: participants=%zu loss=%.4f test_accuracy=%.4f clip=%.3f epsilon=%.3f\n",
              static_cast<unsigned long long>(r.round), r.participants.size(), r.metric("fit.loss").value_or(NAN),
              r.metric("central.accuracy").value_or(NAN), r.metric("privacy.clip_norm").value_or(NAN),
              r.metric("privacy.epsilon").value_or(INFINITY));
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  auto flags = example::parse_flags(argc, argv,
                                    {{"epsilon", "8"}, {"rounds", "100"}, {"learners", "6000"}, {"sampling-rate", "0.05"},
                                     {"data", ""}, {"history-csv", ""}});
  const std::size_t rounds = std::stoul(flags["rounds"]), learners = std::stoul(flags["learners"]);
  const double q = std::stod(flags["sampling-rate"]), delta = 1e-5;
  const bool private_run = flags["epsilon"] != "none";
  const auto train = example::load_or_exit(flotilla::fashion_mnist_split::train, flags["data"]);
  const auto test = example::load_or_exit(flotilla::fashion_mnist_split::test, flags["data"]);

  using member = flotilla::learner<model, example::data>;
  const auto parts = flotilla::partition_iid(train.size(), learners, /*seed=*/7);
  const model prototype(784, 10, {.learning_rate = 0.1, .epochs = 5, .batch_size = 10}, 1);
  flotilla::on_demand_transport<member> transport(
      learners, [&](flotilla::learner_id id) { return member(id, prototype, train.subset(parts.at(id))); });
  const flotilla::coordinator_options options{
      .selection = {.fraction = q, .draw = flotilla::sampling::poisson}, .quorum = 1, .seed = 42};
  const flotilla::momentum_options server_step{.learning_rate = 1.0, .momentum = 0.9};

  // The same federation with or without privacy: only the rule and the stopping rule differ.
  const auto federate = [&](auto rule, const flotilla::stopping_rule& stop) {
    flotilla::coordinator federation(transport, prototype.parameters(), options, std::move(rule));
    auto evaluator = prototype;
    federation.evaluate_centrally([&](const P& global) {
      evaluator.set_parameters(global);
      return evaluator.evaluate(test).metrics;
    });
    federation.on_round(print_private_round);
    const auto& history = federation.run(stop);
    std::printf("stopped: %s\n", history.stop_reason.c_str());
    if (!flags["history-csv"].empty()) std::ofstream(flags["history-csv"]) << flotilla::to_csv(history);
    return history;
  };

  std::printf("%zu learners of %zu images, each drawn with probability %g per round (about %.0f a round)\n", learners,
              train.size() / learners, q, q * double(learners));
  if (!private_run) {
    const auto history = federate(flotilla::fedavgm<P, flotilla::mean<P>>(server_step), flotilla::stop::after_rounds(rounds));
    std::printf("final: rounds=%zu test_accuracy=%.4f epsilon=inf\n", history.rounds.size(),
                history.rounds.back().metric("central.accuracy").value_or(0));
    return 0;
  }
  double target = 0;
  try {
    target = std::stod(flags["epsilon"]);
  } catch (const std::exception&) {
    example::require_flags(false, "--epsilon takes a number or 'none'");
  }
  try {
    const double sigma = flotilla::privacy::noise_multiplier_for(target, delta, q, rounds);
    const flotilla::privacy::accountant accountant(sigma, q, delta);
    std::printf("noise multiplier %.4f for epsilon %g at delta %g over %zu rounds\n", sigma, target, delta, rounds);
    const flotilla::privacy::dp_mean_options privacy{
        .noise_multiplier = sigma,
        .adaptive = flotilla::privacy::adaptive_clipping{.expected_learners = q * double(learners)},
        .accounting = accountant};
    const auto history = federate(flotilla::fedavgm<P, flotilla::privacy::dp_mean<P>>(server_step, flotilla::privacy::dp_mean<P>(privacy)),
                                  flotilla::stop::when_privacy_budget_spent(target, accountant) ||
                                      flotilla::stop::after_rounds(rounds));
    const auto& last = history.rounds.back();
    std::printf("final: rounds=%zu test_accuracy=%.4f epsilon=%.4f\n", history.rounds.size(),
                last.metric("central.accuracy").value_or(0), last.metric("privacy.epsilon").value_or(INFINITY));
  } catch (const flotilla::configuration_error& error) {
    example::require_flags(false, error.what());
  }
}
