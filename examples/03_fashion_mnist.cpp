// Federated MLP on Fashion-MNIST: 10 in-memory learners, each training on its own IID tenth of
// the 60,000 training images, FedAvg on the coordinator, evaluation on the official 10,000-image
// test set. With --alpha A > 0 the split is non-IID instead: Dirichlet(A) label skew, whose
// per-learner label counts are printed first. --to-learners and --to-aggregator code the
// parameters each way as over a network (float16, bfloat16, int8, int4; top_k for replies), so
// the accuracy a codec costs shows here without one.
// Usage: 03_fashion_mnist [--rounds N] [--learners K] [--seconds S] [--alpha A] [--data DIR]
//                         [--to-learners CODEC] [--to-aggregator CODEC]
//                         [--history-csv FILE]  (the history, for scripts/plot_history.sh)
#include "fashion_mnist_common.hpp"

#include <chrono>
#include <fstream>
#include <vector>

int main(int argc, char** argv) {
  auto flags = example::parse_flags(argc, argv, {{"rounds", "30"}, {"learners", "10"}, {"seconds", "170"}, {"alpha", "0"}, {"data", ""},
                                                 {"history-csv", ""}, {"to-learners", "none"}, {"to-aggregator", "none"}});
  const auto codecs = example::parse_codecs(flags["to-learners"], flags["to-aggregator"]);
  const std::size_t rounds = std::stoul(flags["rounds"]), learners = std::stoul(flags["learners"]);
  const auto train = example::load_or_exit(flotilla::fashion_mnist_split::train, flags["data"]);
  const auto test = example::load_or_exit(flotilla::fashion_mnist_split::test, flags["data"]);

  const auto initial = example::make_model();
  // Each learner codes its replies as the round asks (and passes plain rounds through).
  std::vector<flotilla::compressing_learner<flotilla::learner<example::model, example::data>>> members;
  const double alpha = std::stod(flags["alpha"]);
  if (alpha > 0) {
    const auto parts = flotilla::partition_dirichlet(train.labels, learners, alpha, /*seed=*/7, /*minimum=*/10);
    std::printf("Dirichlet(%g) label skew; classes by count per learner:\n%s", alpha,
                flotilla::describe_label_counts(flotilla::label_counts(parts, train.labels)).c_str());
    for (std::size_t i = 0; i < learners; ++i) members.emplace_back(flotilla::learner(i, initial, train.subset(parts[i])));
  } else {
    for (std::size_t i = 0; i < learners; ++i)
      members.emplace_back(flotilla::learner(i, initial, example::learner_share(train, i, learners)));
  }
  flotilla::in_memory_transport transport(std::move(members));

  flotilla::coordinator federation(transport, initial.parameters(), {.quorum = learners / 2 + 1, .seed = 42, .compression = codecs});
  auto evaluator = initial;  // the coordinator evaluates the global model; it never trains
  federation.evaluate_centrally([&](const example::model::parameters_type& global) {
    evaluator.set_parameters(global);
    return evaluator.evaluate(test).metrics;
  });
  federation.on_round(example::print_round);

  std::printf("federating a %zu-parameter MLP over %zu in-memory learners (%zu training images in all)\n",
              initial.parameters().size(), learners, train.size());
  const auto& history = federation.run(flotilla::stop::after_rounds(rounds) ||
                                       flotilla::stop::after_time(std::chrono::duration<double>(std::stod(flags["seconds"]))));
  example::print_final(history);
  if (!flags["history-csv"].empty()) std::ofstream(flags["history-csv"]) << flotilla::to_csv(history);  // scripts/plot_history.sh plots it
}
