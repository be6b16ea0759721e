// Federated MLP on Fashion-MNIST across the ranks of an MPI job: the same federation as example
// 03 (10 learners, each an IID tenth of the training images, FedAvg), with the learners dealt out
// to the ranks. Rank 0 runs the coordinator and hosts its share; every other rank hosts its own
// and folds its learners' replies into one partial aggregate per round. Rank 0 evaluates on the
// test set. Run it with mpirun (scripts/demo.sh --mpi runs 4 ranks):
//   mpirun -np 4 09_mpi_fashion_mnist [--rounds N] [--learners K] [--seconds S] [--data DIR]
//                                     [--history-csv FILE]
#include "fashion_mnist_common.hpp"

#include <flotilla/transport/mpi/environment.hpp>
#include <flotilla/transport/mpi/transport.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  flotilla::mpi::environment mpi(argc, argv);
  auto flags = example::parse_flags(argc, argv, {{"rounds", "30"}, {"learners", "10"}, {"seconds", "170"}, {"data", ""},
                                                 {"history-csv", ""}});
  const std::size_t rounds = std::stoul(flags["rounds"]), learners = std::stoul(flags["learners"]);
  const auto train = example::load_or_exit(flotilla::fashion_mnist_split::train, flags["data"]);

  // This rank's learners, and a share of the cores for them to train on.
  const auto initial = example::make_model();
  std::vector<flotilla::learner<example::model, example::data>> mine;
  for (auto id : flotilla::mpi::share(learners, mpi.rank(), mpi.size()))
    mine.emplace_back(id, initial, example::learner_share(train, id, learners));
  const auto cores = std::max(1u, std::thread::hardware_concurrency());
  flotilla::in_memory_transport local(std::move(mine), std::max<std::size_t>(1, cores / unsigned(mpi.size())));
  flotilla::mpi::transport transport(mpi.world(), local);

  if (!transport.coordinates()) {
    transport.serve(flotilla::weighted_mean<example::model::parameters_type>{});
    return 0;
  }
  const auto test = example::load_or_exit(flotilla::fashion_mnist_split::test, flags["data"]);
  flotilla::coordinator federation(transport, initial.parameters(), {.quorum = learners / 2 + 1, .seed = 42});
  auto evaluator = initial;  // the coordinator evaluates the global model; it never trains
  federation.evaluate_centrally([&](const example::model::parameters_type& global) {
    evaluator.set_parameters(global);
    return evaluator.evaluate(test).metrics;
  });
  federation.on_round(example::print_round);
  std::printf("federating a %zu-parameter MLP over %zu learners on %d MPI ranks\n", initial.parameters().size(),
              learners, mpi.size());
  const auto& history = federation.run(flotilla::stop::after_rounds(rounds) ||
                                       flotilla::stop::after_time(std::chrono::duration<double>(std::stod(flags["seconds"]))));
  transport.finish();
  const auto traffic = transport.traffic();
  std::printf("rank 0 received %llu partial aggregates and %llu single messages from the other ranks\n",
              static_cast<unsigned long long>(traffic.partial_aggregates), static_cast<unsigned long long>(traffic.messages));
  example::print_final(history);
  if (!flags["history-csv"].empty()) std::ofstream(flags["history-csv"]) << flotilla::to_csv(history);
}
