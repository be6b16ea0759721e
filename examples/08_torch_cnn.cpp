// A LibTorch CNN federated on Fashion-MNIST: two convolutional layers, 10 learners each training
// on its own IID tenth of the training images, FedAvg on the coordinator, evaluation on the
// test set. The same program is also the aggregator and the learners of the same federation
// over TCP (./scripts/demo.sh --torch --tcp).
//   08_torch_cnn [--rounds 30] [--learners 10] [--seconds 600] [--data DIR] [--channels 16]
//                [--to-learners CODEC] [--to-aggregator CODEC] [--history-csv FILE]
//   08_torch_cnn --aggregate yes [--port 7800] [--learners 10] [--rounds 30] ...  over TCP: the aggregator
//   08_torch_cnn --learner ID [--port 7800] [--learners 10] ...                  over TCP: learner ID
#include <flotilla/integrations/torch/model.hpp>
#include <flotilla/round/compressing_learner.hpp>
#include <flotilla/transport/tcp/learner_client.hpp>
#include <flotilla/transport/tcp/server_transport.hpp>

#include "fashion_mnist_common.hpp"

#include <chrono>
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

namespace {

using network = torch::nn::Sequential;
using cnn = flotilla::torch_model<network>;
using cnn_learner = flotilla::compressing_learner<flotilla::learner<cnn, flotilla::torch_data>>;

// conv 5x5 (C channels) -> ReLU -> max pool 2 -> conv 5x5 (2C) -> ReLU -> max pool 2 -> linear
// 128 -> ReLU -> linear 10. Every process builds the same initial weights from the same seed.
cnn make_cnn(std::int64_t channels) {
  torch::manual_seed(1);
  network layers(torch::nn::Conv2d(torch::nn::Conv2dOptions(1, channels, 5).padding(2)), torch::nn::ReLU(),
                 torch::nn::MaxPool2d(2),
                 torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, 2 * channels, 5).padding(2)), torch::nn::ReLU(),
                 torch::nn::MaxPool2d(2), torch::nn::Flatten(), torch::nn::Linear(2 * channels * 7 * 7, 128),
                 torch::nn::ReLU(), torch::nn::Linear(128, 10));
  // One thread per learner: the in-memory transport trains two learners at once on two cores.
  return cnn(layers, {.sgd = {.learning_rate = 0.05, .epochs = 1, .batch_size = 32}, .threads = 1}, flotilla::torch_sgd(0.9));
}

// Images [N, 1, 28, 28] and labels [N] from Flotilla's reader; pixels standardized with the
// training set's mean and deviation (0.286, 0.353).
flotilla::torch_data as_tensors(const example::data& images) {
  const auto count = std::int64_t(images.size());
  auto inputs = (torch::from_blob(const_cast<float*>(images.features.data()), {count, 1, 28, 28}, torch::kFloat32) - 0.286f) / 0.353f;
  std::vector<std::int64_t> labels(images.labels.begin(), images.labels.end());
  return {inputs, torch::tensor(labels, torch::kInt64)};
}

}  // namespace

int main(int argc, char** argv) {
  auto flags = example::parse_flags(argc, argv,
                                    {{"rounds", "30"}, {"learners", "10"}, {"seconds", "600"}, {"data", ""}, {"channels", "16"},
                                     {"to-learners", "none"}, {"to-aggregator", "none"}, {"history-csv", ""},
                                     {"aggregate", "no"}, {"learner", ""}, {"port", "7800"}});
  const std::size_t rounds = std::stoul(flags["rounds"]), learners = std::stoul(flags["learners"]);
  const auto channels = std::stol(flags["channels"]);
  const auto codecs = example::parse_codecs(flags["to-learners"], flags["to-aggregator"]);
  const auto port = static_cast<std::uint16_t>(std::stoul(flags["port"]));
  const auto initial = make_cnn(channels);

  if (!flags["learner"].empty()) {  // one learner over TCP, its share of the training images
    const flotilla::learner_id id = std::stoull(flags["learner"]);
    const auto share = example::learner_share(example::load_or_exit(flotilla::fashion_mnist_split::train, flags["data"]), id,
                                              learners);
    cnn_learner learner(flotilla::learner(id, initial, as_tensors(share)));
    const auto exit = flotilla::tcp::learner_client(learner, {.port = port}).run();
    return exit == flotilla::tcp::client_exit::goodbye ? 0 : 3;
  }

  const auto test = as_tensors(example::load_or_exit(flotilla::fashion_mnist_split::test, flags["data"]));
  const auto run = [&](auto& transport) {
    flotilla::coordinator federation(transport, initial.parameters(),
                                     {.quorum = learners / 2 + 1, .round_timeout = std::chrono::minutes(10),
                                      .wait_for_learners = std::chrono::seconds(60), .seed = 42,
                                      // The learning rate decays by 8% a round, from 0.05.
                                      .fit_schedule = [](std::uint64_t round) {
                                        return flotilla::settings{{"learning_rate", 0.05 * std::pow(0.92, double(round - 1))}};
                                      },
                                      .compression = codecs});
    auto evaluator = initial;  // the coordinator evaluates the global model; it never trains
    federation.evaluate_centrally([&](const flotilla::torch_parameters& global) {
      evaluator.set_parameters(global);
      return evaluator.evaluate(test).metrics;
    });
    federation.on_round(example::print_round);
    std::printf("federating a %zu-parameter CNN over %zu learners\n", initial.parameters().size(), learners);
    std::fflush(stdout);
    const auto& history = federation.run(flotilla::stop::after_rounds(rounds) ||
                                         flotilla::stop::after_time(std::chrono::duration<double>(std::stod(flags["seconds"]))));
    example::print_final(history);
    if (!flags["history-csv"].empty()) std::ofstream(flags["history-csv"]) << flotilla::to_csv(history);
  };

  if (flags["aggregate"] == "yes") {  // the aggregator over TCP, on loopback
    flotilla::tcp::server_transport<flotilla::torch_parameters> transport({.port = port});
    std::printf("aggregator listening on 127.0.0.1:%u, waiting for %zu learners\n", transport.port(), learners);
    std::fflush(stdout);
    flotilla::wait_for_learners(transport, learners, std::chrono::seconds(60));
    run(transport);
    transport.say_goodbye();
    return 0;
  }

  const auto train = example::load_or_exit(flotilla::fashion_mnist_split::train, flags["data"]);
  std::vector<cnn_learner> members;
  for (std::size_t i = 0; i < learners; ++i)
    members.emplace_back(flotilla::learner(i, initial, as_tensors(example::learner_share(train, i, learners))));
  flotilla::in_memory_transport transport(std::move(members));
  run(transport);
}
