// Aggregation throughput: Flotilla's rules against plain two-thread loops doing the same
// arithmetic over the same bytes, and against the way Python frameworks aggregate with numpy.
// Throughput is input bytes (updates x model size x 4) per second.
//
// Usage: bench_aggregation [parameters=25000000] [updates=10]   the measurements
//        bench_aggregation sweep                                 batched FedAvg for the plot:
//                                                                one line per (learners, size)
#include <flotilla/aggregators/mean.hpp>
#include <flotilla/aggregators/robust.hpp>
#include <flotilla/aggregators/server_optimizer.hpp>
#include <flotilla/parameters.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "timing.hpp"

namespace {

using params = flotilla::parameters<float>;
using update_list = std::vector<flotilla::weighted_update<params>>;

// `count` distinct updates (so that none is served from cache) with examples 1, 2, ..., count.
struct round_input {
  params global;
  std::vector<params> updates;
  update_list batch;
  double bytes;

  round_input(std::size_t size, std::size_t count)
      : global(flotilla::tensor_layout({{"w", {size}}})), updates(count, global) {
    for (std::size_t u = 0; u < count; ++u) {
      auto values = updates[u].values();
      for (std::size_t i = 0; i < size; ++i) values[i] = float((i + 7 * u) % 97) * 0.01f - 0.3f;
      batch.push_back({&updates[u], std::int64_t(u + 1)});
    }
    bytes = double(count) * double(size) * sizeof(float);
  }
  [[nodiscard]] std::size_t size() const { return global.values().size(); }
  [[nodiscard]] double total_weight() const {
    double total = 0;
    for (const auto& u : batch) total += double(u.examples);
    return total;
  }
};

// The streaming bound: each thread makes one pass over its half, adding the updates block by
// block while the block is in cache, and writes the weighted mean once. (Blocks of 32Ki floats
// were the fastest of 2Ki to 64Ki here.)
void plain_mean(const round_input& in, std::span<float> out) {
  const float inverse = float(1.0 / in.total_weight());
  bench::on_two_threads(in.size(), [&](std::size_t begin, std::size_t end) {
    constexpr std::size_t block = 32768;
    for (std::size_t first = begin; first < end; first += block) {
      const std::size_t last = std::min(end, first + block);
      for (std::size_t i = first; i < last; ++i) out[i] = float(in.batch[0].examples) * in.updates[0].values()[i];
      for (std::size_t u = 1; u < in.updates.size(); ++u) {
        const float w = float(in.batch[u].examples);
        const float* x = in.updates[u].values().data();
        for (std::size_t i = first; i < last; ++i) out[i] += w * x[i];
      }
      for (std::size_t i = first; i < last; ++i) out[i] *= inverse;
    }
  });
}

// The trickle bound: one whole pass per update (read it, read and write the sum), then scale.
void plain_trickle(const round_input& in, std::span<float> out) {
  const float inverse = float(1.0 / in.total_weight());
  bench::on_two_threads(in.size(), [&](std::size_t begin, std::size_t end) {
    for (std::size_t u = 0; u < in.updates.size(); ++u) {
      const float w = float(in.batch[u].examples);
      const float* x = in.updates[u].values().data();
      if (u == 0)
        for (std::size_t i = begin; i < end; ++i) out[i] = w * x[i];
      else
        for (std::size_t i = begin; i < end; ++i) out[i] += w * x[i];
    }
    for (std::size_t i = begin; i < end; ++i) out[i] *= inverse;
  });
}

// FedAdam's bound: the weighted mean of a block, then Adam's step on it, reading the global
// parameters and both moments and writing them and the new parameters once.
void plain_fedadam(const round_input& in, std::span<float> m, std::span<float> v, std::span<float> out) {
  const flotilla::adaptive_options o{};
  const float inverse = float(1.0 / in.total_weight());
  bench::on_two_threads(in.size(), [&](std::size_t begin, std::size_t end) {
    constexpr std::size_t block = 32768;
    std::vector<float> mean(block);
    for (std::size_t first = begin; first < end; first += block) {
      const std::size_t n = std::min(end, first + block) - first;
      for (std::size_t i = 0; i < n; ++i) mean[i] = float(in.batch[0].examples) * in.updates[0].values()[first + i];
      for (std::size_t u = 1; u < in.updates.size(); ++u) {
        const float w = float(in.batch[u].examples);
        const float* x = in.updates[u].values().data() + first;
        for (std::size_t i = 0; i < n; ++i) mean[i] += w * x[i];
      }
      const float* global = in.global.values().data() + first;
      for (std::size_t i = 0; i < n; ++i) {
        const double delta = double(mean[i] * inverse) - double(global[i]);
        const double m1 = o.beta1 * m[first + i] + (1 - o.beta1) * delta;
        const double v1 = o.beta2 * v[first + i] + (1 - o.beta2) * delta * delta;
        m[first + i] = float(m1);
        v[first + i] = float(v1);
        out[first + i] = float(double(global[i]) + o.learning_rate * m1 / (std::sqrt(v1) + o.tau));
      }
    }
  });
}

// What median-of-N selection costs: per coordinate, gather the N values and select the middle.
void plain_median(const round_input& in, std::span<float> out) {
  bench::on_two_threads(in.size(), [&](std::size_t begin, std::size_t end) {
    std::vector<float> column(in.updates.size());
    const auto middle = column.begin() + std::ptrdiff_t(column.size() / 2);
    for (std::size_t j = begin; j < end; ++j) {
      for (std::size_t u = 0; u < in.updates.size(); ++u) column[u] = in.updates[u].values()[j];
      std::nth_element(column.begin(), middle, column.end());
      out[j] = *middle;
    }
  });
}

template <class Rule>
void aggregate_batched(Rule& rule, const round_input& in) {
  rule.start(in.global);
  rule.accept_batch(std::span<const flotilla::weighted_update<params>>(in.batch));
  volatile float sink = rule.result().values()[in.size() / 2];
  (void)sink;
}

template <class Rule>
void aggregate_one_by_one(Rule& rule, const round_input& in) {
  rule.start(in.global);
  for (const auto& update : in.batch) rule.accept(*update.parameters, update.examples);
  volatile float sink = rule.result().values()[in.size() / 2];
  (void)sink;
}

// Seconds numpy takes for the same aggregation (benchmarks/numpy_fedavg.py), or a negative
// number when python3 with numpy is not there.
double numpy_seconds(std::size_t size, std::size_t count) {
  const auto script = std::filesystem::path(FLOTILLA_BENCHMARK_DIR) / "numpy_fedavg.py";
  // Debian's python3-numpy belongs to Debian's interpreter, which a PATH may hide (pyenv).
  const std::string python = std::filesystem::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
  const std::string command = python + " " + script.string() + " " + std::to_string(size) + " " +
                              std::to_string(count) + " 2>/dev/null";
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return -1;
  double seconds = -1;
  if (std::fscanf(pipe, "%lf", &seconds) != 1) seconds = -1;
  return pclose(pipe) == 0 ? seconds : -1;
}

void sweep() {
  for (const std::size_t size : {1'000'000, 5'000'000, 25'000'000})
    for (const std::size_t learners : {2, 5, 10, 20}) {
      const round_input in(size, learners);
      flotilla::weighted_mean<params> rule;
      std::vector<float> out(size);
      const auto [flotilla_s, plain_s] = bench::interleaved_best_seconds(
          3, [&] { aggregate_batched(rule, in); }, [&] { plain_mean(in, out); });
      std::printf("name=fedavg_batched_sweep learners=%zu parameters=%zu value=%.4g unit=GB/s "
                  "baseline=two_thread_streaming_bound_GB/s baseline_value=%.4g ratio=%.3f\n",
                  learners, size, in.bytes / flotilla_s / 1e9, in.bytes / plain_s / 1e9, plain_s / flotilla_s);
      std::fflush(stdout);
    }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "sweep") {
    sweep();
    return 0;
  }
  const std::size_t size = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 25'000'000;
  const std::size_t count = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 10;
  const round_input in(size, count);
  const auto gb_per_s = [&](double seconds) { return in.bytes / seconds / 1e9; };
  std::vector<float> out(size), m(size, 0.0f), v(size, 0.0f);

  flotilla::weighted_mean<params> fedavg;
  const auto [batched, bound] =
      bench::interleaved_best_seconds(7, [&] { aggregate_batched(fedavg, in); }, [&] { plain_mean(in, out); });
  bench::report("fedavg_batched", gb_per_s(batched), "GB/s", "two_thread_streaming_bound_GB/s", gb_per_s(bound));

  const auto [trickle, trickle_bound] =
      bench::interleaved_best_seconds(7, [&] { aggregate_one_by_one(fedavg, in); }, [&] { plain_trickle(in, out); });
  bench::report("fedavg_trickle", gb_per_s(trickle), "GB/s", "two_thread_trickle_bound_GB/s", gb_per_s(trickle_bound));

  if (const double numpy = numpy_seconds(size, count); numpy > 0)
    bench::report("fedavg_batched_vs_numpy", gb_per_s(batched), "GB/s", "numpy_GB/s", gb_per_s(numpy));
  else
    std::printf("# fedavg_batched_vs_numpy skipped: python3 with numpy (Debian's python3-numpy) is not installed\n");

  // FedAdam from the second round on, when its moments exist (the first round allocates them).
  flotilla::fedadam<params> fedadam;
  aggregate_batched(fedadam, in);
  const auto [adam, adam_bound] = bench::interleaved_best_seconds(
      5, [&] { aggregate_batched(fedadam, in); }, [&] { plain_fedadam(in, m, v, out); });
  bench::report("fedadam_batched", gb_per_s(adam), "GB/s", "two_thread_streaming_bound_GB/s", gb_per_s(adam_bound));

  // The trimmed mean gathers every update and sorts each coordinate's values; no target.
  flotilla::trimmed_mean<params> trimmed(0.2);
  const auto [trim, median] = bench::interleaved_best_seconds(
      3, [&] { aggregate_one_by_one(trimmed, in); }, [&] { plain_median(in, out); });
  bench::report("trimmed_mean", gb_per_s(trim), "GB/s", "median_of_n_selection_GB/s", gb_per_s(median));
}
