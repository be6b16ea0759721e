// A very large simulated federation over MPI: 100,000 learners with a softmax-regression model
// (784 features, 10 classes: 7,850 parameters), each made on demand by the rank that hosts it
// and holding 6 synthetic examples made from its id; 1,000 selected per round, FedAvg. Run it
// with mpirun on 1, 2 and 4 ranks (benchmarks/mpi_scaling.sh). Reports rounds per second, what
// rank 0 received per round, and every rank's peak RSS. On one rank it first runs the same
// federation without MPI (on_demand_transport alone), so the transport's own cost shows as a
// ratio in the same run.
// Usage: mpirun -np R bench_mpi [learners=100000] [selected=1000] [rounds=20] [workers per rank]
#include <flotilla/transport/mpi/transport.hpp>

#include <flotilla/flotilla.hpp>
#include <flotilla/models.hpp>
#include <flotilla/transport/mpi/environment.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

using model = flotilla::softmax_regression<float>;
using data = model::data_type;
using one_learner = flotilla::learner<model, data>;

constexpr std::size_t features = 784, classes = 10, examples = 6;

// Learner `id`'s examples: features in [0, 1) from a counter-based hash of (id, index), cheap
// beside training, and the class a fixed rule of the first features picks, so training has
// something to fit.
data examples_of(flotilla::learner_id id) {
  data local{Eigen::MatrixXf(features, examples), std::vector<std::int32_t>(examples), std::int32_t(classes)};
  float* values = local.features.data();
  for (std::size_t i = 0; i < features * examples; ++i) {
    std::uint64_t x = (id << 20) + i + 0x9E3779B97F4A7C15ULL;  // splitmix64's finalizer
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    values[i] = float((x ^ (x >> 31)) >> 40) * 0x1p-24f;
  }
  for (std::size_t k = 0; k < examples; ++k) {
    Eigen::Index best = 0;
    local.features.col(Eigen::Index(k)).head(classes).maxCoeff(&best);
    local.labels[k] = std::int32_t(best);
  }
  return local;
}

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return double(usage.ru_maxrss) / 1024.0;  // Linux reports kilobytes
}

template <class T>
double rounds_per_second(T& transport, const model& prototype, std::size_t learners, std::size_t selected, std::size_t rounds) {
  flotilla::coordinator federation(transport, prototype.parameters(),
                                   {.selection = {.fraction = double(selected) / double(learners), .minimum = selected},
                                    .quorum = selected,
                                    .seed = 9});
  federation.run_round();  // warm-up: first allocations, first pages
  const auto start = std::chrono::steady_clock::now();
  federation.run(flotilla::stop::after_rounds(rounds + 1));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (const auto& round : federation.history().rounds)
    if (round.participants.size() != selected) std::printf("warning: round %llu aggregated %zu replies\n",
                                                           (unsigned long long)round.round, round.participants.size());
  return double(rounds) / seconds;
}

}  // namespace

int main(int argc, char** argv) {
  flotilla::mpi::environment mpi(argc, argv);
  const std::size_t learners = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 100'000;
  const std::size_t selected = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 1'000;
  const std::size_t rounds = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 20;
  const std::size_t cores = std::max(1u, std::thread::hardware_concurrency());
  const std::size_t workers = argc > 4 ? std::strtoul(argv[4], nullptr, 10)
                                       : std::max<std::size_t>(1, cores / std::size_t(mpi.size()));
  const model prototype(features, classes, {.learning_rate = 0.1, .epochs = 1, .batch_size = 32});
  const auto make = [&](flotilla::learner_id id) { return one_learner(id, prototype, examples_of(id)); };

  if (mpi.size() == 1) {  // the same federation without MPI, for the ratio
    flotilla::on_demand_transport<one_learner> alone(learners, make, workers);
    std::printf("without MPI: %.2f rounds/s (%zu learners, %zu per round, %zu workers)\n",
                rounds_per_second(alone, prototype, learners, selected, rounds), learners, selected, workers);
  }
  flotilla::on_demand_transport<one_learner> local(flotilla::mpi::share(learners, mpi.rank(), mpi.size()), make, workers);
  flotilla::mpi::transport transport(mpi.world(), local);
  double speed = 0;
  flotilla::mpi::traffic received;
  if (transport.coordinates()) {
    speed = rounds_per_second(transport, prototype, learners, selected, rounds);
    transport.finish();
    received = transport.traffic();
  } else {
    transport.serve(flotilla::weighted_mean<flotilla::parameters<float>>{});
  }
  const double rss = peak_rss_mib();
  std::vector<double> all(std::size_t(mpi.size()));
  MPI_Gather(&rss, 1, MPI_DOUBLE, all.data(), 1, MPI_DOUBLE, 0, mpi.world());
  if (!transport.coordinates()) return 0;
  const double exchanges = double(rounds + 1);
  std::printf("%d rank(s), %zu workers each: %.2f rounds/s; rank 0 received per round %.1f partial aggregates, "
              "%.1f messages, %.0f KiB (one model is %.0f KiB)\n",
              mpi.size(), workers, speed, double(received.partial_aggregates) / exchanges,
              double(received.messages) / exchanges, double(received.bytes) / exchanges / 1024,
              double(prototype.parameters().values().size_bytes()) / 1024);
  std::printf("peak RSS per rank (MiB):");
  for (double each : all) std::printf(" %.0f", each);
  std::printf("\n");
  return 0;
}
