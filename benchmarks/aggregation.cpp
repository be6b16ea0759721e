// Aggregation throughput: Flotilla's rules against plain two-thread loops doing the same
// arithmetic over the same bytes, and against the way Python frameworks aggregate with numpy.
// Throughput is input bytes (updates x model size x 4) per second.
//
// Every ratio is over 10 runs (each the best of a few interleaved repetitions); a line gives the
// median run's ratio and the lowest and highest (ratio_min, ratio_max), and `target=` names the
// ratio the README promises for it.
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

// A server optimizer's bound: the weighted mean of a block, then the method's step on it,
// reading the global parameters and the moments and writing them and the new parameters once.
template <class Method>
void plain_server_step(const round_input& in, const typename Method::options_type& o, std::span<float> m,
                       std::span<float> v, std::span<float> out) {
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
        double m1 = m[first + i], v1 = Method::has_second_moment ? double(v[first + i]) : 0.0;
        const double step = Method::step(o, double(mean[i] * inverse) - double(global[i]), m1, v1);
        m[first + i] = float(m1);
        if constexpr (Method::has_second_moment) v[first + i] = float(v1);
        out[first + i] = float(double(global[i]) + step);
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

// One rule against its bound, 10 runs, a line.
template <class Rule, class Baseline>
void compare(const char* name, Rule& rule, const round_input& in, int repetitions, const char* baseline_name,
             Baseline&& baseline, const char* target) {
  const auto runs = bench::measure_ratio(10, repetitions, [&] { aggregate_batched(rule, in); }, baseline);
  bench::report_runs(name, runs, in.bytes / 1e9, "GB/s", baseline_name, target);
}

template <class Method>
void compare_server_optimizer(const char* name, const round_input& in) {
  using options = typename Method::options_type;
  flotilla::server_optimizer<params, Method> rule(options{});
  aggregate_batched(rule, in);  // from the second round on, when its moments exist
  std::vector<float> m(in.size(), 0.0f), v(in.size(), float(Method::initial_second_moment(options{}))), out(in.size());
  compare(name, rule, in, 3, "two_thread_streaming_bound_GB/s",
          [&] { plain_server_step<Method>(in, options{}, m, v, out); }, ">=0.85");
}

// Target 1: small folds of 1M float32 parameters pay no thread starts.
void small_folds() {
  for (const std::size_t count : {2, 4, 8, 16}) {
    const round_input in(1'000'000, count);
    flotilla::weighted_mean<params> rule;
    std::vector<float> out(in.size());
    const std::string name = "fedavg_small_fold_" + std::to_string(count);
    compare(name.c_str(), rule, in, 20, "two_thread_streaming_bound_GB/s", [&] { plain_mean(in, out); }, ">=0.85");
  }
}

// Target 4: the mean of 10,000 float32 updates, its accuracy and its speed. 1,000 distinct updates
// of 100,000 values (400 MB, beyond the caches) are each sent 10 times; batches of 100.
void many_updates() {
  constexpr std::size_t learners = 10'000, distinct = 1'000, size = 100'000, batch_size = 100;
  round_input in(size, distinct);
  std::vector<float> powers(800);  // 10^-4 to 10^4: eight orders of magnitude
  for (std::size_t k = 0; k < powers.size(); ++k) powers[k] = float(std::pow(10.0, double(k) / 100 - 4));
  for (std::size_t u = 0; u < distinct; ++u)
    for (std::size_t i = 0; i < size; ++i)
      in.updates[u].values()[i] = (i % 3 == 0 ? -1.0f : 1.0f) * powers[(7 * i + 13 * u) % 800] * (1 + float((i + u) % 10) / 10);
  std::vector<flotilla::weighted_update<params>> batch;
  for (std::size_t u = 0; u < learners; ++u) batch.push_back(in.batch[u % distinct]);
  const std::span<const flotilla::weighted_update<params>> all(batch);
  double total_weight = 0;
  for (const auto& u : batch) total_weight += double(u.examples);
  std::vector<float> out(size);
  const auto plain_batches = [&] {  // the float32 streaming bound, batch by batch
    bench::on_two_threads(size, [&](std::size_t begin, std::size_t end) {
      for (std::size_t first_update = 0; first_update < learners; first_update += batch_size)
        for (std::size_t u = first_update; u < first_update + batch_size; ++u) {
          const float w = float(batch[u].examples);
          const float* x = batch[u].parameters->values().data();
          if (u == 0)
            for (std::size_t i = begin; i < end; ++i) out[i] = w * x[i];
          else
            for (std::size_t i = begin; i < end; ++i) out[i] += w * x[i];
        }
      const float inverse = float(1.0 / total_weight);
      for (std::size_t i = begin; i < end; ++i) out[i] *= inverse;
    });
  };
  flotilla::weighted_mean<params> rule;
  const auto fold = [&] {
    rule.start(in.global);
    for (std::size_t first = 0; first < learners; first += batch_size) rule.accept_batch(all.subspan(first, batch_size));
    volatile float sink = rule.result().values()[size / 2];
    (void)sink;
  };
  const auto runs = bench::measure_ratio(10, 2, fold, plain_batches);
  const double input = double(learners) * size * sizeof(float) / 1e9;
  bench::report_runs("fedavg_10000_updates_float64_sum", runs, input, "GB/s", "two_thread_float32_streaming_bound_GB/s",
                     ">=0.85");
  // What accumulating in float64 costs a plain loop: the same loop with a float64 accumulator
  // block (32Ki values, in L2 while a batch is added), against the float32 one.
  std::vector<double> wide(size);
  const auto plain_float64_batches = [&] {
    bench::on_two_threads(size, [&](std::size_t begin, std::size_t end) {
      constexpr std::size_t block = 32768;
      for (std::size_t first_update = 0; first_update < learners; first_update += batch_size)
        for (std::size_t first = begin; first < end; first += block) {
          const std::size_t last = std::min(end, first + block);
          for (std::size_t u = first_update; u < first_update + batch_size; ++u) {
            const double w = double(batch[u].examples);
            const float* x = batch[u].parameters->values().data();
            if (u == 0)
              for (std::size_t i = first; i < last; ++i) wide[i] = w * double(x[i]);
            else
              for (std::size_t i = first; i < last; ++i) wide[i] += w * double(x[i]);
          }
        }
      const double inverse = 1.0 / total_weight;
      for (std::size_t i = begin; i < end; ++i) out[i] = float(wide[i] * inverse);
    });
  };
  bench::report_runs("plain_float64_sum_10000_updates", bench::measure_ratio(10, 2, plain_float64_batches, plain_batches),
                     input, "GB/s", "two_thread_float32_streaming_bound_GB/s");
  bench::report_runs("fedavg_10000_updates_vs_plain_float64", bench::measure_ratio(10, 2, fold, plain_float64_batches),
                     input, "GB/s", "two_thread_float64_streaming_bound_GB/s");
  // Accuracy against a reference summed in long double with compensation.
  rule.start(in.global);
  for (std::size_t first = 0; first < learners; first += batch_size) rule.accept_batch(all.subspan(first, batch_size));
  const params mean = rule.result();
  plain_batches();
  double worst = 0, worst_float32 = 0;
  for (std::size_t i = 0; i < size; ++i) {
    long double sum = 0, compensation = 0;
    for (const auto& u : batch) {
      const long double term = double(u.examples) * double(u.parameters->values()[i]);
      const long double next = sum + term;
      compensation += std::fabs(sum) >= std::fabs(term) ? (sum - next) + term : (term - next) + sum;
      sum = next;
    }
    const double reference = double((sum + compensation) / total_weight);
    if (reference == 0) continue;
    worst = std::max(worst, std::fabs(mean.values()[i] - reference) / std::fabs(reference));
    worst_float32 = std::max(worst_float32, std::fabs(out[i] - reference) / std::fabs(reference));
  }
  std::printf("name=fedavg_10000_updates_relative_error value=%.3g unit=relative baseline=float32_sum_relative_error "
              "baseline_value=%.3g target=<=1e-6\n", worst, worst_float32);
  std::fflush(stdout);
}

// Target 5's cost: the deterministic mean against the default one, same data, same batches.
void deterministic_cost() {
  for (const std::size_t count : {4, 16}) {
    const round_input in(1'000'000, count);
    flotilla::weighted_mean<params> float64;
    flotilla::deterministic_weighted_mean<params> exact;
    const auto runs = bench::measure_ratio(10, 3, [&] { aggregate_batched(exact, in); }, [&] { aggregate_batched(float64, in); });
    const std::string name = "deterministic_fedavg_" + std::to_string(count);
    bench::report_runs(name.c_str(), runs, in.bytes / 1e9, "GB/s", "float64_sum_fedavg_GB/s");
  }
  std::printf("name=deterministic_accumulator_bytes_per_scalar value=%zu unit=bytes baseline=float64_sum_bytes "
              "baseline_value=%zu ratio=%.3f\n",
              sizeof(flotilla::detail::fixed_sum), sizeof(double), double(sizeof(flotilla::detail::fixed_sum)) / sizeof(double));
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
  small_folds();

  const round_input in(size, count);
  std::vector<float> out(size);
  flotilla::weighted_mean<params> fedavg;
  compare("fedavg_batched", fedavg, in, 3, "two_thread_streaming_bound_GB/s", [&] { plain_mean(in, out); }, nullptr);
  const auto trickle = bench::measure_ratio(10, 3, [&] { aggregate_one_by_one(fedavg, in); }, [&] { plain_trickle(in, out); });
  bench::report_runs("fedavg_trickle", trickle, in.bytes / 1e9, "GB/s", "two_thread_trickle_bound_GB/s");
  if (const double numpy = numpy_seconds(size, count); numpy > 0) {
    const double batched = bench::best_seconds(3, [&] { aggregate_batched(fedavg, in); });
    bench::report("fedavg_batched_vs_numpy", in.bytes / batched / 1e9, "GB/s", "numpy_GB/s", in.bytes / numpy / 1e9);
  } else {
    std::printf("# fedavg_batched_vs_numpy skipped: python3 with numpy (Debian's python3-numpy) is not installed\n");
  }

  // Target 2: each server optimizer at its own bound; the robust rules against plain selection
  // (on 5M parameters: they sort every coordinate's values, which takes far longer than reading them).
  compare_server_optimizer<flotilla::fedavgm_method>("fedavgm_batched", in);
  compare_server_optimizer<flotilla::fedadagrad_method>("fedadagrad_batched", in);
  compare_server_optimizer<flotilla::fedadam_method>("fedadam_batched", in);
  compare_server_optimizer<flotilla::fedyogi_method>("fedyogi_batched", in);
  const round_input robust_in(std::min<std::size_t>(size, 5'000'000), count);
  std::vector<float> robust_out(robust_in.size());
  flotilla::coordinate_median<params> median;
  flotilla::trimmed_mean<params> trimmed(0.2);
  const auto baseline = [&] { plain_median(robust_in, robust_out); };
  // As in a round: the coordinator hands each reply's parameters over by move (accept(P&&)), so
  // the round's copies are made before the clock starts; and, for comparison, accepted by copy.
  std::vector<params> replies;
  const auto by_move = [&](auto& rule) {
    return bench::measure_ratio(
        10, 1,
        [&] {
          rule.start(robust_in.global);
          for (auto& update : replies) rule.accept(std::move(update), 1);
          volatile float sink = rule.result().values()[0];
          (void)sink;
        },
        baseline, [&] { replies = robust_in.updates; });
  };
  bench::report_runs("median", by_move(median), robust_in.bytes / 1e9, "GB/s", "median_of_n_selection_GB/s", ">=0.9");
  bench::report_runs("trimmed_mean", by_move(trimmed), robust_in.bytes / 1e9, "GB/s", "median_of_n_selection_GB/s",
                     ">=0.9");
  const auto by_copy = [&](auto& rule) {
    return bench::measure_ratio(10, 1, [&] { aggregate_one_by_one(rule, robust_in); }, baseline);
  };
  bench::report_runs("median_accepting_copies", by_copy(median), robust_in.bytes / 1e9, "GB/s",
                     "median_of_n_selection_GB/s");
  bench::report_runs("trimmed_mean_accepting_copies", by_copy(trimmed), robust_in.bytes / 1e9, "GB/s",
                     "median_of_n_selection_GB/s");

  many_updates();
  deterministic_cost();
}
