// Federated MLP on Fashion-MNIST: 10 in-memory learners, each training on its own IID tenth of
// the 60,000 training images, FedAvg on the coordinator, evaluation on the official 10,000-image
// test set. Usage: 03_fashion_mnist [--rounds N] [--learners K] [--seconds S] [--data DIR]
#include <flotilla/data/fashion_mnist.hpp>
#include <flotilla/flotilla.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

int main(int argc, char** argv) {
  std::size_t rounds = 30, learners = 10;
  double seconds = 170;
  std::filesystem::path directory = flotilla::fashion_mnist_default_directory;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view flag = argv[i];
    if (flag == "--rounds") rounds = std::stoul(argv[i + 1]);
    else if (flag == "--learners") learners = std::stoul(argv[i + 1]);
    else if (flag == "--seconds") seconds = std::stod(argv[i + 1]);
    else if (flag == "--data") directory = argv[i + 1];
    else {
      std::fprintf(stderr, "unknown flag %s\n", argv[i]);
      return 2;
    }
  }

  using model = flotilla::mlp<float>;
  using data = model::data_type;
  data train, test;
  try {
    train = flotilla::load_fashion_mnist(flotilla::fashion_mnist_split::train, directory);
    test = flotilla::load_fashion_mnist(flotilla::fashion_mnist_split::test, directory);
  } catch (const flotilla::data_error& error) {
    std::fprintf(stderr, "error: %s\n", error.what());
    return 1;
  }

  // 784 pixels -> 128 ReLU units -> 10 classes; one local epoch of minibatch SGD per round.
  const model initial({784, 128, 10}, {.learning_rate = 0.1, .epochs = 1, .batch_size = 32}, /*seed=*/1);
  std::vector<flotilla::learner<model, data>> members;
  const auto parts = flotilla::partition_iid(train.size(), learners, /*seed=*/7);
  for (std::size_t i = 0; i < learners; ++i) members.emplace_back(i, initial, train.subset(parts[i]));
  flotilla::in_memory_transport transport(std::move(members));

  flotilla::coordinator federation(transport, initial.parameters(),
                                   {.quorum = learners / 2 + 1, .seed = 42});
  model evaluator = initial;  // the coordinator evaluates the global model; it never trains
  federation.evaluate_centrally([&](const model::parameters_type& global) {
    evaluator.set_parameters(global);
    return evaluator.evaluate(test).metrics;
  });
  federation.on_round([&](const flotilla::round_record& r) {
    std::printf("round %2llu: participants=%zu/%zu loss=%.4f test_accuracy=%.4f seconds=%.1f%s%s\n",
                static_cast<unsigned long long>(r.round), r.participants.size(), r.selected.size(),
                r.metric("fit.loss").value_or(NAN), r.metric("central.accuracy").value_or(NAN), r.round_seconds,
                r.note.empty() ? "" : " ", r.note.c_str());
    std::fflush(stdout);
  });

  std::printf("federating a %zu-parameter MLP over %zu learners (%zu training images each)\n",
              initial.parameters().size(), learners, parts[0].size());
  const auto& history = federation.run(flotilla::stop::after_rounds(rounds) ||
                                       flotilla::stop::after_time(std::chrono::duration<double>(seconds)));
  const auto accuracy = history.rounds.empty() ? 0.0 : history.rounds.back().metric("central.accuracy").value_or(0.0);
  std::printf("stopped: %s\n", history.stop_reason.c_str());
  std::printf("final: rounds=%zu test_accuracy=%.4f\n", history.rounds.size(), accuracy);
  return 0;
}
