// A simulated federation of 10,000 learners in one process: each holds its own IID share of
// Fashion-MNIST (6 images), 100 are selected each round, and a learner exists only while it
// trains: on_demand_transport makes it from its id when selected and drops it after its reply.
// Softmax regression, five local epochs, FedAvg, evaluation on the 10,000 test images.
// Usage: 05_simulation [--rounds N] [--learners K] [--per-round M] [--data DIR]
#include "fashion_mnist_common.hpp"

#include <sys/resource.h>

int main(int argc, char** argv) {
  auto flags = example::parse_flags(argc, argv, {{"rounds", "30"}, {"learners", "10000"}, {"per-round", "100"}, {"data", ""}});
  const std::size_t rounds = std::stoul(flags["rounds"]), learners = std::stoul(flags["learners"]),
                    per_round = std::stoul(flags["per-round"]);
  const auto train = example::load_or_exit(flotilla::fashion_mnist_split::train, flags["data"]);
  const auto test = example::load_or_exit(flotilla::fashion_mnist_split::test, flags["data"]);

  using model = flotilla::softmax_regression<float>;
  using member = flotilla::learner<model, example::data>;
  const auto parts = flotilla::partition_iid(train.size(), learners, /*seed=*/7);
  // Every learner starts as a copy of one model (the round's global parameters replace its
  // weights anyway), and copies only its own images out of the training set.
  const model prototype(784, 10, {.learning_rate = 0.1, .epochs = 5, .batch_size = 10}, 1);
  flotilla::on_demand_transport<member> transport(
      learners, [&](flotilla::learner_id id) { return member(id, prototype, train.subset(parts.at(id))); });

  flotilla::coordinator federation(
      transport, prototype.parameters(),
      {.selection = {.fraction = double(per_round) / double(learners), .minimum = per_round},
       .quorum = per_round,
       .seed = 42});
  auto evaluator = prototype;
  federation.evaluate_centrally([&](const model::parameters_type& global) {
    evaluator.set_parameters(global);
    return evaluator.evaluate(test).metrics;
  });
  federation.on_round(example::print_round);

  std::printf("simulating %zu learners (%zu images each), %zu of them a round\n", learners, train.size() / learners,
              per_round);
  example::print_final(federation.run(flotilla::stop::after_rounds(rounds)));
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::printf("peak memory: %.0f MiB\n", double(usage.ru_maxrss) / 1024.0);  // Linux counts kilobytes
}
