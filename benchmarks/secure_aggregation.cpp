// Secure aggregation's cost against its bound: a SecAgg+ round of 100 learners x 1M values
// (degree and threshold for 1/3 dropouts and 1/3 colluders; the fit is a no-op), timed apart
// for the learners and the aggregator, with no dropouts and with 10% of learners dropping after
// sharing keys. The protocol's work is dominated by mask expansion: each learner expands one
// self mask and one pairwise mask per neighbour; the aggregator one self mask per contributor
// and one pairwise mask per (contributor, dropped neighbour) pair. The bound is that many
// model-sized masks at the rate expand_mask reaches in the same run. Also: the bytes each
// learner sends against the model's own size; the aggregator's peak heap (and the whole
// process's peak RSS) for rounds of 100 and 1,000 learners, each in a child process of its own,
// against what one model-sized vector per learner would take; and a secure round of 100 in-memory learners training the Fashion-MNIST MLP
// for one local epoch against the same plain round.
// Usage: bench_secure_aggregation [values=1000000] [learners=100] [fashion-mnist directory]
#include <flotilla/aggregators/mean.hpp>
#include <flotilla/algorithms/secure_aggregation/aggregator.hpp>
#include <flotilla/algorithms/secure_aggregation/graph.hpp>
#include <flotilla/algorithms/secure_aggregation/learner.hpp>
#include <flotilla/algorithms/secure_aggregation/secure_learner.hpp>
#include <flotilla/algorithms/secure_aggregation/server.hpp>
#include <flotilla/coordinators/synchronous.hpp>
#include <flotilla/data/fashion_mnist.hpp>
#include <flotilla/data/partition.hpp>
#include <flotilla/models/mlp.hpp>
#include <flotilla/round/learner.hpp>
#include <flotilla/transport/in_memory.hpp>

#include <malloc.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <utility>
#include <set>
#include <string>
#include <vector>

#include "timing.hpp"

namespace {
namespace secagg = flotilla::secure_aggregation;
using clock_type = std::chrono::steady_clock;
double since(clock_type::time_point start) { return std::chrono::duration<double>(clock_type::now() - start).count(); }

// The heap the aggregator holds: what each of its calls that keeps state leaves allocated
// (glibc's count of bytes in use, mmapped blocks included). The calls run one at a time, and
// the learners' own allocations happen between them, so the sum of those deltas is the
// aggregator's share of the heap; its peak is the most it held at once.
struct heap_meter {
  std::int64_t held = 0, peak = 0;
  static std::int64_t in_use() {
    const auto info = mallinfo2();
    return std::int64_t(info.uordblks + info.hblkhd);
  }
  template <class Call>
  void operator()(Call&& call) {
    const auto before = in_use();
    call();
    held += in_use() - before;
    peak = std::max(peak, held);
  }
};

// One whole secure round between n learner sessions and a server session, as the protocol runs
// it (the aggregator keeps a running sum; each learner's masked input exists only until added).
// Returns the aggregator's peak heap in bytes, its unmasking's model-sized result included.
std::int64_t secure_round(std::size_t n, std::size_t values) {
  const auto graph = secagg::find_graph_parameters(n, 1.0 / 3, 1.0 / 3);
  heap_meter aggregator;
  std::optional<secagg::server_session> server;
  aggregator([&] { server.emplace(1, secagg::harary_graph::random(n, graph.degree), graph.threshold, values, secagg::quantization{}); });
  std::vector<secagg::learner_session> learners;
  for (std::uint64_t i = 1; i <= n; ++i) learners.emplace_back(server->setup_for(i));
  for (auto& learner : learners) {
    const auto keys = learner.advertise();
    aggregator([&] { (void)server->receive_keys(keys); });
  }
  for (std::uint64_t i = 1; i <= n; ++i) {
    const auto sealed = learners[i - 1].share_keys(server->keys_for(i));
    aggregator([&] { (void)server->receive_shares(i, sealed); });
  }
  const std::vector<float> update(values, 0.25f);
  for (std::uint64_t i = 1; i <= n; ++i) {
    const auto input = learners[i - 1].mask(std::span<const float>(update), server->shares_for(i));
    aggregator([&] { (void)server->receive_masked(input); });
  }
  for (std::uint64_t i = 1; i <= n; ++i) {
    const auto response = learners[i - 1].unmask(server->request_for(i));
    aggregator([&] { (void)server->receive_unmask(response); });
  }
  bool whole = false;
  aggregator([&] { whole = server->unmasked_sum().size() == values; });
  if (!whole) std::exit(1);
  return aggregator.peak + std::int64_t(values * sizeof(std::uint32_t));
}

// A secure round of n learners in a child process: its peak RSS and the aggregator's peak heap,
// in MiB.
std::pair<double, double> memory_of_round(std::size_t n, std::size_t values) {
  int pipe_ends[2];
  if (pipe(pipe_ends) != 0) std::exit(1);
  const pid_t child = fork();
  if (child == 0) {
    const auto heap = secure_round(n, values);
    if (write(pipe_ends[1], &heap, sizeof heap) != sizeof heap) std::_Exit(1);
    std::_Exit(0);
  }
  std::int64_t heap = 0;
  if (read(pipe_ends[0], &heap, sizeof heap) != sizeof heap) std::exit(1);
  int status = 0;
  rusage usage{};
  wait4(child, &status, 0, &usage);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) std::exit(1);
  return {double(usage.ru_maxrss) / 1024.0, double(heap) / 1048576.0};  // Linux reports kilobytes
}

// Seconds a round of 100 in-memory learners takes with `rule`, after a warm-up round.
template <class Rule, class Learners>
double round_seconds(Learners learners, const flotilla::parameters<float>& initial, Rule rule) {
  flotilla::in_memory_transport transport(std::move(learners), 2);
  flotilla::coordinator federation(transport, initial, {.quorum = 90, .seed = 3}, std::move(rule));
  federation.run_round();
  const auto start = clock_type::now();
  for (int round = 0; round < 3; ++round)
    if (federation.run_round().status != flotilla::round_status::aggregated) std::exit(1);
  return since(start) / 3;
}
}  // namespace

int main(int argc, char** argv) {
  const std::size_t values = argc > 1 ? std::stoul(argv[1]) : 1'000'000;
  const std::size_t n = argc > 2 ? std::stoul(argv[2]) : 100;
  const auto graph = secagg::find_graph_parameters(n, 1.0 / 3, 1.0 / 3);
  std::printf("# %zu learners x %zu values, degree %zu, threshold %zu\n", n, values, graph.degree, graph.threshold);

  std::vector<std::uint32_t> scratch(values);
  const auto seed = secagg::make_key_pair().secret;
  const double expand_seconds = bench::best_seconds(5, [&] { secagg::expand_mask(seed, scratch); });
  const double mask_rate = double(values) * 4 / expand_seconds;
  bench::report("mask_expansion_gb_per_s", mask_rate / 1e9, "GB/s", "target_gb_per_s", 2.0);

  for (const double dropout : {0.0, 0.1}) {
    secagg::server_session server(1, secagg::harary_graph::random(n, graph.degree), graph.threshold, values, {});
    std::vector<secagg::learner_session> learners;
    for (std::uint64_t i = 1; i <= n; ++i) learners.emplace_back(server.setup_for(i));
    std::set<std::uint64_t> dropped;
    for (std::uint64_t i = 1; dropped.size() < std::size_t(dropout * double(n)); i += 10) dropped.insert(i);
    const std::vector<float> update(values, 0.25f);
    double learner_seconds = 0, server_seconds = 0, learner_masks = 0, sent_bytes = 0;
    auto start = clock_type::now();
    std::vector<secagg::advertised_keys> keys;
    for (auto& learner : learners) keys.push_back(learner.advertise());
    learner_seconds += since(start);
    start = clock_type::now();
    for (const auto& k : keys) (void)server.receive_keys(k);
    server_seconds += since(start);
    for (std::uint64_t i = 1; i <= n; ++i) {
      const auto neighbour_keys = server.keys_for(i);
      start = clock_type::now();
      const auto sealed = learners[i - 1].share_keys(neighbour_keys);
      learner_seconds += since(start);
      for (const auto& message : sealed) sent_bytes += double(message.ciphertext.size() + 16);
      start = clock_type::now();
      (void)server.receive_shares(i, sealed);
      server_seconds += since(start);
    }
    for (std::uint64_t i = 1; i <= n; ++i) {
      if (dropped.contains(i)) continue;
      const auto inbox = server.shares_for(i);
      start = clock_type::now();
      const auto input = learners[i - 1].mask(std::span<const float>(update), inbox);
      learner_seconds += since(start);
      learner_masks += double(1 + input.masked_with.size());
      sent_bytes += double(input.values.size() * 4 + input.masked_with.size() * 8);
      start = clock_type::now();
      (void)server.receive_masked(input);
      server_seconds += since(start);
    }
    double server_masks = double(server.contributors().size());
    for (std::uint64_t i = 1; i <= n; ++i) {
      if (dropped.contains(i)) continue;
      const auto request = server.request_for(i);
      start = clock_type::now();
      const auto response = learners[i - 1].unmask(request);
      learner_seconds += since(start);
      start = clock_type::now();
      (void)server.receive_unmask(response);
      server_seconds += since(start);
      server_masks += double(request.mask_key_of.size());  // one pairwise mask per dropped neighbour
    }
    start = clock_type::now();
    const auto sum = server.unmasked_sum();
    server_seconds += since(start);
    const double bytes_per_mask = double(values) * 4;
    const std::string tag = dropout == 0 ? "" : "_10pct_dropouts";
    bench::report(("learners_compute_s" + tag).c_str(), learner_seconds, "s", "mask_expansion_bound_s",
                  learner_masks * bytes_per_mask / mask_rate);
    bench::report(("aggregator_compute_s" + tag).c_str(), server_seconds, "s", "mask_expansion_bound_s",
                  server_masks * bytes_per_mask / mask_rate);
    bench::report(("bytes_sent_per_learner" + tag).c_str(), sent_bytes / double(n - dropped.size()), "B", "model_bytes",
                  bytes_per_mask);
    if (sum.empty()) return 1;
  }

  // Memory: rounds of 100,000 values; holding one vector per learner would take 38 MiB for 100
  // learners and 381 MiB for 1,000.
  const std::size_t memory_values = 100'000;
  const double vector_mib = double(memory_values) * 4 / 1048576;
  for (const std::size_t learners : {100, 1000}) {
    const auto [rss, aggregator] = memory_of_round(learners, memory_values);
    const auto k = secagg::find_graph_parameters(learners, 1.0 / 3, 1.0 / 3).degree;
    std::printf("# a secure round of %zu learners x %zu values (degree %zu): the whole process (learners and aggregator) "
                "peaks at %.1f MiB RSS; the aggregator's heap at %.1f MiB (%.0f bytes a neighbour pair beyond two model-sized vectors)\n",
                learners, memory_values, k, rss, aggregator,
                (aggregator - 2 * vector_mib) * 1048576 / double(learners * k));
    bench::report(("aggregator_heap_mib_" + std::to_string(learners) + "_learners").c_str(), aggregator, "MiB",
                  "one_vector_per_learner_mib", double(learners) * vector_mib);
  }

  // The MLP's local epoch as the fit: the secure round against the plain one.
  const std::filesystem::path directory = argc > 3 ? argv[3] : flotilla::fashion_mnist_default_directory;
  const auto train = flotilla::load_fashion_mnist(flotilla::fashion_mnist_split::train, directory);
  const auto parts = flotilla::partition_iid(train.size(), 100, 5);
  using model = flotilla::mlp<float>;
  using plain = flotilla::learner<model, model::data_type>;
  const model prototype({784, 128, 10}, {.learning_rate = 0.1, .epochs = 1, .batch_size = 32}, 1);
  std::vector<plain> plain_learners;
  std::vector<secagg::secure_learner<plain>> secure_learners;
  for (flotilla::learner_id id = 0; id < 100; ++id) {
    plain_learners.emplace_back(id, prototype, train.subset(parts[id]));
    secure_learners.emplace_back(plain(id, prototype, train.subset(parts[id])));
  }
  const auto& initial = prototype.parameters();
  const double plain_seconds = round_seconds(std::move(plain_learners), initial, flotilla::weighted_mean<flotilla::parameters<float>>());
  const double secure_seconds =
      round_seconds(std::move(secure_learners), initial, secagg::secure_mean<flotilla::parameters<float>>());
  std::printf("# 100 learners x 600 images, MLP 784-128-10 (%zu parameters), one local epoch, 2 workers: %.2f s a plain "
              "round, %.2f s a secure one\n", initial.values().size(), plain_seconds, secure_seconds);
  bench::report("mlp_round_secure_over_plain", secure_seconds / plain_seconds, "ratio", "plain_round_s", plain_seconds);
}
