// Streaming FedAvg throughput against a plain loop doing the same arithmetic over the same bytes.
// Usage: bench_aggregation [parameters=5000000] [updates=10]
#include <flotilla/aggregators/mean.hpp>
#include <flotilla/parameters.hpp>

#include <cstdlib>
#include <vector>

#include "timing.hpp"

int main(int argc, char** argv) {
  const std::size_t size = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 5'000'000;
  const std::size_t count = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 10;
  using params = flotilla::parameters<float>;
  const params global(flotilla::tensor_layout({{"w", {size}}}));
  std::vector<params> updates(count, global);
  for (std::size_t u = 0; u < count; ++u)
    for (std::size_t i = 0; i < size; ++i) updates[u].values()[i] = float((i + u) % 97) * 0.01f;
  const double input_bytes = double(count) * double(size) * sizeof(float);

  flotilla::weighted_mean<params> rule;
  const double fedavg = bench::best_seconds(5, [&] {
    rule.start(global);
    for (std::size_t u = 0; u < count; ++u) rule.accept(updates[u], std::int64_t(u + 1));
    volatile float sink = rule.result().values()[size / 2];
    (void)sink;
  });

  std::vector<float> sum(size);
  const double plain = bench::best_seconds(5, [&] {
    std::fill(sum.begin(), sum.end(), 0.0f);
    double total = 0;
    for (std::size_t u = 0; u < count; ++u) {
      const float weight = float(u + 1);
      const float* x = updates[u].values().data();
      for (std::size_t i = 0; i < size; ++i) sum[i] += weight * x[i];
      total += weight;
    }
    std::vector<float> result(sum);
    for (auto& value : result) value = float(value / total);
    volatile float sink = result[size / 2];
    (void)sink;
  });
  bench::report("fedavg_streaming_throughput", input_bytes / fedavg / 1e9, "GB/s", "plain_loop_GB/s", input_bytes / plain / 1e9);
}
