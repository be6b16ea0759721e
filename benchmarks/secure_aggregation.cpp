// Secure aggregation's cost against its bound: a SecAgg+ round of 100 learners x 1M values
// (degree and threshold for 1/3 dropouts and 1/3 colluders; the fit is a no-op), timed apart
// for the learners and the aggregator, with no dropouts and with 10% of learners dropping after
// sharing keys. The protocol's work is dominated by mask expansion: each learner expands one
// self mask and one pairwise mask per neighbour; the aggregator one self mask per contributor
// and one pairwise mask per (contributor, dropped neighbour) pair. The bound is that many
// model-sized masks at the rate expand_mask reaches in the same run. Also: the bytes each
// learner sends against the model's own size.
// Usage: bench_secure_aggregation [values=1000000] [learners=100]
#include <flotilla/algorithms/secure_aggregation/graph.hpp>
#include <flotilla/algorithms/secure_aggregation/learner.hpp>
#include <flotilla/algorithms/secure_aggregation/server.hpp>

#include <chrono>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "timing.hpp"

namespace {
namespace secagg = flotilla::secure_aggregation;
using clock_type = std::chrono::steady_clock;
double since(clock_type::time_point start) { return std::chrono::duration<double>(clock_type::now() - start).count(); }
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
}
