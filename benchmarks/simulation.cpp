// Simulating a large federation in one process: 10,000 learners holding an IID partition of
// Fashion-MNIST (6 images each) with a softmax-regression model, 100 selected per round. Each
// learner is made when selected and dropped after its reply (on_demand_transport), so memory
// follows the learners at work. Reports the process's peak RSS against the 2 GiB target, and
// where a round's time goes: training (inside fit), making learners (the factory: model and
// data subset), and the rest, the framework (dispatch, validation, folding, selection).
// Usage: bench_simulation [learners=10000] [selected=100] [rounds=50] [data directory]
#include <flotilla/data/fashion_mnist.hpp>
#include <flotilla/flotilla.hpp>
#include <flotilla/models.hpp>
#include <flotilla/data/partition.hpp>

#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "timing.hpp"

namespace {

using clock_type = std::chrono::steady_clock;
using model_base = flotilla::softmax_regression<float>;
using data = model_base::data_type;

std::atomic<std::int64_t> training_ns{0}, making_ns{0};

std::int64_t since(clock_type::time_point start) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - start).count();
}

// The reference model, with the time spent inside fit counted.
struct timed_model : model_base {
  timed_model() : model_base(784, 10, {.learning_rate = 0.1, .epochs = 1, .batch_size = 32}) {}
  flotilla::local_result fit(const data& local, const flotilla::fit_config& config) {
    const auto start = clock_type::now();
    auto result = model_base::fit(local, config);
    training_ns += since(start);
    return result;
  }
};

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return double(usage.ru_maxrss) / 1024.0;  // Linux reports kilobytes
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t learners = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 10'000;
  const std::size_t selected = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 100;
  const std::size_t rounds = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 50;
  const std::filesystem::path directory = argc > 4 ? argv[4] : flotilla::fashion_mnist_default_directory;
  const auto train = flotilla::load_fashion_mnist(flotilla::fashion_mnist_split::train, directory);
  const auto test = flotilla::load_fashion_mnist(flotilla::fashion_mnist_split::test, directory);
  const auto parts = flotilla::partition_iid(train.size(), learners, 5);

  // Learners copy one prototype model: drawing fresh random weights for each would cost more
  // than its training, and the global parameters replace them anyway.
  const timed_model prototype;
  const auto make = [&](flotilla::learner_id id) {
    const auto start = clock_type::now();
    flotilla::learner<timed_model, data> made(id, prototype, train.subset(parts[id]));
    making_ns += since(start);
    return made;
  };

  // One local epoch is a single minibatch step on 6 images: about as little work as a learner
  // can do. Five epochs is a common FL setting (McMahan et al. 2017 use 1, 5 and 20).
  for (const int epochs : {1, 5}) {
    flotilla::on_demand_transport<flotilla::learner<timed_model, data>> transport(learners, make);
    flotilla::coordinator federation(transport, prototype.parameters(),
                                     {.selection = {.fraction = double(selected) / double(learners), .minimum = selected},
                                      .quorum = selected,
                                      .seed = 9,
                                      .fit_settings = {{"epochs", epochs}}});
    federation.run(flotilla::stop::after_rounds(60));  // warm-up: the allocators' first-touch faults
    training_ns = 0;
    making_ns = 0;
    const auto start = clock_type::now();
    federation.run(flotilla::stop::after_rounds(rounds + 60));
    const double wall = double(since(start)) * 1e-9 / double(rounds);
    const double workers = double(transport.worker_count());
    // Training and making run on `workers` threads at once: their share of the round is their
    // time divided by the workers, against the round's wall time.
    const double training = double(training_ns) * 1e-9 / double(rounds) / workers;
    const double making = double(making_ns) * 1e-9 / double(rounds) / workers;
    const double framework = wall - training - making;

    model_base evaluator(784, 10);
    evaluator.set_parameters(federation.global());
    std::printf("# %zu learners made on demand, %zu a round, %d local epoch(s), %zu rounds on %g workers: %.2f ms a "
                "round (%.1f us of framework a learner); test accuracy %.4f\n",
                learners, selected, epochs, rounds, workers, wall * 1e3, framework * workers * 1e6 / double(selected),
                evaluator.evaluate(test).metrics.at("accuracy"));
    std::printf("# split of a round: training %.3f, making learners %.3f, framework %.3f\n", training / wall,
                making / wall, framework / wall);
    // ratio = training's share over the framework's: above 1, training dominates.
    const std::string name = "simulation_training_share_epochs_" + std::to_string(epochs);
    bench::report(name.c_str(), training / wall, "fraction_of_round", "framework_share", framework / wall);
    std::fflush(stdout);
  }
  bench::report("simulation_peak_rss", peak_rss_mib(), "MiB", "limit_MiB", 2048);
}
